//! Building the objects of a graph on load, and running `after_load` hooks.
//!
//! The input lists every object's body and a *plan* (computed by
//! [`super::plan`]): the order in which bodies are decoded (`completion`,
//! dependencies first) and the *frames*: objects that must exist as `Weak`
//! targets before their own body is decoded, each with the completion
//! position at which its frame opens. Other objects are decoded and wrapped
//! with `Arc::new`. A frame is an `Arc::new_cyclic` call whose closure
//! publishes the object's `Weak`, keeps decoding bodies in completion order
//! (opening nested frames on the way) until the object's own turn, decodes
//! it and returns — which makes its `Weak`s live. The loader does not trust
//! the plan: a frame that does not nest, a strong reference to an unbuilt
//! object or a weak one to an unopened object is a [`LoadError`].
//!
//! `Arc::new_cyclic` needs a value from its closure and cannot fail, so an
//! error inside a frame is stored in the decoder and the frames are left by
//! `std::panic::resume_unwind` (which does not run the panic hook: nothing is
//! printed, and it is caught in [`run_plan`]). Dropping the unwound frames
//! frees the partial allocations. This requires `panic = "unwind"`, the
//! default profile setting.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};

use super::decoder::{Slot, TypedSlots};
use super::schema::Continuation;
use super::{AfterLoad, Decoder, LoadError, Stateify};

/// Most `new_cyclic` frames that may be open (nested) at once. Each costs a
/// few KiB of stack (measured: 2–4 KiB per frame in debug builds); frames
/// run on stack segments that `stacker` grows on the heap, so the bound is
/// about memory (a hostile plan costs at most tens of MiB), not about the
/// caller's thread stack.
pub const MAX_OPEN_FRAMES: usize = 16_384;

/// Free stack below which a frame switches to a new segment.
const STACK_RED_ZONE: usize = 64 * 1024;
/// Size of each new stack segment.
const STACK_SEGMENT: usize = 1024 * 1024;

/// Marker payload of the internal unwind.
struct LoadAborted;

/// Decodes the body of object `id` as a `T`.
fn decode_body<T: Stateify>(dec: &mut Decoder<'_>, id: u32) -> Result<T, LoadError> {
    let (start, len) = dec.graph.bodies[id as usize];
    let prev_window = dec.set_window(start, len);
    let prev_current = dec.graph.current.replace(id);
    let value = T::load(dec)?;
    dec.expect_end()?;
    dec.graph.current = prev_current;
    dec.restore_window(prev_window);
    Ok(value)
}

/// Builds object `id` (not a forward target) with `Arc::new`.
pub(crate) fn build_plain<T: Stateify>(dec: &mut Decoder<'_>, id: u32) -> Result<(), LoadError> {
    let value = decode_body::<T>(dec, id)?;
    dec.set_slot(id, Slot::Done(Arc::new(value)));
    Ok(())
}

/// Builds forward object `id` with `Arc::new_cyclic`: publishes its `Weak`,
/// runs `inner` (which decodes bodies up to its own turn, opening nested
/// frames), then decodes its own body.
pub(crate) fn build_cyclic<T: Stateify>(
    dec: &mut Decoder<'_>,
    id: u32,
    inner: Continuation<'_>,
) -> Result<(), LoadError> {
    let arc = Arc::new_cyclic(|weak: &Weak<T>| {
        dec.set_slot(id, Slot::Open(weak.clone()));
        match inner(dec).and_then(|()| decode_body::<T>(dec, id)) {
            Ok(value) => value,
            Err(e) => {
                dec.graph.error = Some(e);
                resume_unwind(Box::new(LoadAborted))
            }
        }
    });
    dec.set_slot(id, Slot::Done(arc));
    Ok(())
}

/// Runs the hooks inside the built object at `local` of `slots` (a
/// `TypedSlots<T>`).
pub(crate) fn walk<T: Stateify>(slots: &dyn Any, local: usize, hooks: &mut AfterLoad) {
    if let Some(Slot::Done(arc)) = slots
        .downcast_ref::<TypedSlots<T>>()
        .and_then(|v| v.get(local))
    {
        T::after_load_walk(arc, hooks);
    }
}

/// Makes the slots of `count` objects of type `T`.
pub(crate) fn new_slots<T: Stateify>(count: usize) -> Box<dyn Any> {
    let slots: TypedSlots<T> = (0..count).map(|_| Slot::Empty).collect();
    Box::new(slots)
}

