//! Maps and sets: a length, then the entries in iteration order (sorted for
//! the B-tree collections; `HashMap`/`HashSet` order is the hasher's). A
//! key appearing twice on load is [`LoadError::DuplicateKey`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

use crate::state::fingerprint::{combine, hash_str};
use crate::state::{AfterLoad, Decoder, Encoder, LoadError, SaveError, Stateify, TypeVisitor};

macro_rules! map {
    ($name:literal, impl<$($g:ident),*> $map:ty where $($bound:tt)*) => {
        impl<K, V, $($g),*> Stateify for $map
        where
            K: Stateify,
            V: Stateify,
            $($bound)*
        {
            const SHAPE: u64 = combine(combine(hash_str($name), K::SHAPE), V::SHAPE);
            const MIN_SIZE: usize = 1;
            const HAS_HOOKS: bool = K::HAS_HOOKS || V::HAS_HOOKS;
            fn type_name() -> String {
                format!(concat!($name, "<{}, {}>"), K::type_name(), V::type_name())
            }
            fn visit_types(v: &mut TypeVisitor) {
                K::visit_types(v);
                V::visit_types(v);
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                if K::MIN_SIZE + V::MIN_SIZE == 0 && self.len() > 1 {
                    return Err(SaveError::TooLong { len: self.len(), limit: 1 });
                }
                enc.write_len(self.len());
                for (k, v) in self {
                    k.save(enc)?;
                    v.save(enc)?;
                }
                Ok(())
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                let n = dec.read_len(K::MIN_SIZE + V::MIN_SIZE)?;
                let mut m = <$map>::default();
                for _ in 0..n {
                    let k = K::load(dec)?;
                    let v = V::load(dec)?;
                    if m.insert(k, v).is_some() {
                        return Err(LoadError::DuplicateKey { type_name: $name });
                    }
                }
                Ok(m)
            }
            fn after_load_walk(&self, hooks: &mut AfterLoad) {
                if Self::HAS_HOOKS {
                    for (k, v) in self {
                        k.after_load_walk(hooks);
                        v.after_load_walk(hooks);
                    }
                }
            }
        }
    };
}

macro_rules! set {
    ($name:literal, impl<$($g:ident),*> $set:ty where $($bound:tt)*) => {
        impl<K, $($g),*> Stateify for $set
        where
            K: Stateify,
            $($bound)*
        {
            const SHAPE: u64 = combine(hash_str($name), K::SHAPE);
            const MIN_SIZE: usize = 1;
            const HAS_HOOKS: bool = K::HAS_HOOKS;
            fn type_name() -> String {
                format!(concat!($name, "<{}>"), K::type_name())
            }
            fn visit_types(v: &mut TypeVisitor) {
                K::visit_types(v);
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                enc.write_len(self.len());
                for k in self {
                    k.save(enc)?;
                }
                Ok(())
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                let n = dec.read_len(K::MIN_SIZE)?;
                let mut s = <$set>::default();
                for _ in 0..n {
                    if !s.insert(K::load(dec)?) {
                        return Err(LoadError::DuplicateKey { type_name: $name });
                    }
                }
                Ok(s)
            }
            fn after_load_walk(&self, hooks: &mut AfterLoad) {
                if K::HAS_HOOKS {
                    self.iter().for_each(|k| k.after_load_walk(hooks));
                }
            }
        }
    };
}

map!("HashMap", impl<S> HashMap<K, V, S> where K: Eq + Hash, S: BuildHasher + Default + 'static);
map!("BTreeMap", impl<> BTreeMap<K, V> where K: Ord);
set!("HashSet", impl<S> HashSet<K, S> where K: Eq + Hash, S: BuildHasher + Default + 'static);
set!("BTreeSet", impl<> BTreeSet<K> where K: Ord);
