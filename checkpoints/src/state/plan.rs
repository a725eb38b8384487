//! The save-side construction plan (see the [`crate::state`] module docs).
//!
//! - `completion`: depth-first post-order over *strong* references, from
//!   objects in id order — every object after everything it holds strongly.
//!   A strong reference back to an object on the DFS stack is a strong
//!   cycle, which safe Rust cannot rebuild: [`SaveError::StrongCycle`].
//! - `forward`: objects that some body decoded no later than their own
//!   refers to weakly (including weak self-references). They are opened
//!   ahead with `Arc::new_cyclic`, latest-completing outermost, so frames
//!   close in completion order.

use super::encoder::Edge;
use super::graph_load::MAX_FORWARD;
use super::SaveError;

/// The plan written into the state.
pub(crate) struct Plan {
    pub(crate) completion: Vec<u32>,
    pub(crate) forward: Vec<u32>,
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
    let completion = strong_post_order(n, edges, &start, &type_of)?;
    let mut pos = vec![0usize; n];
    for (p, &id) in completion.iter().enumerate() {
        pos[id as usize] = p;
    }
    let mut forward: Vec<u32> = Vec::new();
    let mut marked = vec![false; n];
    for e in edges.iter().filter(|e| e.weak) {
        if pos[e.to as usize] >= pos[e.from as usize] && !marked[e.to as usize] {
            marked[e.to as usize] = true;
            forward.push(e.to);
        }
    }
    if forward.len() > MAX_FORWARD {
        return Err(SaveError::TooManyForwardWeakTargets {
            count: forward.len(),
            limit: MAX_FORWARD,
        });
    }
    forward.sort_by_key(|&id| std::cmp::Reverse(pos[id as usize]));
    Ok(Plan {
        completion,
        forward,
    })
}

fn strong_post_order(
    n: usize,
    edges: &[Edge],
    start: &[usize],
    type_of: &impl Fn(u32) -> String,
) -> Result<Vec<u32>, SaveError> {
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
                let e = edges[next];
                if e.weak {
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
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: u32, to: u32, weak: bool) -> Edge {
        Edge { from, to, weak }
    }

    #[test]
    fn parent_child_cycle_opens_parent_ahead() {
        // 0 = child (weak → parent 1), 1 = parent (strong → child 0).
        let edges = [edge(0, 1, true), edge(1, 0, false)];
        let plan = compute(2, &edges, |_| String::new()).expect("plan");
        assert_eq!(plan.completion, vec![0, 1]);
        assert_eq!(plan.forward, vec![1]);
    }

    #[test]
    fn strong_cycle_is_refused() {
        let edges = [edge(0, 1, false), edge(1, 0, false)];
        let err = compute(2, &edges, |id| format!("T{id}")).err();
        assert!(matches!(err, Some(SaveError::StrongCycle { type_name }) if type_name == "T0"));
    }
}
