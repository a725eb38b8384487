//! Clock and sleep syscalls (Linux `kernel/time/`).
//!
//! Sleeps are interruptible waits on the task's waiter with a host
//! deadline. An interrupted `nanosleep`/relative `clock_nanosleep` returns
//! `ERESTART_RESTARTBLOCK` with a restart block holding the absolute
//! deadline, so `restart_syscall` sleeps only the remaining time (and the
//! remaining time is written to `rem` when a handler makes it EINTR).

use crate::errno::{Errno, SysResult};
use crate::kernel::task::RestartBlock;
use crate::kernel::time::{
    clock_kind, timespec_bytes, timespec_from, timeval_bytes, timeval_from, ClockKind, Nanos,
    CLOCK_MONOTONIC,
};
use crate::kernel::TaskRunner;

use super::arg_i32;

const TIMER_ABSTIME: u64 = 1;

fn cpu_start(t: &TaskRunner, id: i32) -> Nanos {
    if id == crate::kernel::time::CLOCK_THREAD_CPUTIME_ID {
        t.task.local().start_time
    } else {
        t.kernel
            .tasks()
            .procs
            .get(&t.pid())
            .map(|p| p.start_time)
            .unwrap_or(0)
    }
}

/// `clock_gettime(id, tp)`.
pub fn clock_gettime(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let id = arg_i32(a[0]);
    let kind = clock_kind(id)?;
    let now = t.kernel.clocks.now(kind, cpu_start(t, id));
    t.copy_out(a[1], &timespec_bytes(now))?;
    Ok(0)
}

/// `clock_getres(id, res)`: 1 ns for every clock (hrtimers).
pub fn clock_getres(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    clock_kind(arg_i32(a[0]))?;
    if a[1] != 0 {
        t.copy_out(a[1], &timespec_bytes(1))?;
    }
    Ok(0)
}

/// `gettimeofday(tv, tz)`: tz is zeroed (UTC).
pub fn gettimeofday(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 {
        let now = t.kernel.clocks.realtime();
        t.copy_out(a[0], &timeval_bytes(now))?;
    }
    if a[1] != 0 {
        t.copy_out(a[1], &[0u8; 8])?;
    }
    Ok(0)
}

/// `time(tloc)`.
pub fn time(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let secs = t.kernel.clocks.realtime().div_euclid(1_000_000_000);
    if a[0] != 0 {
        t.copy_out(a[0], &secs.to_le_bytes())?;
    }
    Ok(secs as u64)
}

/// `times(buf)`: CPU times approximated by elapsed time (see
/// `kernel::time`); returns clock ticks since boot.
pub fn times(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let now = t.kernel.clocks.monotonic();
    let ticks = |ns: Nanos| (ns / 10_000_000) as u64;
    if a[0] != 0 {
        let user = ticks(now - cpu_start(t, crate::kernel::time::CLOCK_PROCESS_CPUTIME_ID));
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&user.to_le_bytes());
        t.copy_out(a[0], &b)?;
    }
    Ok(ticks(now))
}

/// Sleeps until `deadline` on clock `id`; on interruption leaves a restart
/// block (relative sleeps) or asks for a plain restart (absolute ones).
fn sleep(
    t: &mut TaskRunner,
    id: i32,
    kind: ClockKind,
    deadline: Nanos,
    rmtp: u64,
    absolute: bool,
) -> SysResult<u64> {
    let start = cpu_start(t, id);
    let host_deadline = t.kernel.clocks.deadline(kind, deadline, start);
    match t.sleep_until(Some(host_deadline)) {
        Ok(()) => Ok(0),
        Err(_) if absolute => Err(Errno::ERESTARTNOHAND),
        Err(_) => {
            t.task.local().restart = Some(RestartBlock::Sleep {
                clock: id,
                deadline,
                rmtp,
            });
            if rmtp != 0 {
                let rem = (deadline - t.kernel.clocks.now(kind, start)).max(0);
                t.copy_out(rmtp, &timespec_bytes(rem))?;
            }
            Err(Errno::ERESTART_RESTARTBLOCK)
        }
    }
}

/// `nanosleep(req, rem)`.
pub fn nanosleep(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let req = timespec_from(&t.read_array::<16>(a[0])?)?;
    let deadline = t.kernel.clocks.monotonic().saturating_add(req);
    sleep(
        t,
        CLOCK_MONOTONIC,
        ClockKind::Monotonic,
        deadline,
        a[1],
        false,
    )
}

