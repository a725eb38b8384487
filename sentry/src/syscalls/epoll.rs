//! eventfd and epoll (Linux `fs/eventfd.c`, `fs/eventpoll.c`). The
//! objects live in the VFS; blocking in `epoll_wait` is done here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::signal::SigSet;
use crate::kernel::TaskRunner;
use crate::vfs::{Epoll, FileDescription, FileKind, EPOLL_EVENT_SIZE};
use crate::waiter::WaitOutcome;

use super::arg_i32;

const EFD_SEMAPHORE: u64 = 1;

fn install(t: &TaskRunner, f: Arc<FileDescription>, cloexec: bool) -> SysResult<u64> {
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    Ok(fds.install(f, cloexec, 0)? as u64)
}

/// `eventfd2(initval, flags)`.
pub fn eventfd2(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let flags = a[1];
    let allowed = libc::O_CLOEXEC as u64 | libc::O_NONBLOCK as u64 | EFD_SEMAPHORE;
    if flags & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let f = FileDescription::new_eventfd(a[0] as u32, flags as u32);
    install(t, f, flags & libc::O_CLOEXEC as u64 != 0)
}

/// `eventfd(initval)`.
pub fn eventfd(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    eventfd2(t, [a[0], 0, 0, 0, 0, 0])
}

/// `epoll_create1(flags)`.
pub fn epoll_create1(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[0] & !(libc::O_CLOEXEC as u64) != 0 {
        return Err(Errno::EINVAL);
    }
    install(t, FileDescription::new_epoll(), a[0] != 0)
}

/// `epoll_create(size)`: size must be positive and is otherwise ignored.
pub fn epoll_create(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if arg_i32(a[0]) <= 0 {
        return Err(Errno::EINVAL);
    }
    install(t, FileDescription::new_epoll(), false)
}

fn epoll_of(f: &FileDescription) -> SysResult<&Arc<Epoll>> {
    match f.kind() {
        FileKind::Epoll(e) => Ok(e),
        _ => Err(Errno::EINVAL.because("not an epoll fd")),
    }
}

/// `epoll_ctl(epfd, op, fd, event)`.
pub fn epoll_ctl(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let (epfd, op, fd) = (arg_i32(a[0]), arg_i32(a[1]), arg_i32(a[2]));
    let epf = fds.get(epfd)?;
    let target = fds.get(fd)?;
    if epfd == fd {
        return Err(Errno::EINVAL.because("epoll fd added to itself"));
    }
    let ep = epoll_of(&epf)?;
    let (events, data) = if op == libc::EPOLL_CTL_DEL {
        (0, 0)
    } else {
        let b = t.read_array::<EPOLL_EVENT_SIZE>(a[3])?;
        let events = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut d = [0u8; 8];
        d.copy_from_slice(&b[4..12]);
        (events, u64::from_le_bytes(d))
    };
    ep.ctl(op, fd, &target, events, data)?;
    Ok(0)
}

fn do_wait(
    t: &mut TaskRunner,
    epfd: u64,
    out: u64,
    max: u64,
    deadline: Option<Instant>,
) -> SysResult<u64> {
    let max = arg_i32(max);
    if max <= 0 || max as usize > i32::MAX as usize / EPOLL_EVENT_SIZE {
        return Err(Errno::EINVAL);
    }
    let f = t.task.tg.fds().ok_or(Errno::EBADF)?.get(arg_i32(epfd))?;
    let ep = epoll_of(&f)?.clone();
    let copy = |t: &mut TaskRunner, evs: Vec<crate::vfs::EpollEvent>| -> SysResult<u64> {
        let bytes: Vec<u8> = evs.iter().flat_map(|e| e.to_bytes()).collect();
        t.copy_out(out, &bytes)?;
        Ok(evs.len() as u64)
    };
    let evs = ep.collect(max as usize);
    if !evs.is_empty() || deadline.is_some_and(|d| d <= Instant::now()) {
        return copy(t, evs);
    }
    let waiter = t.task.waiter.clone();
    let _reg = ep.register(&waiter);
    loop {
        let evs = ep.collect(max as usize);
        if !evs.is_empty() {
            return copy(t, evs);
        }
        // Linux: epoll_wait is never restarted after a signal.
        if t.interrupted() {
            return Err(Errno::EINTR);
        }
        if waiter.wait(deadline) == WaitOutcome::TimedOut {
            return copy(t, ep.collect(max as usize));
        }
    }
}

fn ms_deadline(ms: i32) -> Option<Instant> {
    (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64))
}

/// `epoll_wait(epfd, events, maxevents, timeout_ms)`.
pub fn epoll_wait(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    do_wait(t, a[0], a[1], a[2], ms_deadline(arg_i32(a[3])))
}

fn temp_mask(t: &mut TaskRunner, addr: u64, size: u64) -> SysResult<()> {
    if addr == 0 {
        return Ok(());
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let m = SigSet(t.read_u64(addr)?);
    t.set_temporary_mask(m);
    Ok(())
}

/// `epoll_pwait(epfd, events, maxevents, timeout_ms, sigmask, sigsetsize)`.
pub fn epoll_pwait(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    temp_mask(t, a[4], a[5])?;
    do_wait(t, a[0], a[1], a[2], ms_deadline(arg_i32(a[3])))
}

/// `epoll_pwait2(epfd, events, maxevents, timeout_ts, sigmask, sigsetsize)`.
pub fn epoll_pwait2(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let deadline = if a[3] != 0 {
        let ns = crate::kernel::time::timespec_from(&t.read_array::<16>(a[3])?)?;
        Some(Instant::now() + Duration::from_nanos(ns as u64))
    } else {
        None
    };
    temp_mask(t, a[4], a[5])?;
    do_wait(t, a[0], a[1], a[2], deadline)
}
