//! Rejections: every malformed or incompatible input is a precise
//! `LoadError`, and no input bytes make `load` panic.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use checkpoints::state::{self, LoadError, SaveError};
use checkpoints::Stateify;
use proptest::prelude::*;

#[derive(Stateify, Debug, PartialEq)]
enum Op {
    Nop,
    Write { fd: i32, data: Vec<u8> },
    Name(String),
}

#[derive(Stateify)]
struct Node {
    id: u32,
    ops: Vec<Op>,
    parent: Weak<Mutex<Node>>,
    children: Vec<Arc<Mutex<Node>>>,
}

#[derive(Stateify)]
struct Graph {
    nodes: BTreeMap<u32, Arc<Mutex<Node>>>,
    flag: Option<bool>,
}

fn sample_graph() -> Graph {
    let root = Arc::new(Mutex::new(Node {
        id: 0,
        ops: vec![Op::Nop],
        parent: Weak::new(),
        children: vec![],
    }));
    let child = Arc::new(Mutex::new(Node {
        id: 1,
        ops: vec![
            Op::Write {
                fd: 1,
                data: b"hello".to_vec(),
            },
            Op::Name("x".into()),
        ],
        parent: Arc::downgrade(&root),
        children: vec![],
    }));
    root.lock()
        .expect("unpoisoned")
        .children
        .push(child.clone());
    Graph {
        nodes: [(1, child), (0, root)].into(),
        flag: Some(true),
    }
}

fn sample_bytes() -> Vec<u8> {
    state::save(&sample_graph()).expect("save").bytes
}

#[test]
fn sample_graph_loads() {
    let g: Graph = state::load(&sample_bytes()).expect("load");
    let child = g.nodes[&1].lock().expect("unpoisoned");
    let parent = child.parent.upgrade().expect("parent alive");
    assert!(Arc::ptr_eq(&parent, &g.nodes[&0]));
}

#[test]
fn bad_magic_is_refused() {
    let mut b = sample_bytes();
    b[0] ^= 0xff;
    assert!(matches!(state::load::<Graph>(&b), Err(LoadError::BadMagic)));
}

#[test]
fn unknown_version_is_refused() {
    let mut b = sample_bytes();
    b[8] = 9;
    assert!(matches!(
        state::load::<Graph>(&b),
        Err(LoadError::UnsupportedVersion { found: 9 })
    ));
}

