//! Signal delivery on the task's own thread (Linux `kernel/signal.c`
//! `get_signal`, `arch/x86/kernel/signal.c` `arch_do_signal_or_restart`,
//! `handle_signal`), syscall restart, and `rt_sigreturn`.

use tracing::debug;

use super::super::signal::action::{
    SA_NODEFER, SA_ONSTACK, SA_RESETHAND, SA_RESTART, SIG_DFL, SIG_IGN,
};
use super::super::signal::frame;
use super::super::signal::{
    default_action, DefaultAction, SigInfo, SigSet, Signal, SIGKILL, SS_AUTODISARM,
};
use super::super::task_set::{ExitStatus, JobState};
use super::super::thread_group::lock;
use super::run::{RunState, TaskRunner};
use crate::errno::{self, Errno, SysResult};
use crate::platform::{FpState, Registers};

/// `restart_syscall(2)`'s number (x86-64 `__NR_restart_syscall`).
#[allow(non_upper_case_globals)]
pub(crate) const SYS_restart_syscall: u64 = 219;

/// The registers of a syscall interrupted with `code` (an `ERESTART*`
/// errno) rewound to issue it again when no handler runs (Linux
/// `arch_do_signal_or_restart`): back over the 2-byte `syscall`
/// instruction, with the number restored, or [`SYS_restart_syscall`] for
/// `ERESTART_RESTARTBLOCK` (the task's restart block says what to resume).
pub(crate) fn rewound(mut regs: Registers, code: i32) -> Registers {
    regs.rip = regs.rip.wrapping_sub(2);
    regs.rax = if code == errno::ERESTART_RESTARTBLOCK {
        SYS_restart_syscall
    } else {
        regs.orig_rax
    };
    regs
}

/// What the signal check decided, computed under the task-set lock and
/// acted on after it is released.
enum Decision {
    None,
    Handler {
        info: SigInfo,
        act: super::super::signal::SigAction,
        old_mask: SigSet,
    },
    Exit(ExitStatus),
    /// This thread alone exits (de_thread for another thread's execve).
    ExitThread,
    Stop,
}

impl TaskRunner {
    /// Queues a signal on this task (e.g. SIGPIPE).
    pub fn send_self(&self, info: SigInfo) {
        let mut ts = self.kernel.tasks();
        ts.send_to_task(self.tid(), info);
    }

    /// Linux `force_sig_info`: a synchronous signal that cannot be ignored
    /// or blocked: if it is, the disposition is reset to the default.
    pub fn force_signal(&self, info: SigInfo) {
        let mut ts = self.kernel.tasks();
        let pid = self.pid();
        let tid = self.tid();
        let blocked = ts.tasks.get(&tid).is_some_and(|e| e.mask.has(info.signo));
        if let Some(p) = ts.procs.get_mut(&pid) {
            let mut act = p.actions.get(info.signo);
            if blocked || act.handler == SIG_IGN {
                act.handler = SIG_DFL;
                p.actions.set(info.signo, act);
            }
        }
        if let Some(e) = ts.tasks.get_mut(&tid) {
            e.mask.remove(info.signo);
            e.pending.enqueue(info);
        }
    }

    /// Whether a blocking syscall must return to deliver a signal or stop.
    pub fn interrupted(&self) -> bool {
        self.kernel.tasks().interrupted(self.tid())
    }

    /// Whether a signal, a stop or an exit (not a kernel pause alone) is
    /// what interrupts this task's wait (Linux `signal_pending`).
    pub fn signal_pending(&self) -> bool {
        self.kernel.tasks().signal_pending(self.tid())
    }

