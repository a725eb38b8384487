//! Kicking a stub out of application code from another thread.
//!
//! The kick is a host signal, [`INTERRUPT_SIGNAL`], sent with `tgkill` to
//! the stub thread. The stub is always traced, so the signal never acts: it
//! turns into a signal-delivery-stop that the tracer suppresses and reports
//! as `Event::Interrupted`. A kick sent while the stub is stopped stays
//! pending and ends the next `switch` at once (a spurious interruption the
//! contract allows); standard signals coalesce, so several kicks cost one
//! stop. Kicks are never lost: the stub unblocks every signal at creation.

use std::sync::Mutex;

use sentry::platform::Interrupter;

/// The host signal used to kick stubs: `SIGCHLD`, as gVisor's ptrace
/// platform does. The stub never has children, so the host never sends it
/// one for any other reason, and its default action (ignore) makes it
/// harmless should it ever reach an untraced stub.
pub const INTERRUPT_SIGNAL: i32 = libc::SIGCHLD;

/// The `Send + Sync` handle of one context's stub thread.
#[derive(Debug)]
pub(crate) struct StubInterrupter {
    /// The stub thread's `(tgid, tid)` while it is the application's;
    /// `None` once the owning context has begun to park or kill it. Held
    /// during `tgkill` so the id cannot be reaped (and reused by an
    /// unrelated process) between the check and the signal.
    tid: Mutex<Option<(i32, i32)>>,
}

impl StubInterrupter {
    pub(crate) fn new(tgid: i32, tid: i32) -> StubInterrupter {
        StubInterrupter {
            tid: Mutex::new(Some((tgid, tid))),
        }
    }

    /// Forgets the stub: later interrupts do nothing. Called by the owning
    /// context before it kills and reaps the stub.
    pub(crate) fn disarm(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(i32, i32)>> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // Option inside is always consistent.
        self.tid.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Interrupter for StubInterrupter {
    fn interrupt(&self) {
        let guard = self.lock();
        if let Some((tgid, tid)) = *guard {
            if let Err(err) = crate::sys::tgkill(tgid, tid, INTERRUPT_SIGNAL) {
                // ESRCH: the stub died; its context reports that on the
                // next switch.
                tracing::debug!(tid, %err, "interrupting stub failed");
            }
        }
    }
}
