//! Kernel pause: stopping every task at a clean boundary so the kernel's
//! object graph is consistent and can be saved (DESIGN.md point 5; gVisor
//! `Kernel.Pause` / `TaskSet.BeginExternalStop`).
//!
//! Protocol:
//! 1. [`Kernel::pause`] sets the request flag and, under the task-set lock,
//!    `TaskSet::pausing` (so `TaskSet::interrupted` is true for every task),
//!    then kicks every task: a task in application code is interrupted
//!    (`Interrupter`), a task blocked in the sentry is woken
//!    (`Waiter::wake`) and its blocking syscall returns `ERESTARTSYS`-like.
//! 2. Each task reaches its signal check (`RunState::CheckSignals`), where
//!    the restart is resolved the Linux way (no signal: rip -= 2, rax =
//!    orig_rax, or `restart_syscall` with the restart block for sleeps),
//!    and then [`TaskRunner::park`]s: its registers and FP state go to
//!    `Task::local`, it is counted as parked and sleeps until resumed.
//! 3. When every live task is parked, `pause` returns a [`PausedKernel`]:
//!    the proof (in the type system) that the state may be saved.
//! 4. [`PausedKernel::resume`] (or dropping it) clears the request and lets
//!    every task go on; a task resumes by checking its signals again, so a
//!    rewound syscall is simply issued again.
//!
//! Besides the signal check, two waits are boundaries of their own and park
//! in place: a group stop (`signals::stopped`) and a vfork parent waiting
//! for its child (`clone::wait_vfork_done`; the syscall has returned, the
//! wait is resumed from saved state after a restore). Both sleep through
//! `TaskRunner::wait_at_boundary`.
//!
//! A task that cannot reach a boundary in time (one stuck in an
//! uninterruptible host operation) makes the pause fail; the pause is then
//! undone and the sandbox keeps running.
//!
//! Lock order: `Kernel::tasks` → `Pause::inner` (never the reverse).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::kernel::Kernel;
use super::pid_ns::Pid;
use super::task::run::TaskRunner;
use super::task::signals::rewound;
use crate::platform::FpState;

/// Pause coordination state of one kernel. Host-side only (never saved).
#[derive(Debug, Default)]
pub struct Pause {
    /// Fast path for the run loop: whether tasks must park. Written under
    /// `inner`.
    requested: AtomicBool,
    inner: Mutex<PauseInner>,
    /// Signalled when a task parks and when a pause ends.
    cv: Condvar,
}

#[derive(Debug, Default)]
struct PauseInner {
    /// Tids of the parked tasks.
    parked: BTreeSet<Pid>,
    /// Incremented by every resume; a parked task sleeps until it changes.
    generation: u64,
    /// Whether a pause is held (only one at a time).
    held: bool,
    /// Tasks of the current pause that parked without their FP state
    /// (tid, reason): the pause fails, since a restored task would
    /// silently get a fresh FPU. Cleared when a pause starts.
    fp_failed: Vec<(Pid, String)>,
}

/// Why the kernel could not be paused.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("another checkpoint of this sandbox is in progress")]
    Busy,
    #[error("the sandbox is shutting down")]
    ShuttingDown,
    #[error("tasks {tids:?} did not reach a clean boundary within {waited:?}")]
    Timeout { tids: Vec<Pid>, waited: Duration },
    #[error("cannot read the FP state of task {tid}: {reason}")]
    FpState { tid: Pid, reason: String },
}

impl Pause {
    /// Whether tasks must park at their next boundary.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, PauseInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A kernel whose every task is parked. Saving its state is safe while this
/// exists; dropping it resumes the tasks.
#[derive(Debug)]
pub struct PausedKernel {
    kernel: Arc<Kernel>,
    /// How long the pause took to take effect.
    pub took: Duration,
    resumed: bool,
}

impl PausedKernel {
    /// The paused kernel.
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// Lets every task run again.
    pub fn resume(mut self) {
        self.do_resume();
    }