#[test]
fn empty_input_is_truncated() {
    assert!(matches!(
        state::load::<Graph>(&[][..]),
        Err(LoadError::Truncated)
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let b = sample_bytes();
    for len in 0..b.len() {
        assert!(
            state::load::<Graph>(&b[..len]).is_err(),
            "prefix of {len} bytes loaded"
        );
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let mut b = sample_bytes();
    b.push(0);
    assert!(matches!(
        state::load::<Graph>(&b),
        Err(LoadError::TrailingBytes { count: 1 })
    ));
}

#[test]
fn bad_enum_discriminant_names_the_enum() {
    let saved = state::save(&vec![Op::Nop]).expect("save");
    let mut b = saved.bytes;
    let last = b.len() - 1;
    assert_eq!(b[last], 0, "Op::Nop is discriminant 0, the last byte");
    b[last] = 7;
    let err = state::load::<Vec<Op>>(&b).err();
    assert!(
        matches!(&err, Some(LoadError::BadTag { type_name, tag: 7 }) if type_name.ends_with("::Op")),
        "{err:?}"
    );
}

#[test]
fn huge_length_is_refused_before_allocating() {
    let saved = state::save(&vec![1u64]).expect("save");
    let mut b = saved.bytes;
    // Root value: Vec length 1 (one byte) then 1; replace with a length of
    // 2^62 as a varint.
    b.truncate(b.len() - 2);
    b.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 1]);
    let root_len_pos = b.len() - 11;
    b[root_len_pos] = 10;
    let err = state::load::<Vec<u64>>(&b).err();
    assert!(
        matches!(err, Some(LoadError::LengthExceedsInput { len, .. }) if len == 1 << 62),
        "{err:?}"
    );
}

#[test]
fn invalid_utf8_is_refused() {
    let saved = state::save(&String::from("ab")).expect("save");
    let mut b = saved.bytes;
    let last = b.len() - 1;
    b[last] = 0xff;
    assert!(matches!(
        state::load::<String>(&b),
        Err(LoadError::InvalidUtf8)
    ));
}

#[test]
fn invalid_bool_is_refused() {
    let saved = state::save(&true).expect("save");
    let mut b = saved.bytes;
    let last = b.len() - 1;
    b[last] = 2;
    assert!(matches!(
        state::load::<bool>(&b),
        Err(LoadError::InvalidBool)
    ));
}

#[test]
fn duplicate_map_key_is_refused() {
    let saved = state::save(&BTreeMap::from([(1u8, 1u8), (2, 2)])).expect("save");
    let mut b = saved.bytes;
    let n = b.len();
    // Entries are the last four bytes: 1 1 2 2 → 1 1 1 2.
    b[n - 2] = 1;
    assert!(matches!(
        state::load::<BTreeMap<u8, u8>>(&b),
        Err(LoadError::DuplicateKey { .. })
    ));
}

#[test]
fn object_reference_out_of_range_is_refused() {
    let a = Arc::new(5u32);
    let saved = state::save(&a).expect("save");
    let mut b = saved.bytes;
    // Layout tail: root length (1), root = object id 0, body = 5.
    let n = b.len();
    assert_eq!(&b[n - 3..], &[1, 0, 5]);
    b[n - 2] = 3;
    assert!(matches!(
        state::load::<Arc<u32>>(&b),
        Err(LoadError::BadObjectRef { id: 3, count: 1 })
    ));
}

#[test]
fn strong_cycle_is_refused_at_save() {
    #[derive(Stateify, Default)]
    struct Loop {
        next: Mutex<Option<Arc<Loop>>>,
    }
    let a = Arc::new(Loop::default());
    let b = Arc::new(Loop {
        next: Mutex::new(Some(a.clone())),
    });
    *a.next.lock().expect("unpoisoned") = Some(b.clone());
    let err = state::save(&a).err();
    // Break the cycle so the test does not leak.
    *a.next.lock().expect("unpoisoned") = None;
    assert!(
        matches!(err, Some(SaveError::StrongCycle { type_name }) if type_name.ends_with("::Loop"))
    );
}

#[test]
fn deep_recursion_is_refused_not_overflowed() {
    #[derive(Stateify)]
    struct List {
        next: Option<Box<List>>,
    }
    let mut l = List { next: None };
    for _ in 0..state::MAX_DEPTH + 1 {
        l = List {
            next: Some(Box::new(l)),
        };
    }
    assert!(matches!(state::save(&l), Err(SaveError::TooDeep { .. })));
    // Hand-made deep input: every level is Some (1).
    let shallow = state::save(&List { next: None }).expect("save").bytes;
    let mut b = shallow[..shallow.len() - 2].to_vec();
    let depth = 10_000;
    b.push(0x90);
    b.push(0x4e); // root length 10_000 as a varint
    b.extend(std::iter::repeat_n(1u8, depth - 1));
    b.push(0);
    assert!(matches!(
        state::load::<List>(&b),
        Err(LoadError::TooDeep { .. })
    ));
}

mod v1 {
    use checkpoints::Stateify;

    #[derive(Stateify)]
    #[state(name = "model.Inner")]
    pub struct Inner {
        pub a: u32,
    }

    #[derive(Stateify)]
    #[state(name = "model.Outer")]
    pub struct Outer {
        pub inner: Inner,
        pub tag: u8,
    }
}

mod v2 {
    use checkpoints::Stateify;

    /// `Inner` gained a field since v1.
    #[derive(Stateify)]
    #[state(name = "model.Inner")]
    pub struct Inner {
        pub a: u32,
        pub b: u32,
    }

    #[derive(Stateify)]
    #[state(name = "model.Outer")]
    pub struct Outer {
        pub inner: Inner,
        pub tag: u8,
    }
}

#[test]
fn schema_mismatch_names_the_changed_inner_type() {
    let saved = state::save(&v1::Outer {
        inner: v1::Inner { a: 1 },
        tag: 2,
    })
    .expect("save");
    let err = state::load::<v2::Outer>(&saved).err();
    assert!(
        matches!(&err, Some(LoadError::SchemaMismatch { type_name, expected: Some(_), found: Some(_) }) if type_name == "model.Inner"),
        "{err:?}"
    );
}

#[test]
fn fingerprints_cover_saved_fields_only() {
    #[derive(Stateify)]
    struct A {
        x: u32,
    }
    #[derive(Stateify)]
    struct B {
        x: u32,
        #[state(nosave)]
        _cache: Vec<u8>,
    }
    #[derive(Stateify)]
    struct C {
        x: u64,
    }
    #[derive(Stateify)]
    struct D {
        y: u32,
    }
    assert_eq!(<A as Stateify>::FINGERPRINT, <B as Stateify>::FINGERPRINT);
    assert_ne!(<A as Stateify>::FINGERPRINT, <C as Stateify>::FINGERPRINT);
    assert_ne!(<A as Stateify>::FINGERPRINT, <D as Stateify>::FINGERPRINT);
}

#[test]
fn recursive_types_have_fingerprints() {
    #[derive(Stateify)]
    struct Task {
        parent: Weak<Task>,
        kids: Vec<Arc<Task>>,
        next: Option<Box<Task>>,
    }
    let schema = state::schema_of::<Task>();
    assert_eq!(schema.types.len(), 1);
    assert_eq!(schema.types[0].fingerprint, <Task as Stateify>::FINGERPRINT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = state::load::<Graph>(&bytes);
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let b = sample_bytes();
        // Keep magic, version and schema so decoding goes past the checks.
        let mut input = b[..b.len() / 2].to_vec();
        input.extend_from_slice(&tail);
        let _ = state::load::<Graph>(&input);
    }

    #[test]
    fn bit_flips_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4)) {
        let mut b = sample_bytes();
        for (i, bit) in flips {
            let i = i.index(b.len());
            b[i] ^= 1 << bit;
        }
        let _ = state::load::<Graph>(&b);
    }
}

