//! Object-graph shapes: trees with parent pointers, weak-only chains, weak
//! self-references, objects reachable only through `Weak`, and the bound on
//! nested construction frames.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use checkpoints::state::{self, SaveError, MAX_OPEN_FRAMES};
use checkpoints::Stateify;

/// An overlay-filesystem-like node: children strong, parent weak.
#[derive(Stateify)]
struct Node {
    name: String,
    parent: Weak<Node>,
    children: Mutex<BTreeMap<String, Arc<Node>>>,
}

fn add_child(parent: &Arc<Node>, name: &str) -> Arc<Node> {
    let child = Arc::new(Node {
        name: name.to_string(),
        parent: Arc::downgrade(parent),
        children: Mutex::new(BTreeMap::new()),
    });
    parent
        .children
        .lock()
        .expect("unpoisoned")
        .insert(name.to_string(), child.clone());
    child
}

/// A tree of `fanout`^1 + … + `fanout`^`depth` nodes under a root.
fn tree(depth: usize, fanout: usize) -> Arc<Node> {
    let root = Arc::new(Node {
        name: "/".into(),
        parent: Weak::new(),
        children: Mutex::new(BTreeMap::new()),
    });
    let mut level = vec![root.clone()];
    for d in 0..depth {
        let mut next = Vec::new();
        for parent in &level {
            for i in 0..fanout {
                next.push(add_child(parent, &format!("d{d}n{i}")));
            }
        }
        level = next;
    }
    root
}

/// Checks every child's parent pointer; returns the number of nodes.
fn check_tree(node: &Arc<Node>) -> usize {
    let children = node.children.lock().expect("unpoisoned");
    let mut count = 1;
    for child in children.values() {
        let parent = child.parent.upgrade().expect("parent alive");
        assert!(
            Arc::ptr_eq(&parent, node),
            "{}'s parent is not {}",
            child.name,
            node.name
        );
        count += check_tree(child);
    }
    count
}

#[test]
fn wide_tree_with_parent_pointers_round_trips() {
    // 1 + 4 + 16 + 64 + 256 + 1024 = 1365 nodes, 341 of them directories:
    // far more directories than MAX_OPEN_FRAMES, but only 6 levels deep.
    let root = tree(5, 4);
    let saved = state::save(&root).expect("save");
    assert_eq!(saved.objects, 1365);
    let back: Arc<Node> = state::load(&saved).expect("load");
    assert_eq!(check_tree(&back), 1365);
    assert!(back.parent.upgrade().is_none());
}

#[test]
fn tree_reached_leaf_first_round_trips() {
    let root = tree(3, 3);
    let leaf = {
        let c = root.children.lock().expect("unpoisoned");
        let mid = c.values().next().cloned().expect("child");
        let m = mid.children.lock().expect("unpoisoned");
        m.values().next().cloned().expect("grandchild")
    };
    let back: (Arc<Node>, Arc<Node>) =
        state::load(&state::save(&(leaf, root)).expect("save")).expect("load");
    assert_eq!(check_tree(&back.1), 1 + 3 + 9 + 27);
    let leaf_parent = back.0.parent.upgrade().expect("alive");
    let grand = leaf_parent.parent.upgrade().expect("alive");
    assert!(Arc::ptr_eq(&grand, &back.1));
}

/// Objects that point at each other only weakly, held by a vector.
#[derive(Stateify)]
struct Peer {
    id: u32,
    prev: Weak<Mutex<Peer>>,
    next: Weak<Mutex<Peer>>,
}

fn weak_chain(len: usize) -> Vec<Arc<Mutex<Peer>>> {
    let peers: Vec<Arc<Mutex<Peer>>> = (0..len)
        .map(|i| {
            Arc::new(Mutex::new(Peer {
                id: i as u32,
                prev: Weak::new(),
                next: Weak::new(),
            }))
        })
        .collect();
    for i in 0..len {
        let mut p = peers[i].lock().expect("unpoisoned");
        if i > 0 {
            p.prev = Arc::downgrade(&peers[i - 1]);
        }
        if i + 1 < len {
            p.next = Arc::downgrade(&peers[i + 1]);
        }
    }
    peers
}