    /// The signal check at every return to application code.
    pub(super) fn check_signals(&mut self) {
        loop {
            match self.decide() {
                Decision::None => {
                    self.resolve_restart(false, 0);
                    let mut ts = self.kernel.tasks();
                    if let Some(e) = ts.tasks.get_mut(&self.tid()) {
                        if let Some(m) = e.saved_mask.take() {
                            e.mask = m;
                        }
                    }
                    return;
                }
                Decision::Exit(status) => {
                    self.state = RunState::Exiting {
                        status,
                        group: true,
                    };
                    return;
                }
                Decision::ExitThread => {
                    self.state = RunState::Exiting {
                        status: ExitStatus::Signaled {
                            sig: SIGKILL,
                            core: false,
                        },
                        group: false,
                    };
                    return;
                }
                Decision::Stop => self.stopped(),
                Decision::Handler {
                    info,
                    act,
                    old_mask,
                } => {
                    self.resolve_restart(true, act.flags);
                    if let Err(e) = self.setup_frame(&info, &act, old_mask) {
                        debug!(
                            tid = self.tid(),
                            "cannot build signal frame ({e:?}): SIGSEGV"
                        );
                        self.state = RunState::Exiting {
                            status: ExitStatus::Signaled {
                                sig: super::super::signal::SIGSEGV,
                                core: false,
                            },
                            group: true,
                        };
                    }
                    return;
                }
            }
        }
    }

    /// Dequeues the next signal and decides what it does.
    fn decide(&mut self) -> Decision {
        let tid = self.tid();
        let pid = self.pid();
        let mut ts = self.kernel.tasks();
        loop {
            let Some(p) = ts.procs.get(&pid) else {
                return Decision::Exit(ExitStatus::Signaled {
                    sig: SIGKILL,
                    core: false,
                });
            };
            if let Some(st) = p.group_exit {
                return Decision::Exit(st);
            }
            if ts.tasks.get(&tid).is_some_and(|e| e.exit_requested) {
                return Decision::ExitThread;
            }
            if matches!(p.job, JobState::Stopped { .. }) && !ts.fatal_pending(pid, tid) {
                return Decision::Stop;
            }
            let Some(e) = ts.tasks.get_mut(&tid) else {
                return Decision::Exit(ExitStatus::Signaled {
                    sig: SIGKILL,
                    core: false,
                });
            };
            let mask = e.mask;
            let info = match e.pending.dequeue(mask) {
                Some(i) => i,
                None => match ts.procs.get_mut(&pid).and_then(|p| p.pending.dequeue(mask)) {
                    Some(i) => i,
                    None => return Decision::None,
                },
            };
            let sig = info.signo;
            let Some(p) = ts.procs.get_mut(&pid) else {
                return Decision::None;
            };
            let act = p.actions.get(sig);
            match act.handler {
                SIG_IGN if sig != SIGKILL => continue,
                SIG_DFL => match default_action(sig) {
                    DefaultAction::Ignore | DefaultAction::Continue => continue,
                    DefaultAction::Stop if sig != super::super::signal::SIGSTOP && pid == 1 => {
                        continue
                    }
                    DefaultAction::Stop => {
                        p.job = JobState::Stopped {
                            sig,
                            reported: false,
                        };
                        let ppid = p.ppid;
                        for t in p.threads.clone() {
                            if let Some(e) = ts.tasks.get(&t) {
                                e.task.kick();
                            }
                        }
                        ts.notify_parent_job(
                            pid,
                            ppid,
                            super::super::signal::queue::CLD_STOPPED,
                            sig,
                        );
                        return Decision::Stop;
                    }
                    DefaultAction::Terminate => {
                        return Decision::Exit(ExitStatus::Signaled { sig, core: false })
                    }
                    DefaultAction::CoreDump => {
                        // Linux sets the core bit only when a dump was
                        // written, which needs RLIMIT_CORE > 0 (the
                        // sentry writes none; the bit follows the limit).
                        let core = lock(&p.tg.limits)
                            .get(super::super::limits::RLIMIT_CORE)
                            .is_ok_and(|r| r.cur > 0);
                        return Decision::Exit(ExitStatus::Signaled { sig, core });
                    }
                },
                _ if sig == SIGKILL => {
                    return Decision::Exit(ExitStatus::Signaled { sig, core: false })
                }
                _ => {
                    if act.flags & SA_RESETHAND != 0 {
                        p.actions.set(sig, Default::default());
                    }
                    let Some(e) = ts.tasks.get_mut(&tid) else {
                        return Decision::None;
                    };
                    let old_mask = e.saved_mask.take().unwrap_or(e.mask);
                    let mut m = SigSet(e.mask.0 | act.mask.0);
                    if act.flags & SA_NODEFER == 0 {
                        m.add(sig);
                    }
                    e.mask = m.blockable();
                    return Decision::Handler {
                        info,
                        act,
                        old_mask,
                    };
                }
            }
        }
    }

