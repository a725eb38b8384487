//! The decoder: a bounded cursor over the input plus the load side of the
//! object graph (slots of built and in-progress objects).
//!
//! Every read checks the remaining input first; lengths are checked against
//! the remaining input *before* anything is allocated.

use std::any::Any;
use std::sync::{Arc, Weak};

use super::encoder::{MAX_DEPTH, MAX_ZERO_SIZED_LEN};
use super::schema::ObjectVTable;
use super::varint::{self, VarintError};
use super::{LoadError, Stateify};

/// State of one object during load.
pub(crate) enum Slot<T> {
    /// Not built yet.
    Empty,
    /// Being built inside `Arc::new_cyclic`: its `Weak`.
    Open(Weak<T>),
    /// Built.
    Done(Arc<T>),
}

/// The slots of every object of one type, indexed by the object's index
/// among objects of its type (one allocation per type, not per object).
pub(crate) type TypedSlots<T> = Vec<Slot<T>>;

/// Load-side object graph state.
#[derive(Default)]
pub(crate) struct LoadGraph {
    /// Object-type index (into `vtables`) → that type's `TypedSlots<T>`.
    pub(crate) slots: Vec<Box<dyn Any>>,
    /// Object id → index within its type's slots.
    pub(crate) local: Vec<u32>,
    /// Number of objects.
    pub(crate) count: usize,
    /// Object id → (offset, length) of its body in the input.
    pub(crate) bodies: Vec<(usize, usize)>,
    /// Object id → index into `vtables`.
    pub(crate) obj_vtable: Vec<usize>,
    pub(crate) vtables: Vec<ObjectVTable>,
    /// Objects built inside a `new_cyclic` frame, by opening position.
    pub(crate) frames: Vec<super::plan::Frame>,
    /// Next entry of `frames` to open.
    pub(crate) next_frame: usize,
    /// Frames currently open.
    pub(crate) open_depth: usize,
    pub(crate) is_forward: Vec<bool>,
    /// Order in which bodies are decoded.
    pub(crate) completion: Vec<u32>,
    /// Next index into `completion`.
    pub(crate) cursor: usize,
    /// The object whose body is being decoded.
    pub(crate) current: Option<u32>,
    /// Whether to record `edges` (only needed for hook ordering).
    pub(crate) record_edges: bool,
    /// (from, to) references between objects, in decode order.
    pub(crate) edges: Vec<(u32, u32)>,
    /// Error raised inside a `new_cyclic` frame, carried across the unwind.
    pub(crate) error: Option<LoadError>,
}

/// Reads state. Passed to [`Stateify::load`]; `with` modules use
/// [`Decoder::deserialize`], [`Decoder::read_len`] and
/// [`Decoder::read_bytes`].
pub struct Decoder<'i> {
    input: &'i [u8],
    pos: usize,
    end: usize,
    depth: usize,
    pub(crate) graph: LoadGraph,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("pos", &self.pos)
            .field("end", &self.end)
            .finish()
    }
}

fn varint_error(e: VarintError) -> LoadError {
    match e {
        VarintError::Truncated => LoadError::Truncated,
        VarintError::Overflow => LoadError::BadVarint,
    }
}

impl<'i> Decoder<'i> {
    pub(crate) fn new(input: &'i [u8]) -> Self {
        Decoder {
            input,
            pos: 0,
            end: input.len(),
            depth: 0,
            graph: LoadGraph::default(),
        }
    }

    /// Bytes left in the current section.
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Restricts the cursor to `[start, start + len)`; returns the previous
    /// window for [`Decoder::restore_window`].
    pub(crate) fn set_window(&mut self, start: usize, len: usize) -> (usize, usize) {
        let prev = (self.pos, self.end);
        self.pos = start;
        self.end = start + len;
        prev
    }

    pub(crate) fn restore_window(&mut self, prev: (usize, usize)) {
        (self.pos, self.end) = prev;
    }

