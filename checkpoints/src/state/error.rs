//! Errors of [`crate::state::save`] and [`crate::state::load`].

/// Why a state graph could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Strong `Arc` references form a cycle: such a graph cannot be rebuilt
    /// with safe `Arc` construction (and leaks in the running program).
    #[error("strong Arc cycle through an object of type {type_name}")]
    StrongCycle {
        /// Type of an object on the cycle.
        type_name: String,
    },
    /// Values nest deeper than the encoder allows (recursive data).
    #[error("value nesting deeper than {limit} levels")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// A collection of zero-sized elements is longer than a loader accepts.
    #[error("collection of {len} zero-sized elements exceeds the limit of {limit}")]
    TooLong {
        /// Collection length.
        len: usize,
        /// Maximum accepted length.
        limit: usize,
    },
    /// Rebuilding the `Weak` cycles would nest more `Arc::new_cyclic`
    /// frames than a loader allows (e.g. a chain of objects that all point
    /// at each other only weakly).
    #[error("Weak cycles need {depth} nested construction frames; the limit is {limit}")]
    TooManyOpenFrames {
        /// Nesting depth needed.
        depth: usize,
        /// The limit.
        limit: usize,
    },
    /// More objects than an object id can address.
    #[error("more than {limit} objects")]
    TooManyObjects {
        /// The limit.
        limit: usize,
    },
    /// Two different types of the graph have the same schema name (two
    /// `#[state(name = "…")]` attributes agree by mistake).
    #[error("two different types are named {name} in the schema")]
    DuplicateTypeName {
        /// The shared name.
        name: String,
    },
    /// A lock in the graph stayed held by someone else for the whole
    /// timeout (`impls::sync::LOCK_TIMEOUT`): the graph is not quiescent, or
    /// the caller holds a lock of the graph it asked to save.
    #[error("a {type_name} in the graph stayed locked")]
    LockBusy {
        /// The lock's type.
        type_name: String,
    },
    /// A `with` module or a serde value failed to serialize.
    #[error("value serialization failed")]
    Serialize {
        /// The serializer's error.
        #[source]
        source: postcard::Error,
    },
    /// A `with` module refused a value.
    #[error("cannot save a value of type {type_name}: {reason}")]
    Unsupported {
        /// The type.
        type_name: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// Why saved state could not be loaded. Every malformed input maps to one of
/// these; loading never panics on input bytes.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The input ends before the value does.
    #[error("input truncated")]
    Truncated,
    /// The input does not start with the state magic.
    #[error("not sbx state (bad magic)")]
    BadMagic,
    /// The state was written by an unknown format version.
    #[error("unsupported state format version {found}")]
    UnsupportedVersion {
        /// Version found in the input.
        found: u64,
    },
    /// A variable-length integer is malformed or overflows its type.
    #[error("malformed varint")]
    BadVarint,
    /// A `bool` byte other than 0 or 1.
    #[error("invalid bool")]
    InvalidBool,
    /// An invalid `char`.
    #[error("invalid char")]
    InvalidChar,
    /// A string is not UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// An enum discriminant or `Option`/`Result` tag that does not exist.
    #[error("bad tag {tag} for type {type_name}")]
    BadTag {
        /// The enum/option type.
        type_name: &'static str,
        /// The tag read.
        tag: u64,
    },
    /// A length larger than the remaining input could possibly hold.
    #[error("length {len} exceeds the remaining input ({remaining} bytes)")]
    LengthExceedsInput {
        /// Declared length.
        len: u64,
        /// Bytes left.
        remaining: usize,
    },
    /// A value is well-formed but out of range for its type.
    #[error("invalid value of type {type_name}: {reason}")]
    InvalidValue {
        /// The type.
        type_name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A map or set holds the same key twice.
    #[error("duplicate key in {type_name}")]
    DuplicateKey {
        /// The collection type.
        type_name: &'static str,
    },
    /// An object reference names an object that does not exist.
    #[error("reference to object {id}, but there are {count} objects")]
    BadObjectRef {
        /// Referenced id.
        id: u64,
        /// Number of objects.
        count: usize,
    },
    /// An object is referenced as a different type than it was saved as.
    #[error("object {id} referenced as {expected}")]
    ObjectTypeMismatch {
        /// Object id.
        id: u32,
        /// The type the reference expects.
        expected: String,
    },
    /// A strong reference to an object that is not built yet.
    #[error("strong reference to object {id} before it is built")]
    ObjectNotReady {
        /// Object id.
        id: u32,
    },
    /// The object table names a type this build does not know.
    #[error("unknown object type {name}")]
    UnknownObjectType {
        /// Type name from the input.
        name: String,
    },
    /// The object construction plan is inconsistent.
    #[error("invalid object plan: {reason}")]
    BadPlan {
        /// What is wrong.
        reason: &'static str,
    },
    /// The state was saved from a different root type.
    #[error("state holds a {found}, not a {expected}")]
    RootTypeMismatch {
        /// Requested root type.
        expected: String,
        /// Root type in the input.
        found: String,
    },
    /// Two different types of this build have the same schema name.
    #[error("two different types are named {name} in this build's schema")]
    DuplicateTypeName {
        /// The shared name.
        name: String,
    },
    /// The state was written by a build whose types differ from this one.
    /// `type_name` is the first differing type in the saved table's order
    /// (then in this build's order for types the input lacks).
    #[error("schema mismatch at type {type_name}")]
    SchemaMismatch {
        /// First type that differs.
        type_name: String,
        /// Its fingerprint in this build (`None`: not part of this build's
        /// schema).
        expected: Option<u64>,
        /// Its fingerprint in the input (`None`: missing from the input).
        found: Option<u64>,
    },
    /// Bytes left over after a value that should end its section.
    #[error("{count} trailing bytes")]
    TrailingBytes {
        /// Number of unread bytes.
        count: usize,
    },
    /// Values nest deeper than the decoder allows.
    #[error("value nesting deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A serde value (through a `with` module) failed to deserialize.
    #[error("value deserialization failed")]
    Deserialize {
        /// The deserializer's error.
        #[source]
        source: postcard::Error,
    },
}

impl LoadError {
    /// Maps a postcard decoding error to the precise variant.
    pub(crate) fn from_postcard(e: postcard::Error) -> Self {
        use postcard::Error as P;
        match e {
            P::DeserializeUnexpectedEnd => LoadError::Truncated,
            P::DeserializeBadVarint => LoadError::BadVarint,
            P::DeserializeBadBool => LoadError::InvalidBool,
            P::DeserializeBadChar => LoadError::InvalidChar,
            P::DeserializeBadUtf8 => LoadError::InvalidUtf8,
            other => LoadError::Deserialize { source: other },
        }
    }
}