#[test]
fn weak_chain_at_the_frame_limit_loads_on_a_small_stack() {
    let saved = state::save(&weak_chain(MAX_OPEN_FRAMES + 1)).expect("save");
    // 16 Ki nested frames need tens of MiB of stack: far more than this
    // thread has, so this passes only if frames grow onto the heap.
    let loaded = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || {
            let peers: Vec<Arc<Mutex<Peer>>> = state::load(&saved).expect("load");
            let ok = peers.windows(2).all(|w| {
                let next = w[0]
                    .lock()
                    .expect("unpoisoned")
                    .next
                    .upgrade()
                    .expect("alive");
                Arc::ptr_eq(&next, &w[1])
            });
            (peers.len(), ok)
        })
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    assert_eq!(loaded, (MAX_OPEN_FRAMES + 1, true));
}

#[test]
fn weak_chain_beyond_the_frame_limit_is_refused_at_save() {
    let err = state::save(&weak_chain(MAX_OPEN_FRAMES + 2)).err();
    assert!(
        matches!(err, Some(SaveError::TooManyOpenFrames { depth, .. }) if depth == MAX_OPEN_FRAMES + 1)
    );
}

#[derive(Stateify)]
struct SelfRef {
    me: Weak<SelfRef>,
    v: u8,
}

#[test]
fn weak_self_reference_round_trips() {
    let a = Arc::new_cyclic(|me| SelfRef {
        me: me.clone(),
        v: 9,
    });
    let back: Arc<SelfRef> = state::load(&state::save(&a).expect("save")).expect("load");
    assert!(Arc::ptr_eq(&back.me.upgrade().expect("alive"), &back));
    assert_eq!(back.v, 9);
}

#[test]
fn object_held_only_outside_the_graph_comes_back_dangling() {
    let outside = Arc::new(Mutex::new(5u32));
    let graph = (Arc::downgrade(&outside), Arc::downgrade(&outside));
    let saved = state::save(&graph).expect("save");
    assert_eq!(saved.objects, 1);
    let back: (Weak<Mutex<u32>>, Weak<Mutex<u32>>) = state::load(&saved).expect("load");
    assert!(back.0.upgrade().is_none());
    assert!(back.1.upgrade().is_none());
}

/// Refuses to load the value 0 (an error raised on demand).
mod refuse_zero {
    use checkpoints::state::{Decoder, Encoder, LoadError, SaveError};

    pub const FINGERPRINT: u64 = 1;

    pub fn save(v: &u32, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.write_varint(u64::from(*v));
        Ok(())
    }

    pub fn load(dec: &mut Decoder<'_>) -> Result<u32, LoadError> {
        match dec.read_varint()? {
            0 => Err(LoadError::InvalidValue {
                type_name: "u32",
                reason: "zero refused",
            }),
            v => u32::try_from(v).map_err(|_| LoadError::BadVarint),
        }
    }
}

#[derive(Stateify)]
struct Link {
    #[state(with = "refuse_zero")]
    v: u32,
    prev: Mutex<Weak<Link>>,
    next: Mutex<Weak<Link>>,
}

#[test]
fn error_in_the_innermost_of_thousands_of_frames_is_returned() {
    // Links point at both neighbours weakly: one cycle, so links 1.. are
    // built in nested frames and link 0 — which fails to load — is decoded
    // innermost.
    let links: Vec<Arc<Link>> = (0..MAX_OPEN_FRAMES as u32)
        .map(|v| {
            Arc::new(Link {
                v,
                prev: Mutex::new(Weak::new()),
                next: Mutex::new(Weak::new()),
            })
        })
        .collect();
    for pair in links.windows(2) {
        *pair[0].next.lock().expect("unpoisoned") = Arc::downgrade(&pair[1]);
        *pair[1].prev.lock().expect("unpoisoned") = Arc::downgrade(&pair[0]);
    }
    let saved = state::save(&links).expect("save");
    let result = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || state::load::<Vec<Arc<Link>>>(&saved).err())
        .expect("spawn")
        .join()
        .expect("no abort");
    assert!(
        matches!(
            result,
            Some(state::LoadError::InvalidValue {
                reason: "zero refused",
                ..
            })
        ),
        "{result:?}"
    );
}
