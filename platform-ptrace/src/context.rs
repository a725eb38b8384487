//! [`PtraceContext`]: one application thread in one stub thread, driven by
//! `PTRACE_SYSEMU` from the host thread that created (or attached) it.
//! Several contexts may share one stub process (application threads, see
//! `thread.rs`); what they share is a [`StubProcess`].
//!
//! Invariants:
//! - only the creating (tracer) thread calls into the context; the type is
//!   `!Send` to enforce it;
//! - outside `switch` the stub is in a ptrace-stop (syscall-entry-stop or
//!   signal-delivery-stop), so registers and memory operations are legal;
//! - `cached` is `Some(r)` only if the stub's registers are exactly `r`.

use std::marker::PhantomData;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::unistd::Pid;
use sentry::platform::{
    Context, Event, Fault, FpState, Interrupter, PlatformError, Prot, Registers, ThreadSeed,
};

use crate::inject::Injection;
use crate::interrupt::StubInterrupter;
use crate::process::StubProcess;
use crate::regs;
use crate::stub::STUB_BASE;

/// A ptrace-stop of the stub, decoded from the wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Syscall-entry-stop (`SIGTRAP | 0x80` with `PTRACE_O_TRACESYSGOOD`).
    SyscallEntry,
    /// The seccomp stop of a vsyscall-page call.
    Vsyscall,
    /// Signal-delivery-stop (or, for `SIGSTOP` & co. of a stub traced
    /// since its fork, possibly a group-stop) with this signal.
    Signal(i32),
    /// `PTRACE_EVENT_STOP`: group-stop related trap of a seized stub.
    Trap,
}

/// `si_code` of a fault the kernel raised itself (Linux `SI_KERNEL`).
const SI_KERNEL: i32 = 0x80;

/// Host signals that report a synchronous fault of application code.
pub(crate) fn is_fault_signal(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP
    )
}

/// A context of the ptrace platform.
pub struct PtraceContext {
    /// The stub thread this context drives. Owned: on drop it is parked
    /// (other threads remain) or its whole process is killed and reaped.
    pub(crate) tid: i32,
    /// The stub process this thread belongs to.
    pub(crate) process: Arc<StubProcess>,
    /// Copy of `process.init`: the register template (segment selectors)
    /// and the base of injected system calls.
    pub(crate) init: libc::user_regs_struct,
    /// The registers the stub holds, when known (see module invariants).
    pub(crate) cached: Option<libc::user_regs_struct>,
    /// A kick arrived while the sentry was using the stub (during an
    /// injected system call) and was suppressed there; the next `switch`
    /// returns `Interrupted` without running.
    pub(crate) pending_interrupt: bool,
    /// Address of `syscall; int3` in the stub.
    pub(crate) syscall_addr: u64,
    interrupter: Arc<StubInterrupter>,
    /// Set once the stub thread is known dead (reaped).
    dead: bool,
    /// `!Send`/`!Sync`: ptrace requests are valid only from the tracer.
    _tracer_thread: PhantomData<*const ()>,
}

impl PtraceContext {
    /// The context of stub thread `tid` of `process`, which the calling
    /// thread traces and which is in a ptrace-stop.
    pub(crate) fn new(tid: i32, process: Arc<StubProcess>) -> PtraceContext {
        PtraceContext {
            tid,
            init: process.init,
            syscall_addr: process.page.syscall_addr(),
            interrupter: Arc::new(StubInterrupter::new(process.tgid, tid)),
            process,
            cached: None,
            pending_interrupt: false,
            dead: false,
            _tracer_thread: PhantomData,
        }
    }

    /// The stub process's host pid (for diagnostics and tests:
    /// `/proc/<pid>`).
    pub fn stub_pid(&self) -> i32 {
        self.process.tgid
    }

    /// The host tid of this context's stub thread.
    pub fn stub_tid(&self) -> i32 {
        self.tid
    }

