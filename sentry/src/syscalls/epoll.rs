//! epoll and eventfd syscalls over [`crate::vfs::Epoll`] and
//! [`crate::vfs::eventfd`]. Linux: fs/eventpoll.c, fs/eventfd.c.
//!
//! `epoll_wait` collects ready items; when none is ready and the timeout
//! allows, it registers the task's waiter on every item's file, collects
//! again, and sleeps until woken, the deadline, or an interruption:
//! - a signal (caught, or a stop, or a fatal one) ends it with `EINTR`,
//!   as Linux `ep_poll` does: never restarted, not with `SA_RESTART` and
//!   not after a stop and `SIGCONT` (signal(7), "Interruption of system
//!   calls and library functions by stop signals");
//! - a checkpoint pause alone, which the guest must not see, gives
//!   `ERESTARTNOHAND`: a transparent restart. A wait with a timeout
//!   restarts through a [`RestartBlock::Epoll`] holding its absolute
//!   sandbox-monotonic deadline, so it waits only the time left, also
//!   after a restore. (A signal arriving between the pause and the
//!   restart still gives `EINTR` after a handler.)

use std::time::Instant;

use crate::errno::{Errno, SysResult};
use crate::kernel::signal::SigSet;
use crate::kernel::task::RestartBlock;
use crate::kernel::time::{timespec_from, ClockKind, Nanos};
use crate::kernel::TaskRunner;
use crate::vfs::eventfd::EFD_SEMAPHORE;
use crate::vfs::{FileDescription, EPOLL_EVENT_SIZE};
use crate::waiter::WaitOutcome;

use super::arg_i32;

/// Most events one `epoll_wait` returns (Linux `EP_MAX_EVENTS`).
const EP_MAX_EVENTS: i32 = i32::MAX / EPOLL_EVENT_SIZE as i32;

/// `epoll_create(size)`: `size` must be positive and is otherwise ignored.
pub fn epoll_create(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if arg_i32(a[0]) <= 0 {
        return Err(Errno::EINVAL.because("epoll_create size must be positive"));
    }
    create(t, false)
}

/// `epoll_create1(flags)`: only `EPOLL_CLOEXEC`.
pub fn epoll_create1(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let flags = arg_i32(a[0]);
    if flags & !libc::EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL.because("bad epoll_create1 flags"));
    }
    create(t, flags & libc::EPOLL_CLOEXEC != 0)
}

fn create(t: &mut TaskRunner, cloexec: bool) -> SysResult<u64> {
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    Ok(fds.install(FileDescription::new_epoll(), cloexec, 0)? as u64)
}

/// `epoll_ctl(epfd, op, fd, event)`.
pub fn epoll_ctl(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let epf = fds.get(arg_i32(a[0]))?;
    let op = arg_i32(a[1]);
    let fd = arg_i32(a[2]);
    // Linux copies the event in before looking at the fds (EFAULT first),
    // except for EPOLL_CTL_DEL, which ignores it.
    let (events, data) = if op == libc::EPOLL_CTL_DEL {
        (0, 0)
    } else {
        let b = t.read_array::<EPOLL_EVENT_SIZE>(a[3])?;
        let mut e = [0u8; 4];
        e.copy_from_slice(&b[..4]);
        let mut d = [0u8; 8];
        d.copy_from_slice(&b[4..]);
        (u32::from_le_bytes(e), u64::from_le_bytes(d))
    };
    let target = fds.get(fd)?;
    let ep = epf
        .epoll()
        .ok_or(Errno::EINVAL.because("epoll_ctl on a non-epoll fd"))?;
    if fd == arg_i32(a[0]) {
        return Err(Errno::EINVAL.because("an epoll fd cannot watch itself"));
    }
    ep.ctl(op, fd, &target, events, data)?;
    Ok(0)
}

