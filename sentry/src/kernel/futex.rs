//! Futex wait queues (Linux `kernel/futex/`).
//!
//! Keys are (pid, address) for the private futexes of single-address-space
//! processes (the sentry has no shared-memory futex keys yet: a shared
//! futex is keyed the same way, which is correct within one process).
//! `FUTEX_WAKE` wakes every waiter on the key; futex users tolerate
//! spurious wake-ups, so this is correct if not minimal. The counts are
//! kept so `FUTEX_WAKE` can report how many it woke, and every key counts
//! its wakes so a waiter tells a `FUTEX_WAKE` from any other wake-up of
//! its task (which must not end the wait, as in Linux).

use checkpoints::Stateify;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::waiter::{WaitQueue, EVENT_ALL};

/// A futex key.
pub type FutexKey = (i32, u64);

#[derive(Debug, Default, Stateify)]
pub struct Futexes {
    /// The keys that have registered waiters. Host objects: not saved (a
    /// waiting task is rewound to restart its futex call).
    #[state(nosave)]
    table: Mutex<HashMap<FutexKey, Slot>>,
}

/// One key's waiters.
#[derive(Debug)]
struct Slot {
    queue: Arc<WaitQueue>,
    /// Registered waiters (`enter` minus `leave`).
    waiters: usize,
    /// `wake`s of the key since its first waiter entered.
    wakes: u64,
}

impl Futexes {
    /// Registers one more waiter on `key` and returns its queue.
    pub fn enter(&self, key: FutexKey) -> Arc<WaitQueue> {
        let mut t = super::thread_group::lock(&self.table);
        let e = t.entry(key).or_insert_with(|| Slot {
            queue: Arc::new(WaitQueue::new()),
            waiters: 0,
            wakes: 0,
        });
        e.waiters += 1;
        e.queue.clone()
    }

    /// Unregisters a waiter of `key`.
    pub fn leave(&self, key: FutexKey) {
        let mut t = super::thread_group::lock(&self.table);
        if let Some(e) = t.get_mut(&key) {
            e.waiters = e.waiters.saturating_sub(1);
            if e.waiters == 0 {
                t.remove(&key);
            }
        }
    }

    /// Wakes the waiters of `key`; returns how many were waiting (at most
    /// `n`).
    pub fn wake(&self, key: FutexKey, n: usize) -> usize {
        let mut t = super::thread_group::lock(&self.table);
        match t.get_mut(&key) {
            Some(e) => {
                e.wakes = e.wakes.wrapping_add(1);
                e.queue.notify(EVENT_ALL);
                e.waiters.min(n)
            }
            None => 0,
        }
    }

    /// How many times `key` was woken while it had waiters (0 without
    /// waiters). A registered waiter compares it before and after it
    /// sleeps.
    pub fn wakes(&self, key: FutexKey) -> u64 {
        super::thread_group::lock(&self.table)
            .get(&key)
            .map_or(0, |e| e.wakes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_count_only_futex_wakes_of_the_key_while_it_has_waiters() {
        let f = Futexes::default();
        let key = (1, 0x1000);
        assert_eq!(f.wake(key, 1), 0);
        let _q = f.enter(key);
        assert_eq!(f.wakes(key), 0, "a wake without waiters is not counted");
        f.wake((1, 0x2000), 1);
        assert_eq!(f.wakes(key), 0, "another key's wake");
        assert_eq!(f.wake(key, 1), 1);
        assert_eq!(f.wakes(key), 1);
        f.leave(key);
        assert_eq!(f.wakes(key), 0, "the key is gone with its last waiter");
    }
}
