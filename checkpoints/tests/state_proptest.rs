//! Property tests: generated values of nested collections, options, enums,
//! strings and byte buffers round-trip exactly, and shared objects keep
//! their sharing pattern.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use checkpoints::state;
use checkpoints::Stateify;
use proptest::prelude::*;

#[derive(Stateify, Debug, Clone, PartialEq)]
enum Event {
    Tick,
    Signal(i32, Option<u8>),
    Write { fd: u32, data: Vec<u8> },
    Rename { from: String, to: String },
}

#[derive(Stateify, Debug, Clone, PartialEq)]
struct Record {
    id: u64,
    name: String,
    events: Vec<Event>,
    env: BTreeMap<String, String>,
    counters: HashMap<u16, i64>,
    queue: VecDeque<(u8, bool)>,
    blob: Box<[u8]>,
    page: [u8; 16],
    maybe: Option<Box<Record>>,
    ratio: f64,
    c: char,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Tick),
        (any::<i32>(), any::<Option<u8>>()).prop_map(|(s, o)| Event::Signal(s, o)),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(fd, data)| Event::Write { fd, data }),
        (".*", ".*").prop_map(|(from, to)| Event::Rename { from, to }),
    ]
}

fn leaf_record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        ".*",
        prop::collection::vec(event(), 0..8),
        prop::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
        prop::collection::hash_map(any::<u16>(), any::<i64>(), 0..4),
        prop::collection::vec_deque(any::<(u8, bool)>(), 0..4),
        prop::collection::vec(any::<u8>(), 0..256),
        any::<[u8; 16]>(),
        // Finite floats: NaN ≠ NaN would make equality fail, not the codec.
        -1e300f64..1e300,
        any::<char>(),
    )
        .prop_map(
            |(id, name, events, env, counters, queue, blob, page, ratio, c)| Record {
                id,
                name,
                events,
                env,
                counters,
                queue,
                blob: blob.into_boxed_slice(),
                page,
                maybe: None,
                ratio,
                c,
            },
        )
}

fn record() -> impl Strategy<Value = Record> {
    leaf_record().prop_recursive(3, 8, 1, |inner| {
        (leaf_record(), inner).prop_map(|(mut r, child)| {
            r.maybe = Some(Box::new(child));
            r
        })
    })
}

/// A nested std value for `nested_std_values_round_trip`.
type Nested = (
    Vec<Option<String>>,
    Option<Vec<(i8, u128)>>,
    Result<u32, String>,
);

proptest! {
    #[test]
    fn records_round_trip(r in record()) {
        let saved = state::save(&r).expect("save");
        let back: Record = state::load(&saved).expect("load");
        prop_assert_eq!(back, r);
    }

    #[test]
    fn nested_std_values_round_trip(v in any::<Nested>()) {
        let saved = state::save(&v).expect("save");
        let back: Nested = state::load(&saved).expect("load");
        prop_assert_eq!(back, v);
    }

    /// `slots[i]` points at `objects[picks[i]]`: after loading, two slots
    /// share an allocation exactly when they picked the same object.
    #[test]
    fn sharing_pattern_is_preserved(
        values in prop::collection::vec(any::<u32>(), 1..10),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
    ) {
        let objects: Vec<Arc<Mutex<u32>>> = values.iter().map(|v| Arc::new(Mutex::new(*v))).collect();
        let picks: Vec<usize> = picks.iter().map(|p| p.index(objects.len())).collect();
        let slots: Vec<Arc<Mutex<u32>>> = picks.iter().map(|&i| objects[i].clone()).collect();
        let saved = state::save(&slots).expect("save");
        let distinct = picks.iter().collect::<std::collections::BTreeSet<_>>().len();
        prop_assert_eq!(saved.objects, distinct);
        let back: Vec<Arc<Mutex<u32>>> = state::load(&saved).expect("load");
        for (i, a) in back.iter().enumerate() {
            prop_assert_eq!(*a.lock().expect("unpoisoned"), values[picks[i]]);
            for (j, b) in back.iter().enumerate() {
                prop_assert_eq!(Arc::ptr_eq(a, b), picks[i] == picks[j]);
            }
        }
    }
}
