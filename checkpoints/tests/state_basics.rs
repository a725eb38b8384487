//! Round trips of derived types and std impls through `state::save`/`load`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use checkpoints::state::{self, LoadError};
use checkpoints::Stateify;

fn round_trip<T: Stateify>(v: &T) -> T {
    let saved = state::save(v).expect("save");
    state::load::<T>(&saved).expect("load")
}

#[derive(Stateify, Debug, PartialEq, Clone)]
struct Named {
    a: u32,
    b: String,
    c: Vec<i64>,
}

#[derive(Stateify, Debug, PartialEq)]
struct Tuple(u8, bool, Option<char>);

#[derive(Stateify, Debug, PartialEq)]
struct Unit;

#[derive(Stateify, Debug, PartialEq)]
enum Shape {
    Empty,
    Circle(f64),
    Rect { w: u16, h: u16 },
}

#[derive(Stateify, Debug, PartialEq)]
struct Generic<T, U> {
    t: T,
    us: Vec<U>,
}

#[test]
fn named_struct_round_trips() {
    let v = Named {
        a: 7,
        b: "héllo".into(),
        c: vec![-1, 0, i64::MAX],
    };
    assert_eq!(round_trip(&v), v);
}

#[test]
fn tuple_and_unit_structs_round_trip() {
    assert_eq!(
        round_trip(&Tuple(3, true, Some('λ'))),
        Tuple(3, true, Some('λ'))
    );
    assert_eq!(round_trip(&Unit), Unit);
}

#[test]
fn every_enum_variant_kind_round_trips() {
    let v = vec![Shape::Empty, Shape::Circle(1.5), Shape::Rect { w: 3, h: 4 }];
    assert_eq!(round_trip(&v), v);
}

#[test]
fn generic_struct_round_trips() {
    let v = Generic {
        t: Shape::Circle(2.0),
        us: vec![(1u8, "x".to_string())],
    };
    assert_eq!(round_trip(&v), v);
}

#[test]
fn generic_type_names_include_arguments() {
    let name = <Generic<u32, String> as Stateify>::type_name();
    assert!(
        name.ends_with("state_basics::Generic<u32, String>"),
        "{name}"
    );
}

fn seven() -> u32 {
    7
}

#[derive(Stateify, Debug)]
struct WithNosave {
    kept: u32,
    /// Not saved; comes back as `Default::default()`.
    #[state(nosave)]
    cache: Vec<u8>,
    #[state(nosave, init = "seven")]
    rebuilt: u32,
}

#[test]
fn nosave_fields_come_back_from_default_or_init() {
    let v = WithNosave {
        kept: 1,
        cache: vec![9; 10],
        rebuilt: 100,
    };
    let back = round_trip(&v);
    assert_eq!((back.kept, back.cache.len(), back.rebuilt), (1, 0, 7));
}

/// A foreign type saved through a `with` module.
#[derive(Debug, PartialEq)]
struct Foreign(u32);

mod foreign_state {
    use super::Foreign;
    use checkpoints::state::{Decoder, Encoder, LoadError, SaveError};

    pub const FINGERPRINT: u64 = 0xf00d;

    pub fn save(v: &Foreign, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.serialize(&(v.0 * 2))
    }

    pub fn load(dec: &mut Decoder<'_>) -> Result<Foreign, LoadError> {
        let doubled: u32 = dec.deserialize()?;
        Ok(Foreign(doubled / 2))
    }
}

#[derive(Stateify, Debug, PartialEq)]
struct HasForeign {
    #[state(with = "foreign_state")]
    f: Foreign,
    after: u8,
}

#[test]
fn with_module_saves_and_loads_the_field() {
    let v = HasForeign {
        f: Foreign(21),
        after: 5,
    };
    let saved = state::save(&v).expect("save");
    // The module doubled the value on the way out.
    assert!(saved.bytes.ends_with(&[42, 5]));
    assert_eq!(state::load::<HasForeign>(&saved).expect("load"), v);
}

#[test]
fn std_collections_round_trip() {
    let mut hm = HashMap::new();
    hm.insert("a".to_string(), vec![1u32, 2]);
    let bm: BTreeMap<i32, Option<String>> = [(1, None), (-5, Some("z".into()))].into();
    let hs: HashSet<u64> = [1, 2, 3].into();
    let bs: BTreeSet<char> = ['x', 'y'].into();
    let vd: VecDeque<u16> = [5, 6, 7].into();
    let v = (
        hm,
        bm,
        hs,
        bs,
        vd,
        [1u32, 2, 3],
        Box::new(9i8),
        Ok::<u8, String>(1),
    );
    assert_eq!(round_trip(&v), v);
}