#[test]
fn lock_held_by_the_caller_fails_the_save_instead_of_deadlocking() {
    let m = Arc::new(Mutex::new(1u32));
    let _held = m.lock().expect("unpoisoned");
    let err = state::save(&m).err();
    assert!(matches!(err, Some(SaveError::LockBusy { type_name }) if type_name == "Mutex<u32>"));
}

#[test]
fn error_inside_a_construction_frame_is_returned() {
    #[derive(Stateify)]
    struct Parent {
        kids: Vec<Arc<Kid>>,
    }
    #[derive(Stateify)]
    struct Kid {
        parent: Weak<Parent>,
        flag: bool,
    }
    let p = Arc::new_cyclic(|me: &Weak<Parent>| Parent {
        kids: vec![Arc::new(Kid {
            parent: me.clone(),
            flag: true,
        })],
    });
    let mut b = state::save(&p).expect("save").bytes;
    // The kid (object 1) is built inside the parent's new_cyclic frame; its
    // body is the last in the input and ends with its flag.
    let last = b.len() - 1;
    assert_eq!(b[last], 1);
    b[last] = 2;
    assert!(matches!(
        state::load::<Arc<Parent>>(&b),
        Err(LoadError::InvalidBool)
    ));
    b[last] = 0;
    let back: Arc<Parent> = state::load(&b).expect("load");
    assert!(!back.kids[0].flag);
    assert!(Arc::ptr_eq(
        &back.kids[0].parent.upgrade().expect("alive"),
        &back
    ));
}

#[test]
fn two_types_with_one_schema_name_are_refused() {
    #[derive(Stateify)]
    #[state(name = "model.Same")]
    struct A {
        x: u32,
    }
    #[derive(Stateify)]
    #[state(name = "model.Same")]
    struct B {
        y: String,
    }
    let v = (A { x: 1 }, B { y: String::new() });
    let err = state::save(&v).err();
    assert!(matches!(err, Some(SaveError::DuplicateTypeName { name }) if name == "model.Same"));
}