    /// The error for a failed ptrace request `op`. `ESRCH` on a stub that
    /// should be in a ptrace-stop means it was killed meanwhile: collect
    /// its exit status and report `StubDied`.
    pub(crate) fn ptrace_error(&mut self, op: &'static str, errno: Errno) -> PlatformError {
        if errno == Errno::ESRCH && !self.dead {
            if let Ok(status) = crate::sys::wait_raw(self.tid) {
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    self.mark_dead();
                    return PlatformError::StubDied {
                        tid: self.tid,
                        status,
                    };
                }
            }
        }
        PlatformError::Ptrace {
            op,
            tid: self.tid,
            source: std::io::Error::from(errno),
        }
    }

    fn mark_dead(&mut self) {
        self.dead = true;
        self.interrupter.disarm();
    }

    /// Waits for the next ptrace-stop; a stub that exited or was killed
    /// becomes `StubDied`.
    pub(crate) fn wait_stop(&mut self) -> Result<Stop, PlatformError> {
        loop {
            let status =
                crate::sys::wait_raw(self.tid).map_err(|source| PlatformError::Ptrace {
                    op: "waitpid",
                    tid: self.tid,
                    source,
                })?;
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                self.mark_dead();
                return Err(PlatformError::StubDied {
                    tid: self.tid,
                    status,
                });
            }
            if libc::WIFSTOPPED(status) {
                let sig = libc::WSTOPSIG(status);
                if sig == libc::SIGTRAP | 0x80 {
                    return Ok(Stop::SyscallEntry);
                }
                if sig == libc::SIGTRAP && status >> 16 == libc::PTRACE_EVENT_SECCOMP {
                    // A call into the vsyscall page (see stub::VSYSCALL_FILTER).
                    return Ok(Stop::Vsyscall);
                }
                if status >> 16 == libc::PTRACE_EVENT_STOP {
                    // A group-stop or its end, reported to a seizing tracer
                    // (an outside SIGSTOP/SIGCONT): no siginfo, nothing of
                    // the application's.
                    return Ok(Stop::Trap);
                }
                return Ok(Stop::Signal(sig));
            }
            // WIFCONTINUED: not a stop; keep waiting.
        }
    }

    fn fault(&mut self, signo: i32) -> Result<Fault, PlatformError> {
        let info = ptrace::getsiginfo(Pid::from_raw(self.tid))
            .map_err(|e| self.ptrace_error("PTRACE_GETSIGINFO", e))?;
        Ok(Fault {
            signo,
            code: info.si_code,
            addr: crate::sys::siginfo_addr(&info),
            // ptrace's siginfo carries no page-fault error code.
            write: None,
        })
    }

    /// Whether the syscall-stop with registers `host` came through the
    /// 32-bit ABI. The `syscall` instruction itself loads `rcx` with the
    /// return address and `r11` with the flags, so when both match (and
    /// the code segment is the 64-bit one) it was `syscall`: no extra
    /// request on the hot path. Otherwise (an `int 0x80`, or a CPU whose
    /// `syscall` leaves `rcx`/`r11` alone, as with FRED) the kernel is
    /// asked. A program that forges `rcx`/`r11` before `int 0x80` only
    /// gets its call read as a 64-bit one: its own loss, not the host's.
    fn is_compat_syscall(&mut self, host: &libc::user_regs_struct) -> Result<bool, PlatformError> {
        if host.rcx == host.rip && host.r11 == host.eflags && host.cs == self.init.cs {
            return Ok(false);
        }
        match crate::sys::is_compat_syscall(self.tid) {
            Ok(compat) => Ok(compat),
            Err(source) => Err(PlatformError::Ptrace {
                op: "PTRACE_GET_SYSCALL_INFO",
                tid: self.tid,
                source,
            }),
        }
    }

    /// Refuses ranges that would touch the stub's own page.
    fn check_range(&self, syscall: &'static str, addr: u64, len: u64) -> Result<(), PlatformError> {
        match addr.checked_add(len) {
            Some(end) if end <= STUB_BASE => Ok(()),
            _ => Err(PlatformError::Injected {
                syscall,
                tid: self.tid,
                errno: libc::EINVAL,
            }),
        }
    }
}

