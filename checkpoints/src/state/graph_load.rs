//! Building the objects of a graph on load, and running `after_load` hooks.
//!
//! The input lists every object's body and a *plan*: the order in which
//! bodies are decoded (`completion`, dependencies first) and the set of
//! objects that must exist as `Weak` targets before their own body is
//! decoded (`forward`, outermost first). See the [`crate::state`] module docs
//! for the algorithm. Objects not in `forward` are decoded and wrapped with
//! `Arc::new`. Each `forward` object is built with `Arc::new_cyclic`; the
//! frames nest, so while the innermost frame runs, every forward object
//! already has a `Weak` that becomes valid when its frame returns.
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

use super::decoder::Slot;
use super::schema::Continuation;
use super::{AfterLoad, Decoder, LoadError, Stateify};

/// Most objects that may be open (inside nested `new_cyclic` frames) at
/// once. Each costs a few stack frames; this bound keeps a hostile plan from
/// overflowing the stack.
pub const MAX_FORWARD: usize = 4096;

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
    dec.graph.slots[id as usize] = Slot::Done(Box::new(Arc::new(value)));
    Ok(())
}

/// Builds forward object `id` with `Arc::new_cyclic`: publishes its `Weak`,
/// runs `inner` (the frames nested inside this one), then decodes bodies up
/// to and including its own.
pub(crate) fn build_cyclic<T: Stateify>(
    dec: &mut Decoder<'_>,
    id: u32,
    inner: Continuation<'_>,
) -> Result<(), LoadError> {
    let arc = Arc::new_cyclic(|weak: &Weak<T>| {
        dec.graph.slots[id as usize] = Slot::Open(Box::new(weak.clone()));
        let built = inner(dec)
            .and_then(|()| run_until(dec, Some(id)))
            .and_then(|()| decode_body::<T>(dec, id));
        match built {
            Ok(value) => value,
            Err(e) => {
                dec.graph.error = Some(e);
                resume_unwind(Box::new(LoadAborted))
            }
        }
    });
    dec.graph.slots[id as usize] = Slot::Done(Box::new(arc));
    Ok(())
}

/// Runs the hooks inside object `obj` (an `Arc<T>`).
pub(crate) fn walk<T: Stateify>(obj: &dyn Any, hooks: &mut AfterLoad) {
    if let Some(arc) = obj.downcast_ref::<Arc<T>>() {
        T::after_load_walk(arc, hooks);
    }
}

/// Decodes bodies in completion order until object `stop` is next (or to
/// the end when `stop` is `None`). Reaching a forward object other than
/// `stop` means the plan does not nest.
fn run_until(dec: &mut Decoder<'_>, stop: Option<u32>) -> Result<(), LoadError> {
    while let Some(&id) = dec.graph.completion.get(dec.graph.cursor) {
        if Some(id) == stop {
            dec.graph.cursor += 1;
            return Ok(());
        }
        if dec.graph.is_forward[id as usize] {
            return Err(LoadError::BadPlan {
                reason: "forward objects do not nest",
            });
        }
        dec.graph.cursor += 1;
        let vt = dec.graph.obj_vtable[id as usize];
        (dec.graph.vtables[vt].build_plain)(dec, id)?;
    }
    match stop {
        None => Ok(()),
        Some(_) => Err(LoadError::BadPlan {
            reason: "forward object missing from completion order",
        }),
    }
}

/// Opens the frames of forward objects `i..`, innermost last.
fn open_frames(dec: &mut Decoder<'_>, i: usize) -> Result<(), LoadError> {
    let Some(&id) = dec.graph.forward.get(i) else {
        return Ok(());
    };
    let vt = dec.graph.obj_vtable[id as usize];
    let build = dec.graph.vtables[vt].build_cyclic;
    build(dec, id, &mut |d: &mut Decoder<'_>| open_frames(d, i + 1))
}

/// Builds every object according to the plan.
pub(crate) fn run_plan(dec: &mut Decoder<'_>) -> Result<(), LoadError> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        open_frames(dec, 0)?;
        run_until(dec, None)
    }));
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
    let n = dec.graph.slots.len();
    let mut edges = std::mem::take(&mut dec.graph.edges);
    for id in hook_order(n, &mut edges) {
        let vt = &dec.graph.vtables[dec.graph.obj_vtable[id as usize]];
        if !vt.has_hooks {
            continue;
        }
        if let Slot::Done(obj) = &dec.graph.slots[id as usize] {
            (vt.walk)(&**obj, hooks);
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
