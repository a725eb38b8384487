//! The save-side construction plan (see the [`crate::state`] module docs).
//!
//! - `completion`: the strongly connected components of the reference
//!   graph (strong and weak references) in reverse topological order
//!   (Tarjan's algorithm, objects in id order), so every reference that
//!   leaves a component — strong or weak — points at an object already
//!   built; within a component, depth-first post-order over *strong*
//!   references from its objects in id order — every object after
//!   everything it holds strongly. A strong reference back to an object on
//!   that DFS stack is a strong cycle, which safe Rust cannot rebuild:
//!   [`SaveError::StrongCycle`]. Only weak references inside a cycle can
//!   then point forward.
//! - `frames`: *forward* objects — targets of a `Weak` in a body decoded no
//!   later than their own (including weak self-references) — each with the
//!   completion position at which its `Arc::new_cyclic` frame opens. A frame
//!   must be open from its first weak referrer's position to its own
//!   position, and frames nest (a frame closes before any frame opened
//!   before it). Starting from the latest-possible opening, an interval that
//!   overlaps an earlier one without containing it is extended to open
//!   where the earlier one opens, which makes the intervals laminar with
//!   nesting depth equal to how deep the `Weak`-cycles genuinely nest (for
//!   a tree with parent pointers: the tree's depth). Frames are listed by
//!   opening position, outer (later-closing) first.

use super::encoder::Edge;
use super::graph_load::MAX_OPEN_FRAMES;
use super::SaveError;

/// A forward object and the completion position its frame opens at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) id: u32,
    pub(crate) open_at: usize,
}

/// The plan written into the state.
pub(crate) struct Plan {
    pub(crate) completion: Vec<u32>,
    pub(crate) frames: Vec<Frame>,
}

