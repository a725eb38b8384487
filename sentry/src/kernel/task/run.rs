//! The task run loop, a reified state machine (gVisor `task_run.go`).
//!
//! Each iteration is one of:
//! - [`RunState::CheckSignals`]: resolve a pending syscall restart, deliver
//!   pending signals (frames, default actions, job-control stops), honour
//!   group exit;
//! - [`RunState::App`]: `ctx.switch` into application code until the next
//!   event (syscall → [`RunState::Syscall`], fault → signal or resolved
//!   demand fault, interruption → back to `CheckSignals`);
//! - [`RunState::Syscall`]: dispatch through the table, write the result;
//! - [`RunState::Exiting`]: tear the task down; the loop ends.
//!
//! The registers live in the runner while the task runs and are copied to
//! `Task::local` at every kernel entry, so a pause lands on a boundary with
//! the state in the kernel's object graph.

use std::sync::Arc;

use tracing::{debug, error, trace};

use super::super::kernel::Kernel;
use super::super::signal::{SigInfo, SIGBUS, SIGSEGV};
use super::super::task_set::ExitStatus;
use super::Task;
use crate::errno::{self, Errno};
use crate::platform::{Context, Event, Fault, Registers};

/// Where the task is in its loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    CheckSignals,
    App,
    Syscall,
    /// The thread exits with this status; `group` if the whole process
    /// does.
    Exiting {
        status: ExitStatus,
        group: bool,
    },
}

/// The task's host thread: owns its platform context and live registers.
pub struct TaskRunner {
    pub kernel: Arc<Kernel>,
    pub task: Arc<Task>,
    /// The task's context (address space + thread) on the platform.
    /// Replaced by execve.
    pub ctx: Box<dyn Context>,
    pub regs: Registers,
    pub state: RunState,
    /// The errno (ERESTART*) of the last syscall if it asked to be
    /// restarted; resolved at the next signal check.
    pub restart: Option<i32>,
    /// `ctx` is fresh from `new_context` and has never run application
    /// code (init before its first exec): execve may load into it instead
    /// of creating another stub. Cleared by the first execve.
    pub(crate) ctx_pristine: bool,
    /// The page this task's last fault found already mapped (retried once;
    /// `MemoryManager::handle_thread_fault`). Owned by the task's thread.
    pub(crate) spurious_fault: Option<u64>,
    /// The task may be waiting for a vfork child
    /// (`TaskEntry::vfork_child`): the next signal check looks, and waits
    /// (`clone::wait_vfork_done`). Set by a vfork and by a new runner (a
    /// restored vfork parent waits again); a hint that spares the check
    /// otherwise, the task set has the truth.
    pub(crate) vfork_pending: bool,
}

/// Initial register values for a fresh user context: user code and stack
/// segments of x86-64 Linux, IF set.
pub fn initial_regs(entry: u64, sp: u64) -> Registers {
    Registers {
        rip: entry,
        rsp: sp,
        cs: 0x33,
        ss: 0x2b,
        eflags: 0x202,
        orig_rax: u64::MAX,
        ..Default::default()
    }
}

impl TaskRunner {
    pub fn new(
        kernel: Arc<Kernel>,
        task: Arc<Task>,
        ctx: Box<dyn Context>,
        regs: Registers,
    ) -> Self {
        task.set_interrupter(Some(ctx.interrupter()));
        TaskRunner {
            kernel,
            task,
            ctx,
            regs,
            state: RunState::CheckSignals,
            restart: None,
            ctx_pristine: false,
            spurious_fault: None,
            vfork_pending: true,
        }
    }

    /// The tid.
    pub fn tid(&self) -> i32 {
        self.task.tid
    }

    /// The pid.
    pub fn pid(&self) -> i32 {
        self.task.tg.pid
    }