#[test]
fn misc_std_types_round_trip() {
    let v = (
        Duration::new(5, 999_999_999),
        PathBuf::from("/proc/self/fd"),
        OsString::from("osstr"),
        PhantomData::<String>,
        usize::MAX,
        isize::MIN,
        (),
        Box::<[u32]>::from([4u32, 5].as_slice()),
    );
    assert_eq!(round_trip(&v), v);
}

#[test]
fn atomics_and_locks_round_trip_their_values() {
    let v = (
        AtomicU64::new(77),
        AtomicBool::new(true),
        Mutex::new(vec![1u8]),
        RwLock::new(3i32),
    );
    let back = round_trip(&v);
    assert_eq!(back.0.load(Ordering::SeqCst), 77);
    assert!(back.1.load(Ordering::SeqCst));
    assert_eq!(*back.2.lock().expect("unpoisoned"), vec![1u8]);
    assert_eq!(*back.3.read().expect("unpoisoned"), 3);
}

#[test]
fn once_lock_round_trips_set_and_unset() {
    let v = (
        std::sync::OnceLock::from(5u32),
        std::sync::OnceLock::<String>::new(),
    );
    let back = round_trip(&v);
    assert_eq!((back.0.get(), back.1.get()), (Some(&5), None));
}

#[test]
fn byte_buffers_are_written_in_bulk() {
    let v: (Vec<u8>, Box<[u8]>, [u8; 4]) = (vec![0xAB; 1000], vec![0xCD; 3].into(), [1, 2, 3, 4]);
    let saved = state::save(&v).expect("save");
    let pattern = [0xAB; 1000];
    assert!(saved.bytes.windows(1000).any(|w| w == pattern));
    assert_eq!(round_trip(&v), v);
}

#[test]
fn shared_arc_is_written_once_and_comes_back_shared() {
    let shared = Arc::new(Mutex::new(String::from("shared-object-payload")));
    let v = (
        shared.clone(),
        vec![shared.clone(), Arc::new(Mutex::new(String::from("other")))],
    );
    let saved = state::save(&v).expect("save");
    assert_eq!(saved.objects, 2);
    let occurrences = saved
        .bytes
        .windows(21)
        .filter(|w| w == b"shared-object-payload")
        .count();
    assert_eq!(occurrences, 1);
    let back: (Arc<Mutex<String>>, Vec<Arc<Mutex<String>>>) = state::load(&saved).expect("load");
    assert!(Arc::ptr_eq(&back.0, &back.1[0]));
    assert!(!Arc::ptr_eq(&back.0, &back.1[1]));
    back.0.lock().expect("unpoisoned").push('!');
    assert_eq!(
        *back.1[0].lock().expect("unpoisoned"),
        "shared-object-payload!"
    );
}

#[derive(Stateify)]
struct Parent {
    name: String,
    children: Mutex<Vec<Arc<Child>>>,
}

#[derive(Stateify)]
struct Child {
    id: u32,
    parent: Weak<Parent>,
}

#[test]
fn parent_child_cycle_through_weak_round_trips() {
    let parent = Arc::new_cyclic(|me: &Weak<Parent>| Parent {
        name: "p".into(),
        children: Mutex::new(vec![
            Arc::new(Child {
                id: 1,
                parent: me.clone(),
            }),
            Arc::new(Child {
                id: 2,
                parent: me.clone(),
            }),
        ]),
    });
    // Reach a child first so its Weak refers to a not-yet-built parent.
    let first_child = parent.children.lock().expect("unpoisoned")[0].clone();
    let root = (first_child, parent);
    let back = round_trip(&root);
    let children = back.1.children.lock().expect("unpoisoned");
    assert!(Arc::ptr_eq(&back.0, &children[0]));
    assert_eq!(children[1].id, 2);
    for c in children.iter() {
        let p = c.parent.upgrade().expect("parent alive");
        assert!(Arc::ptr_eq(&p, &back.1));
    }
}

#[test]
fn dangling_weak_comes_back_dangling() {
    let w: Weak<Mutex<u32>> = Arc::downgrade(&Arc::new(Mutex::new(5)));
    let back = round_trip(&(w, 1u8));
    assert!(back.0.upgrade().is_none());
}

#[test]
fn loading_as_another_root_type_names_both() {
    let saved = state::save(&Named {
        a: 1,
        b: String::new(),
        c: vec![],
    })
    .expect("save");
    let err = state::load::<Unit>(&saved).err();
    assert!(
        matches!(&err, Some(LoadError::RootTypeMismatch { found, .. }) if found.ends_with("::Named")),
        "{err:?}"
    );
}
