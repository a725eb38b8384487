//! Futex wait queues (Linux `kernel/futex/`).
//!
//! Keys are (pid, address) for the private futexes of single-address-space
//! processes (the sentry has no shared-memory futex keys yet: a shared
//! futex is keyed the same way, which is correct within one process).
//! `FUTEX_WAKE` wakes every waiter on the key; futex users tolerate
//! spurious wake-ups, so this is correct if not minimal. The counts are
//! kept so `FUTEX_WAKE` can report how many it woke.

use checkpoints::Stateify;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::waiter::{WaitQueue, EVENT_ALL};

/// A futex key.
pub type FutexKey = (i32, u64);

#[derive(Debug, Default, Stateify)]
pub struct Futexes {
    /// Queue and number of registered waiters per key. Host objects: not
    /// saved (a waiting task is rewound to restart its futex call).
    #[state(nosave)]
    table: Mutex<HashMap<FutexKey, (Arc<WaitQueue>, usize)>>,
}

impl Futexes {
    /// Registers one more waiter on `key` and returns its queue.
    pub fn enter(&self, key: FutexKey) -> Arc<WaitQueue> {
        let mut t = super::thread_group::lock(&self.table);
        let e = t
            .entry(key)
            .or_insert_with(|| (Arc::new(WaitQueue::new()), 0));
        e.1 += 1;
        e.0.clone()
    }

    /// Unregisters a waiter of `key`.
    pub fn leave(&self, key: FutexKey) {
        let mut t = super::thread_group::lock(&self.table);
        if let Some(e) = t.get_mut(&key) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                t.remove(&key);
            }
        }
    }

    /// Wakes the waiters of `key`; returns how many were waiting (at most
    /// `n`).
    pub fn wake(&self, key: FutexKey, n: usize) -> usize {
        let t = super::thread_group::lock(&self.table);
        match t.get(&key) {
            Some((q, count)) => {
                q.notify(EVENT_ALL);
                (*count).min(n)
            }
            None => 0,
        }
    }
}
