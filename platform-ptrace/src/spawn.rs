//! Taking over a new stub: from its first stop to a register template.

use std::os::fd::RawFd;

use nix::sys::ptrace;
use nix::unistd::Pid;
use sentry::platform::{PlatformError, Registers};

use crate::stub::StubPage;

/// The ptrace options of every stub: kill it when its tracer exits, mark
/// syscall-stops (`SIGTRAP | 0x80`) so they cannot be confused with a
/// real `SIGTRAP`, and stop at `SECCOMP_RET_TRACE` (vsyscall-page calls,
/// see `stub::VSYSCALL_FILTER`).
fn options() -> ptrace::Options {
    ptrace::Options::PTRACE_O_EXITKILL
        | ptrace::Options::PTRACE_O_TRACESYSGOOD
        | ptrace::Options::PTRACE_O_TRACESECCOMP
}

/// Forks a stub from the calling thread (see [`crate::stub`]) and takes
/// it over; the calling thread is its tracer. Returns its pid and register
/// template.
pub(crate) fn fork_and_adopt(
    page: &StubPage,
    memfd: RawFd,
) -> Result<(i32, libc::user_regs_struct), PlatformError> {
    let tid = page.fork_stub(memfd).map_err(PlatformError::CreateStub)?;
    let adopted = wait_first_stop(tid).and_then(|()| {
        ptrace::setoptions(Pid::from_raw(tid), options())
            .map_err(|e| ptrace_error("PTRACE_SETOPTIONS", tid, e))?;
        template(tid)
    });
    finish(tid, adopted)
}

/// Seizes `tid`, a stub in group-stop made by the zygote; the calling
/// thread becomes its tracer. Returns its register template.
pub(crate) fn seize_and_adopt(tid: i32) -> Result<libc::user_regs_struct, PlatformError> {
    let adopted = ptrace::seize(Pid::from_raw(tid), options())
        .map_err(|e| ptrace_error("PTRACE_SEIZE", tid, e))
        .and_then(|()| wait_first_stop(tid))
        .and_then(|()| end_group_stop(tid))
        .and_then(|()| template(tid));
    finish(tid, adopted).map(|(_, init)| init)
}

/// Ends the group-stop a zygote clone put itself in.
///
/// The stub's `SIGSTOP` arrived while it was untraced, so its process is
/// *stopped* (`SIGNAL_STOP_STOPPED`), a state that outlives the ptrace
/// trap: when one of its threads is later detached (`thread.rs` parks
/// threads that way), Linux puts it back into group-stop and its traced
/// siblings are trapped too (`kernel/ptrace.c: __ptrace_unlink()`). A
/// `SIGCONT` clears the state; the tracer then absorbs the `SIGCONT`
/// itself (its signal-delivery-stop, suppressed) so the application never
/// sees a spurious stop. A seized tracee also reports the end of the
/// group-stop (a `PTRACE_EVENT_STOP` notification trap) before that.
fn end_group_stop(tid: i32) -> Result<(), PlatformError> {
    /// Stops to expect at most: the notification trap, the `SIGCONT`.
    const MAX_STOPS: usize = 4;
    let pid = Pid::from_raw(tid);
    nix::sys::signal::kill(pid, nix::sys::signal::SIGCONT)
        .map_err(|e| ptrace_error("kill(SIGCONT)", tid, e))?;
    for _ in 0..MAX_STOPS {
        ptrace::cont(pid, None).map_err(|e| ptrace_error("PTRACE_CONT", tid, e))?;
        let status = crate::sys::wait_raw(tid).map_err(PlatformError::CreateStub)?;
        if !libc::WIFSTOPPED(status) {
            return Err(PlatformError::StubDied { tid, status });
        }
        let event_stop = status >> 16 == libc::PTRACE_EVENT_STOP;
        if !event_stop && libc::WSTOPSIG(status) == libc::SIGCONT {
            return Ok(());
        }
    }
    Err(PlatformError::CreateStub(std::io::Error::other(
        "stub did not report its SIGCONT",
    )))
}

/// Seizes application thread `tid` of a stub process (idle in the parking
/// loop, see `thread.rs`) and stops it; the calling thread becomes its
/// tracer. On failure the thread stays parked.
pub(crate) fn seize_thread(tid: i32) -> Result<(), PlatformError> {
    let pid = Pid::from_raw(tid);
    ptrace::seize(pid, options()).map_err(|e| ptrace_error("PTRACE_SEIZE", tid, e))?;
    ptrace::interrupt(pid).map_err(|e| ptrace_error("PTRACE_INTERRUPT", tid, e))?;
    let status = crate::sys::wait_raw(tid).map_err(PlatformError::CreateStub)?;
    if !libc::WIFSTOPPED(status) || status >> 16 != libc::PTRACE_EVENT_STOP {
        return Err(PlatformError::StubDied { tid, status });
    }
    Ok(())
}

/// On failure, kills the half-made stub (best effort) so none is left.
fn finish(
    tid: i32,
    adopted: Result<libc::user_regs_struct, PlatformError>,
) -> Result<(i32, libc::user_regs_struct), PlatformError> {
    match adopted {
        Ok(init) => Ok((tid, init)),
        Err(err) => {
            kill_and_reap(tid);
            Err(err)
        }
    }
}

/// Kills stub `tid` and reaps it (best effort: it is being discarded).
pub(crate) fn kill_and_reap(tid: i32) {
    let _ = nix::sys::signal::kill(Pid::from_raw(tid), nix::sys::signal::SIGKILL);
    let _ = crate::sys::wait_raw(tid);
}

/// Waits for the stub's `SIGSTOP` (a signal-delivery-stop after
/// `PTRACE_TRACEME`, a `PTRACE_EVENT_STOP` after `PTRACE_SEIZE` of a
/// group-stopped stub: both carry `SIGSTOP`).
fn wait_first_stop(tid: i32) -> Result<(), PlatformError> {
    let status = crate::sys::wait_raw(tid).map_err(PlatformError::CreateStub)?;
    if !libc::WIFSTOPPED(status) || libc::WSTOPSIG(status) != libc::SIGSTOP {
        return Err(PlatformError::StubDied { tid, status });
    }
    Ok(())
}

/// The stub's register template: what the host decides (segment
/// selectors, flags) and nothing else. The rest of its registers hold
/// sentry addresses (stack, TLS) no guest should see.
fn template(tid: i32) -> Result<libc::user_regs_struct, PlatformError> {
    let stopped =
        ptrace::getregs(Pid::from_raw(tid)).map_err(|e| ptrace_error("PTRACE_GETREGS", tid, e))?;
    let mut init = crate::regs::to_host(&Registers::default());
    init.cs = stopped.cs;
    init.ss = stopped.ss;
    init.ds = stopped.ds;
    init.es = stopped.es;
    init.fs = stopped.fs;
    init.gs = stopped.gs;
    init.eflags = stopped.eflags;
    init.rip = stopped.rip;
    Ok(init)
}

fn ptrace_error(op: &'static str, tid: i32, errno: nix::errno::Errno) -> PlatformError {
    PlatformError::Ptrace {
        op,
        tid,
        source: std::io::Error::from(errno),
    }
}
