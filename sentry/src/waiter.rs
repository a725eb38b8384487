//! Blocking, the sentry way: wait queues and per-task waiters.
//!
//! An object a task can block on (a pipe, a child's exit, a timer) owns a
//! [`WaitQueue`]. A blocking syscall registers the task's [`Waiter`] on the
//! queues it cares about, re-checks its condition, and only then sleeps in
//! [`Waiter::wait`]. Anyone who changes the condition calls
//! [`WaitQueue::notify`]. Signal delivery and kernel pause call
//! [`Waiter::wake`] directly, so every wait is interruptible; the woken task
//! re-checks its condition, its pending signals and the kernel's stop
//! request, in that order of its own choosing.
//!
//! Waiters carry an event mask (`POLLIN`-style bits) so a queue shared by
//! readers and writers wakes only the ones that care.
//!
//! These are host synchronization objects and are never checkpointed: a
//! task blocked at checkpoint time is rewound to restart its syscall, and
//! re-registers after restore.
//!
//! Lock order: `WaitQueue::entries` → `Waiter::state`.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

/// Event bits (same values as `POLL*` for convenience).
pub type EventMask = u32;
pub const EVENT_IN: EventMask = libc::POLLIN as u32;
pub const EVENT_OUT: EventMask = libc::POLLOUT as u32;
pub const EVENT_ERR: EventMask = libc::POLLERR as u32;
pub const EVENT_HUP: EventMask = libc::POLLHUP as u32;
/// Wakes on anything.
pub const EVENT_ALL: EventMask = u32::MAX;

/// A task's wake-up latch.
#[derive(Debug, Default)]
pub struct Waiter {
    /// `true` once woken and not yet consumed by `wait`.
    state: Mutex<bool>,
    cond: Condvar,
}

/// How a [`Waiter::wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    Woken,
    TimedOut,
}

impl Waiter {
    pub fn new() -> Arc<Waiter> {
        Arc::new(Waiter::default())
    }

    /// Sets the latch and wakes the sleeper, if any. Never lost: a wake
    /// before `wait` makes the next `wait` return at once.
    pub fn wake(&self) {
        let mut woken = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *woken = true;
        self.cond.notify_all();
    }

    /// Clears a pending wake-up without sleeping.
    pub fn clear(&self) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }

    /// Sleeps until woken or until `deadline` passes; consumes the wake-up.
    pub fn wait(&self, deadline: Option<Instant>) -> WaitOutcome {
        let mut woken = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *woken {
                *woken = false;
                return WaitOutcome::Woken;
            }
            match deadline {
                None => woken = self.cond.wait(woken).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return WaitOutcome::TimedOut;
                    }
                    woken = self
                        .cond
                        .wait_timeout(woken, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

/// Registered waiters of one object.
#[derive(Debug, Default)]
pub struct WaitQueue {
    entries: Mutex<Vec<(Weak<Waiter>, EventMask)>>,
}

impl WaitQueue {
    pub fn new() -> WaitQueue {
        WaitQueue::default()
    }

    /// Registers `w` for the events in `mask`. Pair with [`WaitQueue::remove`]
    /// (or use [`Registration`]).
    pub fn add(&self, w: &Arc<Waiter>, mask: EventMask) {
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.retain(|(x, _)| x.strong_count() > 0);
        e.push((Arc::downgrade(w), mask));
    }

    /// Unregisters every registration of `w`.
    pub fn remove(&self, w: &Arc<Waiter>) {
        let target = Arc::downgrade(w);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(x, _)| !x.ptr_eq(&target) && x.strong_count() > 0);
    }

    /// Wakes every waiter whose mask intersects `events`.
    pub fn notify(&self, events: EventMask) {
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (w, mask) in e.iter() {
            if mask & events != 0 {
                if let Some(w) = w.upgrade() {
                    w.wake();
                }
            }
        }
    }
}

/// Registers a waiter on a queue for as long as it lives.
pub struct Registration<'a> {
    queue: &'a WaitQueue,
    waiter: Arc<Waiter>,
}

impl<'a> Registration<'a> {
    pub fn new(queue: &'a WaitQueue, waiter: &Arc<Waiter>, mask: EventMask) -> Self {
        queue.add(waiter, mask);
        Registration {
            queue,
            waiter: waiter.clone(),
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.queue.remove(&self.waiter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wake_before_wait_is_not_lost() {
        let w = Waiter::new();
        w.wake();
        assert_eq!(w.wait(Some(Instant::now())), WaitOutcome::Woken);
    }

    #[test]
    fn wait_times_out_without_wake() {
        let w = Waiter::new();
        let d = Instant::now() + Duration::from_millis(20);
        assert_eq!(w.wait(Some(d)), WaitOutcome::TimedOut);
        assert!(Instant::now() >= d);
    }

    #[test]
    fn notify_respects_masks() {
        let q = WaitQueue::new();
        let reader = Waiter::new();
        let _r = Registration::new(&q, &reader, EVENT_IN);
        q.notify(EVENT_OUT);
        assert_eq!(reader.wait(Some(Instant::now())), WaitOutcome::TimedOut);
        q.notify(EVENT_IN);
        assert_eq!(reader.wait(Some(Instant::now())), WaitOutcome::Woken);
    }

    #[test]
    fn notify_from_other_thread_wakes_sleeper() {
        let q = Arc::new(WaitQueue::new());
        let w = Waiter::new();
        q.add(&w, EVENT_ALL);
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            q2.notify(EVENT_IN);
        });
        assert_eq!(
            w.wait(Some(Instant::now() + Duration::from_secs(5))),
            WaitOutcome::Woken
        );
        t.join().unwrap();
    }
}
