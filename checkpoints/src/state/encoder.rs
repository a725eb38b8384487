//! The encoder: a byte buffer plus the save side of the object graph.
//!
//! Identity of shared objects is the address of their `Arc` allocation. The
//! encoder keeps a strong reference to every object it has assigned an id
//! (in its queue), so no address can be freed and reused by another object
//! while a save is in progress, and an object reached only through a `Weak`
//! stays alive until its body is written.

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Weak};

use super::{varint, SaveError, Stateify};

/// Deepest value nesting [`Encoder::enter`] accepts (recursive data such as
/// `Option<Box<List>>`); mirrored by the decoder's limit.
pub const MAX_DEPTH: usize = 256;

/// Largest count of zero-byte elements (e.g. `Vec<()>`) a collection may
/// hold; such elements cannot be bounded by the input size.
pub const MAX_ZERO_SIZED_LEN: usize = 1 << 20;

/// An object whose body still has to be written, type-erased.
pub(crate) trait ErasedObject {
    fn save_body(&self, enc: &mut Encoder) -> Result<(), SaveError>;
}

impl<T: Stateify> ErasedObject for T {
    fn save_body(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        self.save(enc)
    }
}

/// A reference recorded while writing an object's body.
#[derive(Clone, Copy)]
pub(crate) struct Edge {
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) weak: bool,
}

/// Index of `T` in the object-type table, adding it on first use.
fn type_index<T: Stateify>(
    index: &mut HashMap<TypeId, u32>,
    names: &mut Vec<String>,
    last: &mut Option<(TypeId, u32)>,
) -> u32 {
    let tid = TypeId::of::<T>();
    if let Some((last_tid, ty)) = *last {
        if last_tid == tid {
            return ty;
        }
    }
    let next_type = names.len() as u32;
    let ty = *index.entry(tid).or_insert(next_type);
    if ty == next_type {
        names.push(T::type_name());
    }
    *last = Some((tid, ty));
    ty
}

/// Hasher for allocation addresses (SipHash would dominate the encoder's
/// time on large graphs; the keys are not attacker-chosen, and a bad
/// distribution could only cost time).
#[derive(Default)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }
    /// Low bits: the address itself (allocation granularity shifted out),
    /// so objects allocated together land in nearby buckets and a graph
    /// walk stays cache-friendly; top 7 bits (hashbrown's tag): a mix of
    /// the whole address, so tags still discriminate.
    fn write_u64(&mut self, n: u64) {
        let mixed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = ((n >> 4) & (u64::MAX >> 7)) | (mixed & !(u64::MAX >> 7));
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Save-side object graph state.
#[derive(Default)]
pub(crate) struct SaveGraph {
    /// Allocation address → object id.
    ids: HashMap<usize, u32, BuildHasherDefault<AddrHasher>>,
    /// Objects in id (discovery) order; also keeps them alive.
    pub(crate) queue: Vec<Arc<dyn ErasedObject>>,
    /// Object id → index into `type_names`.
    pub(crate) obj_type: Vec<u32>,
    type_index: HashMap<TypeId, u32>,
    /// Cache of the last `type_index` hit (objects come in runs of a type).
    last_type: Option<(TypeId, u32)>,
    pub(crate) type_names: Vec<String>,
    /// References between objects (not from the root value), grouped by
    /// `from` in increasing order because bodies are written in id order.
    pub(crate) edges: Vec<Edge>,
    /// The object whose body is being written (`None`: the root value).
    pub(crate) current: Option<u32>,
}

/// Writes state. Passed to [`Stateify::save`]; `with` modules use
/// [`Encoder::serialize`], [`Encoder::write_len`] and
/// [`Encoder::write_bytes`].
pub struct Encoder {
    pub(crate) buf: Vec<u8>,
    depth: usize,
    pub(crate) graph: SaveGraph,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("bytes", &self.buf.len())
            .field("objects", &self.graph.queue.len())
            .finish()
    }
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Encoder {
            buf: Vec::new(),
            depth: 0,
            graph: SaveGraph::default(),
        }
    }

    /// Writes a serde value with postcard.
    pub fn serialize<V: serde::Serialize + ?Sized>(&mut self, value: &V) -> Result<(), SaveError> {
        postcard::to_io(value, &mut self.buf).map_err(|source| SaveError::Serialize { source })?;
        Ok(())
    }

    /// Writes an unsigned integer as a postcard varint.
    pub fn write_varint(&mut self, v: u64) {
        varint::write(&mut self.buf, v);
    }

    /// Writes a collection length (varint).
    pub fn write_len(&mut self, len: usize) {
        // usize is at most 64 bits on every supported target.
        varint::write(&mut self.buf, len as u64);
    }

    /// Writes a length for `len` elements of `T`, refusing lengths a loader
    /// would reject.
    pub(crate) fn write_len_of<T: Stateify>(&mut self, len: usize) -> Result<(), SaveError> {
        if T::MIN_SIZE == 0 && len > MAX_ZERO_SIZED_LEN {
            return Err(SaveError::TooLong {
                len,
                limit: MAX_ZERO_SIZED_LEN,
            });
        }
        self.write_len(len);
        Ok(())
    }

    /// Writes raw bytes (no length).
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Enters one level of value nesting (derived code calls this around
    /// every derived value).
    #[doc(hidden)]
    pub fn enter(&mut self) -> Result<(), SaveError> {
        if self.depth >= MAX_DEPTH {
            return Err(SaveError::TooDeep { limit: MAX_DEPTH });
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves a level entered with [`Encoder::enter`].
    #[doc(hidden)]
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Returns the id of the object `arc` points to, assigning one (and
    /// queueing its body) on first encounter.
    fn object_id<T: Stateify>(&mut self, arc: &Arc<T>) -> Result<u32, SaveError> {
        use std::collections::hash_map::Entry;
        let addr = Arc::as_ptr(arc) as *const () as usize;
        let g = &mut self.graph;
        let next = g.queue.len();
        let slot = match g.ids.entry(addr) {
            Entry::Occupied(e) => return Ok(*e.get()),
            Entry::Vacant(v) => v,
        };
        let id = u32::try_from(next).map_err(|_| SaveError::TooManyObjects {
            limit: u32::MAX as usize,
        })?;
        slot.insert(id);
        let ty = type_index::<T>(&mut g.type_index, &mut g.type_names, &mut g.last_type);
        let erased: Arc<dyn ErasedObject> = arc.clone();
        g.queue.push(erased);
        g.obj_type.push(ty);
        Ok(id)
    }

    fn record_edge(&mut self, to: u32, weak: bool) {
        if let Some(from) = self.graph.current {
            self.graph.edges.push(Edge { from, to, weak });
        }
    }

    /// Writes a strong reference: the object's id.
    pub(crate) fn save_arc<T: Stateify>(&mut self, arc: &Arc<T>) -> Result<(), SaveError> {
        let id = self.object_id(arc)?;
        self.record_edge(id, false);
        self.write_varint(u64::from(id));
        Ok(())
    }

    /// Writes a weak reference: 0 if dangling, else object id + 1.
    pub(crate) fn save_weak<T: Stateify>(&mut self, weak: &Weak<T>) -> Result<(), SaveError> {
        match weak.upgrade() {
            None => self.write_varint(0),
            Some(arc) => {
                let id = self.object_id(&arc)?;
                self.record_edge(id, true);
                self.write_varint(u64::from(id) + 1);
            }
        }
        Ok(())
    }
}