    /// Runs the task until it exits. A panic in the sentry while running
    /// it (a sentry bug, never guest input) is contained: the task's
    /// process is killed (SIGKILL) and the rest of the sandbox goes on.
    pub fn run(self) {
        let kernel = self.kernel.clone();
        let task = self.task.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || self.run_loop()));
        if r.is_err() {
            error!(
                tid = task.tid,
                "sentry bug: task thread panicked; killing its process"
            );
            task.set_interrupter(None);
            super::exit::exit_task(
                &kernel,
                &task,
                ExitStatus::Signaled {
                    sig: super::super::signal::SIGKILL,
                    core: false,
                },
                true,
            );
        }
    }

    fn run_loop(mut self) {
        loop {
            match self.state {
                RunState::CheckSignals => {
                    self.task.local().regs = self.regs;
                    // A vfork parent waits for its child before anything
                    // else (signals included), parking here for a pause.
                    self.wait_vfork_done();
                    self.check_signals();
                    if self.state == RunState::CheckSignals {
                        if self.kernel.pause.requested() {
                            // A clean boundary: park for the checkpoint,
                            // then look at signals again.
                            self.park();
                            continue;
                        }
                        self.state = RunState::App;
                    }
                }
                RunState::App => self.run_app(),
                RunState::Syscall => {
                    self.syscall();
                    if self.state == RunState::Syscall {
                        self.state = RunState::CheckSignals;
                    }
                }
                RunState::Exiting { status, group } => {
                    self.exit(status, group);
                    return;
                }
            }
        }
    }

    fn run_app(&mut self) {
        match self.ctx.switch(&mut self.regs) {
            Ok(Event::Syscall) => self.state = RunState::Syscall,
            Ok(Event::Fault(f)) => {
                // Before `fault`: an unresolvable fault sets `Exiting`.
                self.state = RunState::CheckSignals;
                self.fault(f);
            }
            Ok(Event::Interrupted) => self.state = RunState::CheckSignals,
            Err(e) => {
                error!(tid = self.tid(), "platform failure, killing the task: {e}");
                self.state = RunState::Exiting {
                    status: ExitStatus::Signaled {
                        sig: super::super::signal::SIGKILL,
                        core: false,
                    },
                    group: true,
                };
            }
        }
    }

    /// A synchronous fault: a demand fault the memory manager resolves, or
    /// a signal for the guest (Linux `arch/x86/mm/fault.c`,
    /// `force_sig_fault`).
    fn fault(&mut self, f: Fault) {
        if f.signo == SIGSEGV || f.signo == SIGBUS {
            let res = match self.task.tg.mm() {
                Some(mm) => super::super::thread_group::lock(&mm).handle_thread_fault(
                    &mut *self.ctx,
                    f.addr,
                    f.write,
                    &mut self.spurious_fault,
                ),
                None => return,
            };
            match res {
                Ok(()) => return,
                Err(e) => match e.signal() {
                    Some((libc::SIGKILL, _)) | None => {
                        error!(
                            tid = self.tid(),
                            addr = f.addr,
                            "unresolvable fault ({e}): killing the process"
                        );
                        self.state = RunState::Exiting {
                            status: ExitStatus::Signaled {
                                sig: super::super::signal::SIGKILL,
                                core: false,
                            },
                            group: true,
                        };
                        return;
                    }
                    Some((signo, code)) => {
                        debug!(
                            tid = self.tid(),
                            addr = f.addr,
                            rip = self.regs.rip,
                            "fault: {e}"
                        );
                        self.force_signal(SigInfo::fault(signo, code, f.addr));
                        return;
                    }
                },
            }
        }
        self.force_signal(SigInfo::fault(f.signo, f.code, f.addr));
    }

    /// Dispatches the syscall in the registers through the table.
    fn syscall(&mut self) {
        let nr = self.regs.orig_rax;
        let args = self.regs.syscall_args();
        self.task.local().regs = self.regs;
        let entry = crate::syscalls::lookup(nr);
        let res = match entry {
            Some((_, Some(handler))) => handler(self, args),
            Some((name, None)) => {
                self.kernel.log_unimplemented(nr, name);
                Err(Errno::ENOSYS)
            }
            None => {
                self.kernel.log_unimplemented(nr, "unknown");
                Err(Errno::ENOSYS)
            }
        };
        if matches!(self.state, RunState::Exiting { .. }) {
            return;
        }
        let name = entry.map(|e| e.0).unwrap_or("unknown");
        let ret = match res {
            Ok(v) => {
                trace!(
                    "[{}] {}({:#x}, {:#x}, {:#x}, ...) = {:#x}",
                    self.tid(),
                    name,
                    args[0],
                    args[1],
                    args[2],
                    v
                );
                v
            }
            Err(e) => {
                trace!(
                    "[{}] {}({:#x}, {:#x}, {:#x}, ...) = -{} {:?}",
                    self.tid(),
                    name,
                    args[0],
                    args[1],
                    args[2],
                    e.code(),
                    e
                );
                if matches!(
                    e.code(),
                    errno::ERESTARTSYS
                        | errno::ERESTARTNOINTR
                        | errno::ERESTARTNOHAND
                        | errno::ERESTART_RESTARTBLOCK
                ) {
                    self.restart = Some(e.code());
                }
                if e.code() == libc::EPIPE && crate::syscalls::raises_sigpipe(nr) {
                    self.send_self(SigInfo::kernel(super::super::signal::SIGPIPE));
                }
                e.as_return()
            }
        };
        self.regs.rax = ret;
    }
}
