//! `Task`: one guest thread, run by one host thread.
//!
//! The struct holds the task's identity and state; behaviour is spread
//! over sibling files like gVisor's `task_*.go`: [`run`] (the run loop
//! state machine), [`signals`] (delivery, frames, sigreturn), [`clone`]
//! (fork/vfork/clone), [`exec`], [`exit`] (exit, reaping, wait), [`mem`]
//! (copy-in/out helpers), [`block`] (interruptible waits).

use checkpoints::Stateify;
pub mod block;
pub mod clone;
pub mod exec;
pub mod exit;
pub mod mem;
pub mod run;
pub mod signals;

use std::sync::{Arc, Mutex};

use super::creds::Credentials;
use super::pid_ns::Pid;
use super::signal::AltStack;
use super::thread_group::{lock, ThreadGroup};
use crate::platform::{Interrupter, Registers};
use crate::waiter::Waiter;

pub use run::TaskRunner;

/// A guest thread.
#[derive(Stateify)]
pub struct Task {
    /// Thread id (for a leader, also the pid). Immutable.
    pub tid: Pid,
    /// The process. Immutable (no de_thread across groups).
    pub tg: Arc<ThreadGroup>,
    /// The task's wake-up latch: every interruptible wait sleeps on it and
    /// signal delivery / kernel pause wake it. Host object, not saved
    /// (loaded as a fresh waiter: no wake-up is pending across restore).
    #[state(nosave)]
    pub waiter: Arc<Waiter>,
    /// Kicks the task's context out of application code. Host object, not
    /// saved (loaded empty): set by the task's thread when it creates its
    /// context after restore.
    #[state(nosave)]
    interrupter: Mutex<Option<Arc<dyn Interrupter>>>,
    /// State owned by the task's own thread; other threads read it rarely
    /// (procfs, `/proc/<pid>/status`).
    pub local: Mutex<TaskLocal>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("tid", &self.tid)
            .finish_non_exhaustive()
    }
}

/// What `restart_syscall(2)` continues (Linux `struct restart_block`):
/// an interrupted call whose arguments alone would restart it with its
/// whole timeout again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum RestartBlock {
    /// `nanosleep`/relative `clock_nanosleep` (`hrtimer_nanosleep_restart`).
    Sleep {
        /// Clock id of the deadline.
        clock: i32,
        /// Absolute deadline on that clock.
        deadline: i64,
        /// Where to write the remaining time if interrupted (0: nowhere).
        rmtp: u64,
    },
    /// `poll` with a timeout (`do_restart_poll`).
    Poll {
        fds: u64,
        nfds: u64,
        /// Absolute deadline, sandbox monotonic nanoseconds.
        deadline: i64,
    },
    /// `FUTEX_WAIT` with a relative timeout (`futex_wait_restart`).
    Futex {
        uaddr: u64,
        /// The value the futex word must still hold.
        val: u32,
        /// Absolute deadline, sandbox monotonic nanoseconds.
        deadline: i64,
    },
    /// `epoll_wait`/`epoll_pwait`/`epoll_pwait2` with a timeout,
    /// interrupted by a checkpoint pause (a signal or a stop makes it
    /// EINTR, as in Linux `ep_poll`; see `syscalls::epoll`).
    Epoll {
        epfd: u64,
        events: u64,
        maxevents: u64,
        /// Absolute deadline, sandbox monotonic nanoseconds.
        deadline: i64,
        /// The temporary signal mask of `epoll_pwait`/`epoll_pwait2`,
        /// installed again by the restart.
        sigmask: Option<u64>,
    },
    /// `rt_sigtimedwait` with a timeout, interrupted by a checkpoint pause
    /// (a signal or a stop makes it EINTR, as in Linux `do_sigtimedwait`;
    /// see `syscalls::signal`).
    SigTimedWait {
        /// The signals waited for.
        set: u64,
        /// Where the `siginfo` goes (0: nowhere).
        info: u64,
        /// Absolute deadline, sandbox monotonic nanoseconds.
        deadline: i64,
    },
}

/// Task state that the task's own thread mutates.
#[derive(Clone, Debug, Default, Stateify)]
pub struct TaskLocal {
    /// Registers at the last stop (kept current at every kernel entry, so
    /// a checkpoint sees them).
    pub regs: Registers,
    pub creds: Credentials,
    /// `comm` (at most 15 bytes).
    pub comm: Vec<u8>,
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID`: zeroed (and futex-woken)
    /// at exit.
    pub clear_child_tid: u64,
    /// `CLONE_CHILD_SETTID`: written with the tid when the child starts.
    pub set_child_tid: u64,
    /// `set_robust_list` head and length (stored, reported by
    /// `get_robust_list`).
    pub robust_list: (u64, u64),
    pub altstack: AltStack,
    /// Pending `restart_syscall` block.
    pub restart: Option<RestartBlock>,
    /// `PR_SET_PDEATHSIG` (stored).
    pub pdeathsig: i32,
    /// Sandbox monotonic time at creation (thread CPU clock approximation).
    pub start_time: i64,
    /// Extended (FP) register state, captured when the task parks for a
    /// checkpoint (`kernel::pause`) and put back into the new context on
    /// restore; `None` while the task runs (the context holds it).
    pub fp: Option<crate::platform::FpState>,
}

impl Task {
    pub fn new(tid: Pid, tg: Arc<ThreadGroup>, local: TaskLocal) -> Arc<Task> {
        Arc::new(Task {
            tid,
            tg,
            waiter: Waiter::new(),
            interrupter: Mutex::new(None),
            local: Mutex::new(local),
        })
    }

    /// Wakes the task from any interruptible wait and kicks it out of
    /// application code, so it looks at its signals and stop requests.
    pub fn kick(&self) {
        self.waiter.wake();
        if let Some(i) = lock(&self.interrupter).as_ref() {
            i.interrupt();
        }
    }

    /// Installs the interrupter of the task's (new) context.
    pub fn set_interrupter(&self, i: Option<Arc<dyn Interrupter>>) {
        *lock(&self.interrupter) = i;
    }

    /// The task's thread-local state.
    pub fn local(&self) -> std::sync::MutexGuard<'_, TaskLocal> {
        lock(&self.local)
    }
}
