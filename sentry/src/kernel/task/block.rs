//! Interruptible blocking (gVisor `task_block.go`).
//!
//! Every sleep registers the task's waiter, re-checks its condition, then
//! sleeps in `Waiter::wait`; signals and kernel pause wake the waiter, and
//! the sleeper returns `ERESTARTSYS` (or the caller's choice) so the
//! syscall can be restarted or fail with EINTR per the signal rules.

use std::time::Instant;

use super::run::TaskRunner;
use crate::errno::{Errno, SysResult};
use crate::waiter::{EventMask, WaitOutcome, WaitQueue};

impl TaskRunner {
    /// Retries `op` while it fails with `EAGAIN`, sleeping on `queue` for
    /// `mask` in between. Returns `ERESTARTSYS` when a signal arrives and
    /// `ETIMEDOUT` when `deadline` passes.
    pub fn block_on<T>(
        &mut self,
        queue: &WaitQueue,
        mask: EventMask,
        deadline: Option<Instant>,
        mut op: impl FnMut(&mut Self) -> SysResult<T>,
    ) -> SysResult<T> {
        match op(self) {
            Err(e) if e.code() == libc::EAGAIN => {}
            r => return r,
        }
        let waiter = self.task.waiter.clone();
        let _reg = crate::waiter::Registration::new(queue, &waiter, mask);
        loop {
            match op(self) {
                Err(e) if e.code() == libc::EAGAIN => {}
                r => return r,
            }
            if self.interrupted() {
                return Err(Errno::ERESTARTSYS);
            }
            if waiter.wait(deadline) == WaitOutcome::TimedOut {
                return Err(Errno::ETIMEDOUT);
            }
        }
    }

    /// Sleeps until `deadline` (or forever). `Ok` when it passed,
    /// `Err(ERESTARTSYS)` when interrupted by a signal.
    pub fn sleep_until(&mut self, deadline: Option<Instant>) -> SysResult<()> {
        let waiter = self.task.waiter.clone();
        loop {
            if self.interrupted() {
                return Err(Errno::ERESTARTSYS);
            }
            if waiter.wait(deadline) == WaitOutcome::TimedOut {
                return Ok(());
            }
        }
    }
}
