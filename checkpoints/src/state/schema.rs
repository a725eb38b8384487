//! The static type walk: the per-type fingerprint table (schema) and the
//! table of object types (`T` of every `Arc<T>`/`Weak<T>`) with the
//! type-erased functions that build and walk them on load.
//!
//! The walk follows types, not values, so the table is the same for every
//! value of the root type and is deterministic: depth-first, fields in
//! declaration order, each derived type entered once (by name), which also
//! makes recursive types terminate.

use std::any::{Any, TypeId};
use std::collections::HashSet;

use super::fingerprint;
use super::{graph_load, AfterLoad, Decoder, LoadError, Stateify};

/// One entry of the per-type fingerprint table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeFingerprint {
    /// Type name ([`Stateify::type_name`]).
    pub name: String,
    /// The type's [`Stateify::FINGERPRINT`].
    pub fingerprint: u64,
}

/// The schema of a root type: what an image records and a loader compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Root type name.
    pub root_type: String,
    /// Hash of the root type name and the whole table, in order.
    pub root_fingerprint: u64,
    /// Every derived type reachable from the root (through saved fields),
    /// in walk order.
    pub types: Vec<TypeFingerprint>,
}

/// Computes the schema of `T` (no value needed).
pub fn schema_of<T: Stateify>() -> Schema {
    let mut v = TypeVisitor::default();
    T::visit_types(&mut v);
    v.into_schema(T::type_name())
}

/// Walks `T`'s types; fails if two different types share a schema name.
pub(crate) fn visit<T: Stateify>() -> Result<TypeVisitor, String> {
    let mut v = TypeVisitor::default();
    T::visit_types(&mut v);
    match v.name_conflict.take() {
        Some(name) => Err(name),
        None => Ok(v),
    }
}

pub(crate) type BuildPlainFn = fn(&mut Decoder<'_>, u32) -> Result<(), LoadError>;
pub(crate) type Continuation<'c> = &'c mut dyn FnMut(&mut Decoder<'_>) -> Result<(), LoadError>;
pub(crate) type BuildCyclicFn =
    fn(&mut Decoder<'_>, u32, Continuation<'_>) -> Result<(), LoadError>;
pub(crate) type WalkFn = fn(&dyn Any, usize, &mut AfterLoad);
pub(crate) type NewSlotsFn = fn(usize) -> Box<dyn Any>;

/// How to build and walk objects of one type, erased.
pub(crate) struct ObjectVTable {
    pub(crate) name: String,
    pub(crate) has_hooks: bool,
    pub(crate) build_plain: BuildPlainFn,
    pub(crate) build_cyclic: BuildCyclicFn,
    pub(crate) walk: WalkFn,
    pub(crate) new_slots: NewSlotsFn,
}

/// Collects the schema and object vtables; passed to
/// [`Stateify::visit_types`].
#[derive(Default)]
pub struct TypeVisitor {
    types: Vec<TypeFingerprint>,
    seen_types: HashSet<String>,
    pub(crate) objects: Vec<ObjectVTable>,
    seen_objects: HashSet<TypeId>,
    /// Whether any derived type reached has an `after_load` hook; if none
    /// does, the loader skips hook ordering and walks altogether.
    pub(crate) any_hooks: bool,
    /// First name used by two types with different fingerprints (two
    /// `#[state(name = "…")]` attributes naming the same thing).
    pub(crate) name_conflict: Option<String>,
}

impl std::fmt::Debug for TypeVisitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypeVisitor")
            .field("types", &self.types)
            .field("objects", &self.objects.len())
            .finish()
    }
}

impl TypeVisitor {
    /// Registers a derived type (`has_hook`: it has an `after_load`
    /// method); returns `false` if it was already seen (the caller must then
    /// not recurse).
    #[doc(hidden)]
    pub fn enter_type(&mut self, name: String, fingerprint: u64, has_hook: bool) -> bool {
        if self.seen_types.contains(&name) {
            let same = self
                .types
                .iter()
                .any(|t| t.name == name && t.fingerprint == fingerprint);
            if !same && self.name_conflict.is_none() {
                self.name_conflict = Some(name);
            }
            return false;
        }
        self.any_hooks |= has_hook;
        self.seen_types.insert(name.clone());
        self.types.push(TypeFingerprint { name, fingerprint });
        true
    }

    /// Registers `T` as an object type (pointee of `Arc<T>`/`Weak<T>`) and
    /// recurses into it.
    pub(crate) fn object<T: Stateify>(&mut self) {
        if !self.seen_objects.insert(TypeId::of::<T>()) {
            return;
        }
        self.objects.push(ObjectVTable {
            name: T::type_name(),
            has_hooks: T::HAS_HOOKS,
            build_plain: graph_load::build_plain::<T>,
            build_cyclic: graph_load::build_cyclic::<T>,
            walk: graph_load::walk::<T>,
            new_slots: graph_load::new_slots::<T>,
        });
        T::visit_types(self);
    }

    pub(crate) fn into_schema(self, root_type: String) -> Schema {
        let mut h = fingerprint::hash_str(&root_type);
        for t in &self.types {
            h = fingerprint::combine_str(h, &t.name);
            h = fingerprint::combine(h, t.fingerprint);
        }
        Schema {
            root_type,
            root_fingerprint: h,
            types: self.types,
        }
    }

    /// Splits into the schema, the object vtables and `any_hooks`.
    pub(crate) fn split(self, root_type: String) -> (Schema, Vec<ObjectVTable>, bool) {
        let TypeVisitor {
            types,
            objects,
            any_hooks,
            ..
        } = self;
        let schema = TypeVisitor {
            types,
            ..TypeVisitor::default()
        }
        .into_schema(root_type);
        (schema, objects, any_hooks)
    }
}