/// Computes the plan for `n` objects with `edges` grouped by `from`
/// (ascending). `type_of` names an object's type for errors.
pub(crate) fn compute(
    n: usize,
    edges: &[Edge],
    type_of: impl Fn(u32) -> String,
) -> Result<Plan, SaveError> {
    let mut start = vec![0usize; n + 1];
    for e in edges {
        start[e.from as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let completion = completion_order(n, edges, &start, &type_of)?;
    let mut pos = vec![0usize; n];
    for (p, &id) in completion.iter().enumerate() {
        pos[id as usize] = p;
    }
    // Latest opening of each forward object: its earliest weak referrer.
    let mut open_at = vec![usize::MAX; n];
    for e in edges.iter().filter(|e| e.weak) {
        let (from, to) = (pos[e.from as usize], pos[e.to as usize]);
        if to >= from {
            open_at[e.to as usize] = open_at[e.to as usize].min(from);
        }
    }
    // Laminar: in closing order, swallow every earlier frame still open at
    // this frame's opening.
    let mut by_close: Vec<u32> = completion
        .iter()
        .copied()
        .filter(|&id| open_at[id as usize] != usize::MAX)
        .collect();
    let mut stack: Vec<Frame> = Vec::new();
    for &id in &by_close {
        let mut open = open_at[id as usize];
        while let Some(top) = stack.last() {
            if pos[top.id as usize] < open {
                break;
            }
            open = open.min(top.open_at);
            stack.pop();
        }
        open_at[id as usize] = open;
        stack.push(Frame { id, open_at: open });
    }
    by_close.sort_by_key(|&id| (open_at[id as usize], std::cmp::Reverse(pos[id as usize])));
    let frames: Vec<Frame> = by_close
        .iter()
        .map(|&id| Frame {
            id,
            open_at: open_at[id as usize],
        })
        .collect();
    let depth = max_depth(&frames, &pos);
    if depth > MAX_OPEN_FRAMES {
        return Err(SaveError::TooManyOpenFrames {
            depth,
            limit: MAX_OPEN_FRAMES,
        });
    }
    Ok(Plan { completion, frames })
}

/// Deepest nesting of `frames` (listed by opening, outer first).
fn max_depth(frames: &[Frame], pos: &[usize]) -> usize {
    let mut closes: Vec<usize> = Vec::new();
    let mut depth = 0;
    for f in frames {
        while closes.last().is_some_and(|&c| c < f.open_at) {
            closes.pop();
        }
        closes.push(pos[f.id as usize]);
        depth = depth.max(closes.len());
    }
    depth
}

/// Components in reverse topological order, each in strong post-order.
fn completion_order(
    n: usize,
    edges: &[Edge],
    start: &[usize],
    type_of: &impl Fn(u32) -> String,
) -> Result<Vec<u32>, SaveError> {
    let components = tarjan(n, edges, start);
    let mut comp_of = vec![0u32; n];
    for (c, members) in components.iter().enumerate() {
        for &m in members {
            comp_of[m as usize] = c as u32;
        }
    }
    // 0 = unvisited, 1 = on stack, 2 = done.
    let mut state = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for (c, members) in components.iter().enumerate() {
        let mut roots = members.clone();
        roots.sort_unstable();
        for root in roots {
            if state[root as usize] != 0 {
                continue;
            }
            state[root as usize] = 1;
            stack.push((root, start[root as usize]));
            while let Some(top) = stack.last_mut() {
                let (node, next) = *top;
                if next < start[node as usize + 1] {
                    top.1 += 1;
                    let e = edges[next];
                    // Weak references, and references out of the component
                    // (built already), impose nothing here.
                    if e.weak || comp_of[e.to as usize] as usize != c {
                        continue;
                    }
                    match state[e.to as usize] {
                        0 => {
                            state[e.to as usize] = 1;
                            stack.push((e.to, start[e.to as usize]));
                        }
                        1 => {
                            return Err(SaveError::StrongCycle {
                                type_name: type_of(e.to),
                            })
                        }
                        _ => {}
                    }
                } else {
                    state[node as usize] = 2;
                    order.push(node);
                    stack.pop();
                }
            }
        }
    }
    Ok(order)
}

/// Tarjan's strongly connected components over all references, iterative,
/// roots in id order; components come out in reverse topological order
/// (a component after every component it refers to).
fn tarjan(n: usize, edges: &[Edge], start: &[usize]) -> Vec<Vec<u32>> {
    const UNVISITED: u32 = u32::MAX;
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut call: Vec<(u32, usize)> = Vec::new();
    let mut counter = 0u32;
    let mut components = Vec::new();
    for root in 0..n as u32 {
        if index[root as usize] != UNVISITED {
            continue;
        }
        index[root as usize] = counter;
        low[root as usize] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        call.push((root, start[root as usize]));
        while let Some(top) = call.last_mut() {
            let (v, next) = *top;
            if next < start[v as usize + 1] {
                top.1 += 1;
                let w = edges[next].to;
                if index[w as usize] == UNVISITED {
                    index[w as usize] = counter;
                    low[w as usize] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w as usize] = true;
                    call.push((w, start[w as usize]));
                } else if on_stack[w as usize] {
                    low[v as usize] = low[v as usize].min(index[w as usize]);
                }
                continue;
            }
            call.pop();
            if let Some(&(u, _)) = call.last() {
                low[u as usize] = low[u as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                let mut members = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w as usize] = false;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(members);
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: u32, to: u32, weak: bool) -> Edge {
        Edge { from, to, weak }
    }

    fn frame(id: u32, open_at: usize) -> Frame {
        Frame { id, open_at }
    }

    #[test]
    fn parent_child_cycle_opens_parent_at_first_child() {
        // 0 = child (weak → parent 1), 1 = parent (strong → child 0).
        let edges = [edge(0, 1, true), edge(1, 0, false)];
        let plan = compute(2, &edges, |_| String::new()).expect("plan");
        assert_eq!(plan.completion, vec![0, 1]);
        assert_eq!(plan.frames, vec![frame(1, 0)]);
    }

    #[test]
    fn tree_with_parent_pointers_nests_to_its_depth_only() {
        // Root 0 → dirs 1, 2 (strong); dir 1 → files 3, 4; dir 2 → file 5;
        // every child has a weak parent pointer.
        let edges = [
            edge(0, 1, false),
            edge(0, 2, false),
            edge(1, 0, true),
            edge(1, 3, false),
            edge(1, 4, false),
            edge(2, 0, true),
            edge(2, 5, false),
            edge(3, 1, true),
            edge(4, 1, true),
            edge(5, 2, true),
        ];
        let plan = compute(6, &edges, |_| String::new()).expect("plan");
        assert_eq!(plan.completion, vec![3, 4, 1, 5, 2, 0]);
        // Root's frame swallows dir 1's (open at 0); dir 2 opens at file 5.
        assert_eq!(plan.frames, vec![frame(0, 0), frame(1, 0), frame(2, 3)]);
        let pos = [5, 2, 4, 0, 1, 3];
        assert_eq!(max_depth(&plan.frames, &pos), 2);
    }

    #[test]
    fn mutual_weak_chain_nests_fully() {
        // 0 ⇄ 1 ⇄ 2 through weak references only.
        let edges = [
            edge(0, 1, true),
            edge(1, 0, true),
            edge(1, 2, true),
            edge(2, 1, true),
        ];
        let plan = compute(3, &edges, |_| String::new()).expect("plan");
        assert_eq!(plan.frames, vec![frame(2, 0), frame(1, 0)]);
    }

    #[test]
    fn one_way_weak_chain_needs_no_frames() {
        // 0 ⇢ 1 ⇢ 2 ⇢ 3 (weak "next" pointers, no cycle).
        let edges = [edge(0, 1, true), edge(1, 2, true), edge(2, 3, true)];
        let plan = compute(4, &edges, |_| String::new()).expect("plan");
        assert_eq!(plan.completion, vec![3, 2, 1, 0]);
        assert!(plan.frames.is_empty());
    }

    #[test]
    fn weak_registry_needs_no_frames() {
        // Object 0 (e.g. a name table) refers weakly to 1, 2, 3; they refer
        // strongly to 4 (shared), nothing refers back.
        let edges = [
            edge(0, 1, true),
            edge(0, 2, true),
            edge(0, 3, true),
            edge(1, 4, false),
            edge(2, 4, false),
            edge(3, 4, false),
        ];
        let plan = compute(5, &edges, |_| String::new()).expect("plan");
        assert_eq!(plan.completion, vec![4, 1, 2, 3, 0]);
        assert!(plan.frames.is_empty());
    }

    #[test]
    fn strong_cycle_is_refused() {
        let edges = [edge(0, 1, false), edge(1, 0, false)];
        let err = compute(2, &edges, |id| format!("T{id}")).err();
        assert!(matches!(err, Some(SaveError::StrongCycle { type_name }) if type_name == "T0"));
    }
}
