//! Locks, atomics and shared pointers.
//!
//! A poisoned lock is saved anyway (its data is what the kernel holds); it
//! comes back unpoisoned. Saving takes each lock with `try_lock`, retrying
//! for up to [`LOCK_TIMEOUT`]: a lock that stays held (a thread that was not
//! paused, or the caller itself holding a lock inside the graph) fails the
//! save with [`SaveError::LockBusy`] instead of deadlocking it.
//!
//! `after_load` hooks of values inside a `Mutex`/`RwLock` run with that lock
//! held; a hook must not lock it again (e.g. through a `Weak` to itself).

use std::sync::atomic::{
    AtomicBool, AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32,
    AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::{Arc, Mutex, RwLock, TryLockError, TryLockResult, Weak};
use std::time::{Duration, Instant};

use crate::state::fingerprint::{combine, hash_str};
use crate::state::{AfterLoad, Decoder, Encoder, LoadError, SaveError, Stateify, TypeVisitor};

/// How long a save waits for a held lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Takes a lock through `try_lock`, retrying until [`LOCK_TIMEOUT`].
fn acquire<G>(
    type_name: fn() -> String,
    mut try_lock: impl FnMut() -> TryLockResult<G>,
) -> Result<G, SaveError> {
    let mut deadline = None;
    loop {
        match try_lock() {
            Ok(guard) => return Ok(guard),
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                let deadline = *deadline.get_or_insert_with(|| Instant::now() + LOCK_TIMEOUT);
                if Instant::now() >= deadline {
                    return Err(SaveError::LockBusy {
                        type_name: type_name(),
                    });
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
}

impl<T: Stateify> Stateify for Mutex<T> {
    const SHAPE: u64 = combine(hash_str("Mutex"), T::SHAPE);
    const MIN_SIZE: usize = T::MIN_SIZE;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("Mutex<{}>", T::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        acquire(Self::type_name, || self.try_lock())?.save(enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        T::load(dec).map(Mutex::new)
    }
    /// Holds the lock while the hooks of the contents run.
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        if T::HAS_HOOKS {
            self.lock()
                .unwrap_or_else(|e| e.into_inner())
                .after_load_walk(hooks);
        }
    }
}

impl<T: Stateify> Stateify for RwLock<T> {
    const SHAPE: u64 = combine(hash_str("RwLock"), T::SHAPE);
    const MIN_SIZE: usize = T::MIN_SIZE;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("RwLock<{}>", T::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        acquire(Self::type_name, || self.try_read())?.save(enc)
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        T::load(dec).map(RwLock::new)
    }
    /// Holds the write lock while the hooks of the contents run.
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        if T::HAS_HOOKS {
            self.write()
                .unwrap_or_else(|e| e.into_inner())
                .after_load_walk(hooks);
        }
    }
}

macro_rules! atomic {
    ($($a:ty => $t:ty, $name:literal;)*) => {$(
        impl Stateify for $a {
            const SHAPE: u64 = combine(hash_str("Atomic"), <$t as Stateify>::SHAPE);
            const MIN_SIZE: usize = 1;
            const HAS_HOOKS: bool = false;
            fn type_name() -> String {
                $name.to_owned()
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                self.load(Ordering::SeqCst).save(enc)
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                <$t as Stateify>::load(dec).map(<$a>::new)
            }
        }
    )*};
}

atomic! {
    AtomicBool => bool, "AtomicBool";
    AtomicU8 => u8, "AtomicU8";
    AtomicU16 => u16, "AtomicU16";
    AtomicU32 => u32, "AtomicU32";
    AtomicU64 => u64, "AtomicU64";
    AtomicUsize => usize, "AtomicUsize";
    AtomicI8 => i8, "AtomicI8";
    AtomicI16 => i16, "AtomicI16";
    AtomicI32 => i32, "AtomicI32";
    AtomicI64 => i64, "AtomicI64";
    AtomicIsize => isize, "AtomicIsize";
}

/// Shared pointers are references to a shared object (written once per
/// allocation; see [`crate::state`]): an `Arc<T>` comes back pointing at the
/// same object, a `Weak<T>` at the same object or dangling.
macro_rules! shared_pointer {
    ($($p:ident => $save:ident, $load:ident;)*) => {$(
        impl<T: Stateify> Stateify for $p<T> {
            const SHAPE: u64 = combine(hash_str(stringify!($p)), T::SHAPE);
            const MIN_SIZE: usize = 1;
            const HAS_HOOKS: bool = false;
            fn type_name() -> String {
                format!(concat!(stringify!($p), "<{}>"), T::type_name())
            }
            fn visit_types(v: &mut TypeVisitor) {
                v.object::<T>();
            }
            fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
                enc.$save(self)
            }
            fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
                dec.$load()
            }
        }
    )*};
}

shared_pointer! {
    Arc => save_arc, load_arc;
    Weak => save_weak, load_weak;
}

/// A `OnceLock<T>` is saved like `Option<T>` (set or not).
impl<T: Stateify> Stateify for std::sync::OnceLock<T> {
    const SHAPE: u64 = combine(hash_str("OnceLock"), T::SHAPE);
    const MIN_SIZE: usize = 1;
    const HAS_HOOKS: bool = T::HAS_HOOKS;
    fn type_name() -> String {
        format!("OnceLock<{}>", T::type_name())
    }
    fn visit_types(v: &mut TypeVisitor) {
        T::visit_types(v);
    }
    fn save(&self, enc: &mut Encoder) -> Result<(), SaveError> {
        match self.get() {
            None => {
                enc.write_varint(0);
                Ok(())
            }
            Some(x) => {
                enc.write_varint(1);
                x.save(enc)
            }
        }
    }
    fn load(dec: &mut Decoder<'_>) -> Result<Self, LoadError> {
        let cell = std::sync::OnceLock::new();
        match dec.read_varint()? {
            0 => {}
            1 => {
                // A fresh cell: `set` cannot find it already set.
                let _ = cell.set(T::load(dec)?);
            }
            tag => {
                return Err(LoadError::BadTag {
                    type_name: "OnceLock",
                    tag,
                })
            }
        }
        Ok(cell)
    }
    fn after_load_walk(&self, hooks: &mut AfterLoad) {
        if let Some(x) = self.get() {
            x.after_load_walk(hooks);
        }
    }
}