    /// Group stop: sleep until continued or killed (a clean boundary, see
    /// `kernel::pause`).
    fn stopped(&mut self) {
        self.wait_at_boundary(Self::stop_holds);
    }

    /// Whether this task's process is still stopped and not being killed.
    fn stop_holds(&self) -> bool {
        let ts = self.kernel.tasks();
        ts.procs
            .get(&self.pid())
            .is_some_and(|p| matches!(p.job, JobState::Stopped { .. }))
            && !ts.fatal_pending(self.pid(), self.tid())
    }

    /// Applies the restart rules to a syscall interrupted by a signal
    /// (Linux `arch/x86/kernel/signal.c: handle_signal` and
    /// `arch_do_signal_or_restart`). `handler` says whether a handler is
    /// about to run, with `flags` its `sa_flags`.
    fn resolve_restart(&mut self, handler: bool, flags: u64) {
        let Some(code) = self.restart.take() else {
            return;
        };
        let eintr = Errno::EINTR.as_return();
        if handler {
            match code {
                errno::ERESTARTNOHAND | errno::ERESTART_RESTARTBLOCK => self.regs.rax = eintr,
                errno::ERESTARTSYS if flags & SA_RESTART == 0 => self.regs.rax = eintr,
                _ => self.rewind(code),
            }
        } else {
            self.rewind(code);
        }
    }

    fn rewind(&mut self, code: i32) {
        self.regs = rewound(self.regs, code);
    }

    /// Builds the handler frame and points the registers at the handler.
    fn setup_frame(
        &mut self,
        info: &SigInfo,
        act: &super::super::signal::SigAction,
        old_mask: SigSet,
    ) -> SysResult<()> {
        let mut fp = FpState {
            bytes: vec![0u8; self.kernel.fp_state_size()],
        };
        self.ctx
            .get_fp(&mut fp)
            .map_err(|_| Errno::EFAULT.because("cannot read FP state"))?;
        let alt = self.task.local().altstack;
        let top = frame::stack_top(&self.regs, &alt, act.flags & SA_ONSTACK != 0);
        let f = frame::build(
            &self.regs,
            &fp.bytes,
            info,
            act.restorer,
            old_mask,
            &alt,
            top,
        );
        self.copy_out(f.fp_addr, &f.fp_bytes)?;
        self.copy_out(f.addr, &f.bytes)?;
        if alt.flags & SS_AUTODISARM != 0 && alt.contains(top) {
            self.task.local().altstack = super::super::signal::AltStack::disabled();
        }
        self.regs.rsp = f.addr;
        self.regs.rip = act.handler;
        self.regs.rdi = info.signo as u64;
        self.regs.rsi = f.addr + frame::INFO_OFFSET;
        self.regs.rdx = f.addr + frame::UC_OFFSET;
        self.regs.rax = 0;
        // Linux: DF, RF and TF cleared for the handler.
        self.regs.eflags &= !(0x400 | 0x10000 | 0x100);
        self.regs.orig_rax = u64::MAX;
        debug!(
            tid = self.tid(),
            sig = info.signo,
            handler = act.handler,
            "signal delivered"
        );
        Ok(())
    }

    /// `rt_sigreturn(2)`: restores the context saved by [`Self::setup_frame`].
    /// A bad frame kills the task with SIGSEGV (Linux `signal_fault` +
    /// `force_sig(SIGSEGV)`).
    pub fn sigreturn(&mut self) -> SysResult<u64> {
        let uc_addr = self.regs.rsp;
        let mut uc = [0u8; frame::UCONTEXT_SIZE];
        if self.copy_in(uc_addr, &mut uc).is_err() {
            self.force_signal(SigInfo::kernel(super::super::signal::SIGSEGV));
            return Ok(self.regs.rax);
        }
        let r = frame::restore(&self.regs, &uc);
        if r.fp_addr != 0 {
            let mut fp = FpState {
                bytes: vec![0u8; self.kernel.fp_state_size()],
            };
            if self.copy_in(r.fp_addr, &mut fp.bytes).is_ok() {
                // Clear the sw bytes: they are the signal frame's, not state.
                let _ = self.ctx.set_fp(&fp);
            }
        }
        self.regs = r.regs;
        {
            let mut ts = self.kernel.tasks();
            if let Some(e) = ts.tasks.get_mut(&self.tid()) {
                e.mask = r.mask;
            }
        }
        // restore_altstack: errors are ignored like Linux does.
        let _ = self.set_altstack(r.alt);
        Ok(self.regs.rax)
    }