fn prot_bits(prot: Prot) -> u64 {
    let mut bits = 0;
    if prot.read {
        bits |= libc::PROT_READ;
    }
    if prot.write {
        bits |= libc::PROT_WRITE;
    }
    if prot.exec {
        bits |= libc::PROT_EXEC;
    }
    bits as u64
}

impl Context for PtraceContext {
    fn switch(&mut self, regs: &mut Registers) -> Result<Event, PlatformError> {
        if self.dead {
            return Err(PlatformError::StubDied {
                tid: self.tid,
                status: 0,
            });
        }
        if std::mem::take(&mut self.pending_interrupt) {
            return Ok(Event::Interrupted);
        }
        let pid = Pid::from_raw(self.tid);
        let want = regs::for_resume(regs, &self.init);
        if !self.cached.as_ref().is_some_and(|c| regs::same(c, &want)) {
            self.cached = None;
            ptrace::setregs(pid, want).map_err(|e| match e {
                Errno::ESRCH => self.ptrace_error("PTRACE_SETREGS", e),
                _ => PlatformError::BadRegisters(std::io::Error::from(e)),
            })?;
        }
        self.cached = None;
        ptrace::sysemu(pid, None).map_err(|e| self.ptrace_error("PTRACE_SYSEMU", e))?;
        let stop = self.wait_stop()?;
        let event = match stop {
            Stop::SyscallEntry | Stop::Vsyscall => Event::Syscall,
            Stop::Signal(sig) if is_fault_signal(sig) => Event::Fault(self.fault(sig)?),
            // The kick, or any other host signal: suppressed (the next
            // resume passes no signal) and not the application's business.
            Stop::Signal(_) | Stop::Trap => Event::Interrupted,
        };
        let host = ptrace::getregs(pid).map_err(|e| self.ptrace_error("PTRACE_GETREGS", e))?;
        regs::from_host(&host, regs);
        self.cached = Some(host);
        if stop == Stop::SyscallEntry && self.is_compat_syscall(&host)? {
            // Linux without IA-32 emulation: `int 0x80` is a general
            // protection fault (SIGSEGV, SI_KERNEL) at the instruction.
            // Both `int 0x80` and `syscall` are 2 bytes long. The pending
            // system call is skipped at the next resume (PTRACE_SYSEMU).
            regs.rip = host.rip.wrapping_sub(2);
            return Ok(Event::Fault(Fault {
                signo: libc::SIGSEGV,
                code: SI_KERNEL,
                addr: 0,
                write: None,
            }));
        }
        Ok(event)
    }

    fn get_fp(&mut self, fp: &mut FpState) -> Result<(), PlatformError> {
        fp.bytes.resize(self.process.fp_size, 0);
        let len = crate::sys::get_xstate(self.tid, &mut fp.bytes).map_err(|source| {
            PlatformError::Ptrace {
                op: "PTRACE_GETREGSET",
                tid: self.tid,
                source,
            }
        })?;
        fp.bytes.truncate(len);
        Ok(())
    }

    fn set_fp(&mut self, fp: &FpState) -> Result<(), PlatformError> {
        let size = self.process.fp_size;
        if fp.bytes.len() == size {
            return crate::sys::set_xstate(self.tid, &fp.bytes)
                .map_err(PlatformError::BadRegisters);
        }
        // An image from a host with other CPU features (a restored or
        // migrated checkpoint): convert it to this host's layout.
        if fp.bytes.len() < crate::fpu::MIN_IMAGE || size < crate::fpu::MIN_IMAGE {
            return Err(PlatformError::BadRegisters(
                std::io::Error::from_raw_os_error(libc::EINVAL),
            ));
        }
        let mut host = vec![0u8; size];
        crate::sys::get_xstate(self.tid, &mut host).map_err(|source| PlatformError::Ptrace {
            op: "PTRACE_GETREGSET",
            tid: self.tid,
            source,
        })?;
        let image = crate::fpu::adapt_image(&fp.bytes, &host);
        crate::sys::set_xstate(self.tid, &image).map_err(PlatformError::BadRegisters)
    }

