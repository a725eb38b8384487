//! System calls injected into a stub: the sentry's own `mmap`, `munmap`
//! and `mprotect` in the stub's address space.
//!
//! The stub executes them itself (`PTRACE_CONT`, not `PTRACE_SYSEMU`): they
//! are not application system calls. The tracer points `rip` at the
//! `syscall; int3` sequence of the stub page, sets `rax` and the arguments,
//! resumes, and waits for the `SIGTRAP` of the `int3`.
//!
//! [`Injection`] is the guard (rr's `AutoRemoteSyscalls`): while it lives,
//! the stub's registers are the sentry's; when it drops, the context's
//! register cache is invalidated, so the next `switch` writes the
//! application's registers back before resuming it. Restoring lazily saves
//! a `PTRACE_GETREGS`/`PTRACE_SETREGS` pair per injection: `switch` loads
//! the registers anyway whenever they are not known to be in the stub.

use nix::sys::ptrace;
use nix::unistd::Pid;
use sentry::platform::PlatformError;

use crate::context::{PtraceContext, Stop};

/// A sequence of injected system calls on a stopped stub.
pub(crate) struct Injection<'a> {
    ctx: &'a mut PtraceContext,
}

impl<'a> Injection<'a> {
    /// Takes over the stopped stub of `ctx`.
    pub(crate) fn new(ctx: &'a mut PtraceContext) -> Injection<'a> {
        // From here on the stub's registers are no longer the application's.
        ctx.cached = None;
        Injection { ctx }
    }

    /// Runs system call `nr` with `args` in the stub; returns its result,
    /// or `PlatformError::Injected` with the errno it failed with.
    pub(crate) fn syscall(
        &mut self,
        name: &'static str,
        nr: i64,
        args: [u64; 6],
    ) -> Result<u64, PlatformError> {
        let entry = self.ctx.syscall_addr;
        // `syscall` is 2 bytes, `int3` 1: the stop is right after both.
        self.call(name, entry, entry + 3, nr, args, 0)
    }

    /// Runs the stub page's sequence at `entry`, which issues system call
    /// `nr` with `args` (and `r12` as an extra input) and stops with an
    /// `int3` ending at `stop_rip`; returns `rax` at that stop.
    pub(crate) fn call(
        &mut self,
        name: &'static str,
        entry: u64,
        stop_rip: u64,
        nr: i64,
        args: [u64; 6],
        r12: u64,
    ) -> Result<u64, PlatformError> {
        let tid = self.ctx.tid;
        let pid = Pid::from_raw(tid);
        let mut regs = self.ctx.init;
        regs.r12 = r12;
        regs.rax = nr as u64;
        regs.orig_rax = u64::MAX;
        regs.rdi = args[0];
        regs.rsi = args[1];
        regs.rdx = args[2];
        regs.r10 = args[3];
        regs.r8 = args[4];
        regs.r9 = args[5];
        regs.rip = entry;
        ptrace::setregs(pid, regs).map_err(|e| self.ctx.ptrace_error("PTRACE_SETREGS", e))?;
        ptrace::cont(pid, None).map_err(|e| self.ctx.ptrace_error("PTRACE_CONT", e))?;
        loop {
            match self.ctx.wait_stop()? {
                Stop::Signal(libc::SIGTRAP) => break,
                Stop::Signal(sig) if crate::context::is_fault_signal(sig) => {
                    // The stub page itself faulted: the stub is unusable.
                    tracing::error!(tid, sig, name, "injected system call faulted");
                    return Err(PlatformError::Injected {
                        syscall: name,
                        tid,
                        errno: libc::EFAULT,
                    });
                }
                Stop::Signal(_) | Stop::SyscallEntry | Stop::Vsyscall | Stop::Trap => {
                    // A kick (or another host signal) arrived meanwhile:
                    // remember it for the next switch, suppress it, go on.
                    self.ctx.pending_interrupt = true;
                    ptrace::cont(pid, None).map_err(|e| self.ctx.ptrace_error("PTRACE_CONT", e))?;
                }
            }
        }
        let after = ptrace::getregs(pid).map_err(|e| self.ctx.ptrace_error("PTRACE_GETREGS", e))?;
        if after.rip != stop_rip {
            tracing::error!(
                tid,
                rip = after.rip,
                name,
                "injected system call stopped elsewhere"
            );
            return Err(PlatformError::Injected {
                syscall: name,
                tid,
                errno: libc::EFAULT,
            });
        }
        let ret = after.rax as i64;
        if (-4095..0).contains(&ret) {
            return Err(PlatformError::Injected {
                syscall: name,
                tid,
                errno: -ret as i32,
            });
        }
        Ok(after.rax)
    }
}

impl Drop for Injection<'_> {
    fn drop(&mut self) {
        // The application's registers must be written back before the stub
        // runs application code again.
        self.ctx.cached = None;
    }
}