    fn do_resume(&mut self) {
        if self.resumed {
            return;
        }
        self.resumed = true;
        let k = &self.kernel;
        let mut ts = k.tasks();
        ts.pausing = false;
        let mut p = k.pause.lock();
        p.generation = p.generation.wrapping_add(1);
        p.held = false;
        k.pause.requested.store(false, Ordering::Release);
        k.pause.cv.notify_all();
        drop(p);
        drop(ts);
        tracing::debug!("kernel resumed");
    }
}

impl Drop for PausedKernel {
    fn drop(&mut self) {
        self.do_resume();
    }
}

impl Kernel {
    /// Stops every task at a clean boundary (see the module docs); fails
    /// (and resumes) if some task does not park within `timeout`.
    pub fn pause(self: &Arc<Self>, timeout: Duration) -> Result<PausedKernel, PauseError> {
        let start = Instant::now();
        {
            let mut ts = self.tasks();
            if ts.shutting_down {
                return Err(PauseError::ShuttingDown);
            }
            let mut p = self.pause.lock();
            if p.held {
                return Err(PauseError::Busy);
            }
            p.held = true;
            p.fp_failed.clear();
            self.pause.requested.store(true, Ordering::Release);
            drop(p);
            ts.pausing = true;
            for e in ts.tasks.values() {
                e.task.kick();
            }
        }
        let mut guard = PausedKernel {
            kernel: self.clone(),
            took: Duration::ZERO,
            resumed: false,
        };
        loop {
            let ts = self.tasks();
            let p = self.pause.lock();
            let missing: Vec<Pid> = ts
                .tasks
                .keys()
                .copied()
                .filter(|t| !p.parked.contains(t))
                .collect();
            if let Some((tid, reason)) = p.fp_failed.first().cloned() {
                // `guard` resumes the parked tasks when it drops.
                return Err(PauseError::FpState { tid, reason });
            }
            if missing.is_empty() {
                guard.took = start.elapsed();
                tracing::debug!(took = ?guard.took, tasks = ts.tasks.len(), "kernel paused");
                return Ok(guard);
            }
            if ts.shutting_down {
                return Err(PauseError::ShuttingDown);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(PauseError::Timeout {
                    tids: missing,
                    waited,
                });
            }
            drop(ts);
            // A task that parks notifies; poll anyway so tasks that exit
            // (and leave the set) are noticed.
            let _ = self
                .pause
                .cv
                .wait_timeout(p, Duration::from_millis(20))
                .map_err(|e| e.into_inner());
        }
    }
}

impl TaskRunner {
    /// Parks the task for a kernel pause: saves its registers (with a
    /// pending syscall restart applied) and FP state into `Task::local`,
    /// reports it parked and sleeps until the pause ends.
    ///
    /// Preconditions: called from the task's own thread at a clean
    /// boundary (the signal check), with no kernel lock held.
    pub(crate) fn park(&mut self) {
        let mut fp = FpState {
            bytes: vec![0u8; self.kernel.fp_state_size()],
        };
        // A task without its FP state must not be saved (it would be
        // restored with a fresh FPU): record the failure, which fails the
        // pause; the task still parks so the pause is undone uniformly.
        let fp_err = self.ctx.get_fp(&mut fp).err().map(|e| e.to_string());
        if let Some(e) = &fp_err {
            tracing::error!(tid = self.tid(), "cannot read FP state at pause: {e}");
        }
        let fp = if fp_err.is_none() { Some(fp) } else { None };
        {
            let mut l = self.task.local();
            // A restart not yet resolved (a task that stopped in a blocking
            // syscall) is saved already rewound: after restore the syscall
            // is issued again.
            l.regs = match self.restart {
                Some(code) => rewound(self.regs, code),
                None => self.regs,
            };
            l.fp = fp;
        }
        let pause = &self.kernel.pause;
        let tid = self.tid();
        let mut p = pause.lock();
        if !pause.requested() {
            // The pause ended (e.g. failed early) between the caller's
            // check and here: there is no generation change to wait for.
            drop(p);
            self.task.local().fp = None;
            return;
        }
        let gen = p.generation;
        if let Some(e) = fp_err {
            p.fp_failed.push((tid, e));
        }
        p.parked.insert(tid);
        pause.cv.notify_all();
        while p.generation == gen {
            p = pause.cv.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        p.parked.remove(&tid);
        drop(p);
        self.task.local().fp = None;
    }

    /// Sleeps while `waiting` holds, at a clean boundary of its own (a
    /// group stop, a vfork parent's wait): parks in place for a kernel
    /// pause, otherwise waits for a kick of the task's waiter (whatever
    /// may end the wait kicks it), and looks again.
    ///
    /// Preconditions: as [`TaskRunner::park`].
    pub(crate) fn wait_at_boundary(&mut self, waiting: impl Fn(&Self) -> bool) {
        while waiting(self) {
            if self.kernel.pause.requested() {
                self.park();
            } else {
                self.task.waiter.wait(None);
            }
        }
    }
}