    fn map(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        file_offset: u64,
    ) -> Result<(), PlatformError> {
        self.check_range("mmap", addr, len)?;
        let flags = (libc::MAP_SHARED | libc::MAP_FIXED) as u64;
        let args = [
            addr,
            len,
            prot_bits(prot),
            flags,
            self.process.memfd as u64,
            file_offset,
        ];
        let got = Injection::new(self).syscall("mmap", libc::SYS_mmap, args)?;
        if got != addr {
            // MAP_FIXED never moves a mapping; this would be a host bug.
            return Err(PlatformError::Injected {
                syscall: "mmap",
                tid: self.tid,
                errno: libc::EINVAL,
            });
        }
        Ok(())
    }

    fn unmap(&mut self, addr: u64, len: u64) -> Result<(), PlatformError> {
        self.check_range("munmap", addr, len)?;
        Injection::new(self).syscall("munmap", libc::SYS_munmap, [addr, len, 0, 0, 0, 0])?;
        Ok(())
    }

    fn protect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), PlatformError> {
        self.check_range("mprotect", addr, len)?;
        let args = [addr, len, prot_bits(prot), 0, 0, 0];
        Injection::new(self).syscall("mprotect", libc::SYS_mprotect, args)?;
        Ok(())
    }

    fn interrupter(&self) -> Arc<dyn Interrupter> {
        self.interrupter.clone()
    }

    fn new_thread(&mut self) -> Result<Box<dyn ThreadSeed>, PlatformError> {
        Ok(Box::new(crate::thread::clone_thread(self)?))
    }
}

impl Drop for PtraceContext {
    fn drop(&mut self) {
        self.interrupter.disarm();
        let last = self.process.remove_thread();
        if self.dead {
            if last && self.tid != self.process.tgid {
                reap(self.process.tgid);
            }
            return;
        }
        if !last {
            self.park();
            return;
        }
        // SIGKILL ends the whole stub from any stop; then reap this thread
        // and, if another one led the process, the leader (its parent is a
        // thread of this process, so this thread may wait for it).
        let tgid = self.process.tgid;
        if let Err(err) = nix::sys::signal::kill(Pid::from_raw(tgid), nix::sys::signal::SIGKILL) {
            tracing::warn!(tgid, %err, "killing stub failed");
            return;
        }
        reap(self.tid);
        if self.tid != tgid {
            reap(tgid);
        }
    }
}

impl PtraceContext {
    /// Leaves the stub thread to idle, untraced, in the stub page's parking
    /// loop: other application threads still use the process, and the
    /// tracer's exit must not kill it (`PTRACE_O_EXITKILL` applies only to
    /// tracees).
    fn park(&mut self) {
        let pid = Pid::from_raw(self.tid);
        let mut regs = self.init;
        regs.rip = self.process.page.park_addr();
        regs.orig_rax = u64::MAX;
        let parked = ptrace::setregs(pid, regs).and_then(|()| ptrace::detach(pid, None));
        match parked {
            Ok(()) => {}
            // Killed meanwhile (the last thread went away): reap it.
            Err(Errno::ESRCH) => reap(self.tid),
            Err(err) => tracing::warn!(tid = self.tid, %err, "parking stub thread failed"),
        }
    }
}

/// Waits for `tid` to end, tolerating that it was already reaped.
fn reap(tid: i32) {
    loop {
        match crate::sys::wait_raw(tid) {
            Ok(status) if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) => break,
            Ok(_) => continue,
            Err(err) => {
                tracing::debug!(tid, %err, "reaping stub thread");
                break;
            }
        }
    }
}