    /// `sigaltstack` semantics for setting a new stack (EPERM while on it).
    pub fn set_altstack(&mut self, new: super::super::signal::AltStack) -> SysResult<()> {
        let mut l = self.task.local();
        if l.altstack.contains(self.regs.rsp) {
            return Err(Errno::EPERM.because("on the alternate stack"));
        }
        let mode = new.flags & !SS_AUTODISARM;
        if mode != 0
            && mode != super::super::signal::SS_DISABLE
            && mode != super::super::signal::SS_ONSTACK
        {
            return Err(Errno::EINVAL.because("bad ss_flags"));
        }
        if mode == super::super::signal::SS_DISABLE {
            l.altstack = super::super::signal::AltStack::disabled();
        } else {
            if new.size < 2048 {
                return Err(Errno::ENOMEM.because("alternate stack smaller than MINSIGSTKSZ"));
            }
            l.altstack = super::super::signal::AltStack {
                sp: new.sp,
                size: new.size,
                flags: new.flags & SS_AUTODISARM,
            };
        }
        Ok(())
    }

    /// The task's current signal mask.
    pub fn sigmask(&self) -> SigSet {
        self.kernel
            .tasks()
            .tasks
            .get(&self.tid())
            .map(|e| e.mask)
            .unwrap_or_default()
    }

    /// Replaces the mask (SIGKILL/SIGSTOP removed).
    pub fn set_sigmask(&self, m: SigSet) {
        if let Some(e) = self.kernel.tasks().tasks.get_mut(&self.tid()) {
            e.mask = m.blockable();
        }
    }

    /// Sets a temporary mask to be restored after the next handler runs
    /// (sigsuspend, ppoll, pselect6).
    pub fn set_temporary_mask(&self, m: SigSet) {
        if let Some(e) = self.kernel.tasks().tasks.get_mut(&self.tid()) {
            e.saved_mask.get_or_insert(e.mask);
            e.mask = m.blockable();
        }
    }

    /// Sends `info` as `kill(2)` does to a pid specification: >0 a
    /// process, 0 the caller's group, -1 everyone but init and the caller,
    /// < -1 a process group.
    pub fn kill(&self, pid: i32, sig: Signal) -> SysResult<()> {
        let uid = self.task.local().creds.ruid;
        let info = SigInfo::user(sig, super::super::signal::queue::SI_USER, self.pid(), uid);
        let mut ts = self.kernel.tasks();
        let targets: Vec<i32> = if pid > 0 {
            vec![pid]
        } else if pid == 0 {
            let pg = ts.procs.get(&self.pid()).map(|p| p.pgid).unwrap_or(0);
            ts.pgrp_members(pg)
        } else if pid == -1 {
            ts.procs
                .iter()
                .filter(|(p, pr)| **p != 1 && **p != self.pid() && pr.zombie.is_none())
                .map(|(p, _)| *p)
                .collect()
        } else {
            ts.pgrp_members(pid.checked_neg().ok_or(Errno::ESRCH)?)
        };
        let targets: Vec<i32> = targets
            .into_iter()
            .filter(|p| ts.procs.contains_key(p))
            .collect();
        if targets.is_empty() {
            return Err(Errno::ESRCH);
        }
        if sig == 0 {
            return Ok(());
        }
        for t in targets {
            ts.send_to_process(t, info);
        }
        Ok(())
    }
}

/// Locks a task's local state through its Arc (helper for other files).
pub fn local_of(t: &super::Task) -> std::sync::MutexGuard<'_, super::TaskLocal> {
    lock(&t.local)
}