/// `clock_nanosleep(id, flags, req, rem)`.
pub fn clock_nanosleep(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let id = arg_i32(a[0]);
    let kind = clock_kind(id)?;
    if id == crate::kernel::time::CLOCK_THREAD_CPUTIME_ID {
        return Err(Errno::EINVAL);
    }
    let req = timespec_from(&t.read_array::<16>(a[2])?)?;
    let absolute = a[1] & TIMER_ABSTIME != 0;
    // A relative sleep measures elapsed time (Linux HRTIMER_MODE_REL is
    // not moved by clock_settime), so a relative CLOCK_REALTIME sleep
    // (glibc's nanosleep) is kept on the sandbox monotonic clock: its
    // remaining time then survives a checkpoint/restore.
    let (id, kind) = if !absolute && kind == ClockKind::Realtime {
        (CLOCK_MONOTONIC, ClockKind::Monotonic)
    } else {
        (id, kind)
    };
    let deadline = if absolute {
        req
    } else {
        t.kernel
            .clocks
            .now(kind, cpu_start(t, id))
            .saturating_add(req)
    };
    sleep(
        t,
        id,
        kind,
        deadline,
        if absolute { 0 } else { a[3] },
        absolute,
    )
}

/// `restart_syscall()`: continues an interrupted sleep with its remaining
/// time (Linux `do_restart_syscall` → `hrtimer_nanosleep_restart`).
pub fn restart_syscall(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    let rb = t.task.local().restart.take();
    match rb {
        Some(RestartBlock::Sleep {
            clock,
            deadline,
            rmtp,
        }) => {
            let kind = clock_kind(clock)?;
            sleep(t, clock, kind, deadline, rmtp, false)
        }
        Some(RestartBlock::Poll {
            fds,
            nfds,
            deadline,
        }) => super::poll::restart_poll(t, fds, nfds, deadline),
        Some(RestartBlock::Futex {
            uaddr,
            val,
            deadline,
        }) => super::futex::restart_futex_wait(t, uaddr, val, deadline),
        Some(RestartBlock::Epoll {
            epfd,
            events,
            maxevents,
            deadline,
            sigmask,
        }) => super::epoll::restart_epoll_wait(t, [epfd, events, maxevents], deadline, sigmask),
        Some(RestartBlock::SigTimedWait {
            set,
            info,
            deadline,
        }) => super::signal::restart_sigtimedwait(t, set, info, deadline),
        None => Err(Errno::EINTR),
    }
}

const ITIMER_REAL: u64 = 0;

/// A `struct itimerval` (interval, value) as 32 bytes.
fn itimerval_bytes(interval: Nanos, value: Nanos) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0..16].copy_from_slice(&timeval_bytes(interval));
    b[16..32].copy_from_slice(&timeval_bytes(value));
    b
}

/// The current ITIMER_REAL as (interval, remaining).
fn itimer_get(t: &TaskRunner) -> (Nanos, Nanos) {
    let now = t.kernel.clocks.monotonic();
    let ts = t.kernel.tasks();
    match ts.procs.get(&t.pid()).and_then(|p| p.itimer_real) {
        Some(it) => (it.interval, (it.deadline - now).max(1)),
        None => (0, 0),
    }
}

/// Arms (value > 0) or disarms ITIMER_REAL; returns the previous setting.
fn itimer_set(t: &TaskRunner, interval: Nanos, value: Nanos) -> (Nanos, Nanos) {
    let old = itimer_get(t);
    let now = t.kernel.clocks.monotonic();
    {
        let mut ts = t.kernel.tasks();
        if let Some(p) = ts.procs.get_mut(&t.pid()) {
            p.itimer_real = (value > 0).then_some(crate::kernel::itimer::ITimer {
                deadline: now.saturating_add(value),
                interval,
            });
        }
    }
    t.kernel.timers.poke();
    old
}

/// `getitimer(which, curr)`.
pub fn getitimer(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != ITIMER_REAL {
        return Err(Errno::EINVAL.because("only ITIMER_REAL is implemented"));
    }
    let (interval, value) = itimer_get(t);
    t.copy_out(a[1], &itimerval_bytes(interval, value))?;
    Ok(0)
}

/// `setitimer(which, new, old)`; a NULL `new` disarms (Linux's legacy
/// behaviour).
pub fn setitimer(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != ITIMER_REAL {
        return Err(Errno::EINVAL.because("only ITIMER_REAL is implemented"));
    }
    let (interval, value) = if a[1] != 0 {
        let b = t.read_array::<32>(a[1])?;
        let mut h = [0u8; 16];
        h.copy_from_slice(&b[0..16]);
        let interval = timeval_from(&h)?;
        h.copy_from_slice(&b[16..32]);
        (interval, timeval_from(&h)?)
    } else {
        (0, 0)
    };
    let (oi, ov) = itimer_set(t, interval, value);
    if a[2] != 0 {
        t.copy_out(a[2], &itimerval_bytes(oi, ov))?;
    }
    Ok(0)
}

/// `alarm(seconds)`: returns the seconds left on the previous alarm
/// (rounded like Linux `alarm_setitimer`).
pub fn alarm(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let secs = a[0] as u32 as i64;
    let (_, old) = itimer_set(t, 0, secs * 1_000_000_000);
    let mut s = old / 1_000_000_000;
    let rem_us = (old % 1_000_000_000) / 1000;
    if (s == 0 && rem_us > 0) || rem_us >= 500_000 {
        s += 1;
    }
    Ok(s as u64)
}