/// Decodes bodies in completion order, opening frames where the plan says,
/// until object `stop` is next (its frame decodes it) or to the end when
/// `stop` is `None`.
fn run_until(dec: &mut Decoder<'_>, stop: Option<u32>) -> Result<(), LoadError> {
    loop {
        let cursor = dec.graph.cursor;
        if let Some(&frame) = dec.graph.frames.get(dec.graph.next_frame) {
            if frame.open_at == cursor {
                dec.graph.next_frame += 1;
                open_frame(dec, frame.id)?;
                continue;
            }
        }
        let Some(&id) = dec.graph.completion.get(cursor) else {
            return match stop {
                None => Ok(()),
                Some(_) => Err(LoadError::BadPlan {
                    reason: "frame object missing from completion order",
                }),
            };
        };
        dec.graph.cursor += 1;
        if Some(id) == stop {
            return Ok(());
        }
        if dec.graph.is_forward[id as usize] {
            return Err(LoadError::BadPlan {
                reason: "frames do not nest",
            });
        }
        let vt = dec.graph.obj_vtable[id as usize];
        (dec.graph.vtables[vt].build_plain)(dec, id)?;
    }
}

/// Opens the frame of forward object `id` and builds it.
fn open_frame(dec: &mut Decoder<'_>, id: u32) -> Result<(), LoadError> {
    if dec.graph.open_depth >= MAX_OPEN_FRAMES {
        return Err(LoadError::BadPlan {
            reason: "frames nest too deep",
        });
    }
    dec.graph.open_depth += 1;
    let vt = dec.graph.obj_vtable[id as usize];
    let build = dec.graph.vtables[vt].build_cyclic;
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || {
        build(dec, id, &mut |d: &mut Decoder<'_>| run_until(d, Some(id)))
    })?;
    dec.graph.open_depth -= 1;
    Ok(())
}

/// Builds every object according to the plan.
pub(crate) fn run_plan(dec: &mut Decoder<'_>) -> Result<(), LoadError> {
    let outcome = catch_unwind(AssertUnwindSafe(|| run_until(dec, None)));
    match outcome {
        Ok(result) => result,
        Err(payload) if payload.is::<LoadAborted>() => {
            Err(dec.graph.error.take().unwrap_or(LoadError::BadPlan {
                reason: "aborted without an error",
            }))
        }
        // A panic from user code (e.g. a `with` module): not ours to swallow.
        Err(payload) => resume_unwind(payload),
    }
}

/// The order in which objects' hooks run: depth-first post-order over all
/// references (strong and weak, in the order they were decoded within each
/// body), starting from objects in id order. A reference to an object still
/// on the DFS stack (a cycle) is skipped, so on a cycle the object reached
/// first runs its hook last.
pub(crate) fn hook_order(n: usize, edges: &mut [(u32, u32)]) -> Vec<u32> {
    edges.sort_by_key(|&(from, _)| from);
    let mut start = vec![0usize; n + 1];
    for &(from, _) in edges.iter() {
        start[from as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    // 0 = unvisited, 1 = on stack, 2 = done.
    let mut state = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for root in 0..n as u32 {
        if state[root as usize] != 0 {
            continue;
        }
        state[root as usize] = 1;
        stack.push((root, start[root as usize]));
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            if next < start[node as usize + 1] {
                top.1 += 1;
                let to = edges[next].1;
                if state[to as usize] == 0 {
                    state[to as usize] = 1;
                    stack.push((to, start[to as usize]));
                }
            } else {
                state[node as usize] = 2;
                order.push(node);
                stack.pop();
            }
        }
    }
    order
}

/// Runs every object's hooks in [`hook_order`].
pub(crate) fn run_object_hooks(dec: &mut Decoder<'_>, hooks: &mut AfterLoad) {
    let n = dec.graph.count;
    let mut edges = std::mem::take(&mut dec.graph.edges);
    for id in hook_order(n, &mut edges) {
        let vt = dec.graph.obj_vtable[id as usize];
        let table = &dec.graph.vtables[vt];
        if table.has_hooks {
            (table.walk)(
                dec.graph.slots[vt].as_ref(),
                dec.graph.local[id as usize] as usize,
                hooks,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_order_is_post_order_and_breaks_cycles_at_first_reached() {
        // 0 → 1 → 2 → 0 (cycle), 3 → 1.
        let mut edges = vec![(0, 1), (1, 2), (2, 0), (3, 1)];
        assert_eq!(hook_order(4, &mut edges), vec![2, 1, 0, 3]);
    }
}