/// Waits for events on `epfd` until `deadline` (`None`: forever) and
/// copies them to `events`.
fn do_wait(
    t: &mut TaskRunner,
    epfd: u64,
    events: u64,
    maxevents: u64,
    deadline: Option<Instant>,
) -> SysResult<u64> {
    let max = arg_i32(maxevents);
    if max <= 0 || max > EP_MAX_EVENTS {
        return Err(Errno::EINVAL.because("bad maxevents"));
    }
    let f = t.task.tg.fds().ok_or(Errno::EBADF)?.get(arg_i32(epfd))?;
    let ep = f
        .epoll()
        .ok_or(Errno::EINVAL.because("epoll_wait on a non-epoll fd"))?
        .clone();
    let max = max as usize;
    let mut got = ep.collect(max);
    if got.is_empty() && deadline.is_none_or(|d| d > Instant::now()) {
        let waiter = t.task.waiter.clone();
        let _reg = ep.register(&waiter);
        loop {
            got = ep.collect(max);
            if !got.is_empty() {
                break;
            }
            if t.signal_pending() {
                // Linux `ep_poll`: `-EINTR`, whatever the signal does
                // (a handler, a stop then SIGCONT).
                return Err(Errno::EINTR);
            }
            if t.interrupted() {
                // A checkpoint pause alone: restart transparently (after
                // a handler that came meanwhile, the kernel makes it
                // EINTR).
                return Err(Errno::ERESTARTNOHAND);
            }
            if waiter.wait(deadline) == WaitOutcome::TimedOut {
                got = ep.collect(max);
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(got.len() * EPOLL_EVENT_SIZE);
    for e in &got {
        out.extend_from_slice(&e.to_bytes());
    }
    t.copy_out(events, &out)?;
    Ok(got.len() as u64)
}

/// Waits like [`do_wait`] until the sandbox-monotonic `deadline` (`None`:
/// forever) under the temporary mask `sigmask` (already installed by the
/// caller). Interrupted by a checkpoint pause with a deadline, it leaves a
/// restart block so the silent restart waits only the time left, also
/// across a restore (as `poll` does with Linux `do_restart_poll`).
fn wait_until(
    t: &mut TaskRunner,
    a: [u64; 3],
    deadline: Option<Nanos>,
    sigmask: Option<u64>,
) -> SysResult<u64> {
    let host = deadline.map(|d| t.kernel.clocks.deadline(ClockKind::Monotonic, d, 0));
    match (do_wait(t, a[0], a[1], a[2], host), deadline) {
        (Err(e), Some(deadline)) if e.code() == crate::errno::ERESTARTNOHAND => {
            t.task.local().restart = Some(RestartBlock::Epoll {
                epfd: a[0],
                events: a[1],
                maxevents: a[2],
                deadline,
                sigmask,
            });
            Err(Errno::ERESTART_RESTARTBLOCK)
        }
        (r, _) => r,
    }
}

/// `restart_syscall` of an interrupted epoll wait: installs its temporary
/// mask again and waits until the saved sandbox-monotonic `deadline`.
pub fn restart_epoll_wait(
    t: &mut TaskRunner,
    a: [u64; 3],
    deadline: Nanos,
    sigmask: Option<u64>,
) -> SysResult<u64> {
    if let Some(m) = sigmask {
        t.set_temporary_mask(SigSet(m));
    }
    wait_until(t, a, Some(deadline), sigmask)
}

/// A millisecond timeout as a sandbox-monotonic deadline: negative is
/// forever.
fn ms_deadline(t: &TaskRunner, ms: i32) -> Option<Nanos> {
    (ms >= 0).then(|| {
        t.kernel
            .clocks
            .monotonic()
            .saturating_add(i64::from(ms) * 1_000_000)
    })
}

/// `epoll_wait(epfd, events, maxevents, timeout_ms)`.
pub fn epoll_wait(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let deadline = ms_deadline(t, arg_i32(a[3]));
    wait_until(t, [a[0], a[1], a[2]], deadline, None)
}

/// Installs the temporary signal mask of epoll_pwait/epoll_pwait2 and
/// returns it (`None`: no mask given).
fn temp_mask(t: &mut TaskRunner, addr: u64, size: u64) -> SysResult<Option<u64>> {
    if addr == 0 {
        return Ok(None);
    }
    if size != 8 {
        return Err(Errno::EINVAL.because("bad sigsetsize"));
    }
    let m = t.read_u64(addr)?;
    t.set_temporary_mask(SigSet(m));
    Ok(Some(m))
}

/// `epoll_pwait(epfd, events, maxevents, timeout_ms, sigmask, sigsetsize)`.
pub fn epoll_pwait(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let deadline = ms_deadline(t, arg_i32(a[3]));
    let mask = temp_mask(t, a[4], a[5])?;
    wait_until(t, [a[0], a[1], a[2]], deadline, mask)
}

/// `epoll_pwait2(epfd, events, maxevents, timeout_ts, sigmask, sigsetsize)`.
pub fn epoll_pwait2(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let deadline = if a[3] != 0 {
        let ns = timespec_from(&t.read_array::<16>(a[3])?)?;
        Some(t.kernel.clocks.monotonic().saturating_add(ns.max(0)))
    } else {
        None
    };
    let mask = temp_mask(t, a[4], a[5])?;
    wait_until(t, [a[0], a[1], a[2]], deadline, mask)
}

/// `eventfd(initval)`.
pub fn eventfd(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    make_eventfd(t, a[0] as u32, 0)
}

/// `eventfd2(initval, flags)`: `EFD_SEMAPHORE`, `EFD_NONBLOCK`,
/// `EFD_CLOEXEC`.
pub fn eventfd2(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    make_eventfd(t, a[0] as u32, a[1] as u32)
}

fn make_eventfd(t: &mut TaskRunner, initval: u32, flags: u32) -> SysResult<u64> {
    let nb = libc::EFD_NONBLOCK as u32;
    let cloexec = libc::EFD_CLOEXEC as u32;
    if flags & !(EFD_SEMAPHORE | nb | cloexec) != 0 {
        return Err(Errno::EINVAL.because("bad eventfd2 flags"));
    }
    let f = FileDescription::new_eventfd(initval, flags & (EFD_SEMAPHORE | nb));
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    Ok(fds.install(f, flags & cloexec != 0, 0)? as u64)
}