    /// Fails unless the current window has been consumed exactly.
    pub(crate) fn expect_end(&self) -> Result<(), LoadError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(LoadError::TrailingBytes { count }),
        }
    }

    /// Reads a serde value with postcard.
    pub fn deserialize<V: serde::de::DeserializeOwned>(&mut self) -> Result<V, LoadError> {
        let window = &self.input[self.pos..self.end];
        let (v, rest) = postcard::take_from_bytes::<V>(window).map_err(LoadError::from_postcard)?;
        self.pos = self.end - rest.len();
        Ok(v)
    }

    /// Reads a string without copying it first.
    pub fn read_str(&mut self) -> Result<&'i str, LoadError> {
        let len = self.read_len(1)?;
        let bytes = self.read_bytes(len)?;
        std::str::from_utf8(bytes).map_err(|_| LoadError::InvalidUtf8)
    }

    /// Reads a postcard varint.
    pub fn read_varint(&mut self) -> Result<u64, LoadError> {
        let window = &self.input[..self.end];
        varint::read(window, &mut self.pos).map_err(varint_error)
    }

    /// Reads a collection length whose elements each take at least
    /// `min_size` bytes, refusing lengths the remaining input cannot hold.
    pub fn read_len(&mut self, min_size: usize) -> Result<usize, LoadError> {
        let len = self.read_varint()?;
        let remaining = self.remaining();
        let fits = if min_size == 0 {
            len <= MAX_ZERO_SIZED_LEN as u64
        } else {
            len.checked_mul(min_size as u64)
                .is_some_and(|need| need <= remaining as u64)
        };
        if !fits {
            return Err(LoadError::LengthExceedsInput { len, remaining });
        }
        // Bounded by the remaining input (a usize) or by MAX_ZERO_SIZED_LEN.
        Ok(len as usize)
    }

    /// Reads a collection length for elements of type `T`.
    pub(crate) fn read_len_of<T: Stateify>(&mut self) -> Result<usize, LoadError> {
        self.read_len(T::MIN_SIZE)
    }

    /// Reads `n` raw bytes.
    pub fn read_bytes(&mut self, n: usize) -> Result<&'i [u8], LoadError> {
        if n > self.remaining() {
            return Err(LoadError::Truncated);
        }
        let input: &'i [u8] = self.input;
        let out = &input[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Reads a fixed-size array of bytes.
    pub(crate) fn read_array<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        let bytes = self.read_bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A safe preallocation for `n` elements of `T` (already bounded by
    /// [`Decoder::read_len`]).
    pub(crate) fn capacity_for<T: Stateify>(&self, n: usize) -> usize {
        n.min(self.remaining() / T::MIN_SIZE.max(1) + 1)
    }

    /// Enters one level of value nesting.
    #[doc(hidden)]
    pub fn enter(&mut self) -> Result<(), LoadError> {
        if self.depth >= MAX_DEPTH {
            return Err(LoadError::TooDeep { limit: MAX_DEPTH });
        }
        self.depth += 1;
        Ok(())
    }

    /// Leaves a level entered with [`Decoder::enter`].
    #[doc(hidden)]
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Reads an object id and records the reference.
    fn object_ref(&mut self, raw: u64) -> Result<u32, LoadError> {
        let count = self.graph.count;
        if raw >= count as u64 {
            return Err(LoadError::BadObjectRef { id: raw, count });
        }
        // Below the object count, which fits in u32 (checked at header parse).
        let id = raw as u32;
        if self.graph.record_edges {
            if let Some(from) = self.graph.current {
                self.graph.edges.push((from, id));
            }
        }
        Ok(id)
    }

    /// The slot of object `id`, if its type is `T`.
    fn slot<T: Stateify>(&self, id: u32) -> Result<&Slot<T>, LoadError> {
        let vt = self.graph.obj_vtable[id as usize];
        self.graph.slots[vt]
            .downcast_ref::<TypedSlots<T>>()
            .and_then(|slots| slots.get(self.graph.local[id as usize] as usize))
            .ok_or_else(|| LoadError::ObjectTypeMismatch {
                id,
                expected: T::type_name(),
            })
    }

    /// Sets the slot of object `id` (of type `T`, as its vtable says).
    pub(crate) fn set_slot<T: Stateify>(&mut self, id: u32, slot: Slot<T>) {
        let vt = self.graph.obj_vtable[id as usize];
        let local = self.graph.local[id as usize] as usize;
        if let Some(s) = self.graph.slots[vt]
            .downcast_mut::<TypedSlots<T>>()
            .and_then(|v| v.get_mut(local))
        {
            *s = slot;
        }
    }

    /// Reads a strong reference to a built object.
    pub(crate) fn load_arc<T: Stateify>(&mut self) -> Result<Arc<T>, LoadError> {
        let raw = self.read_varint()?;
        let id = self.object_ref(raw)?;
        match self.slot::<T>(id)? {
            Slot::Done(arc) => Ok(arc.clone()),
            Slot::Open(_) | Slot::Empty => Err(LoadError::ObjectNotReady { id }),
        }
    }

    /// Reads a weak reference (to a built or in-progress object).
    pub(crate) fn load_weak<T: Stateify>(&mut self) -> Result<Weak<T>, LoadError> {
        let raw = self.read_varint()?;
        if raw == 0 {
            return Ok(Weak::new());
        }
        let id = self.object_ref(raw - 1)?;
        match self.slot::<T>(id)? {
            Slot::Done(arc) => Ok(Arc::downgrade(arc)),
            Slot::Open(weak) => Ok(weak.clone()),
            Slot::Empty => Err(LoadError::ObjectNotReady { id }),
        }
    }
}
