//! poll, ppoll, select, pselect6 (Linux `fs/select.c`).
//!
//! One loop for all four: compute every file's readiness; if something is
//! ready or the timeout is zero, return; otherwise register the task's
//! waiter on every file's wait queue, re-check, and sleep until woken, the
//! deadline, or a signal (`ERESTARTNOHAND`: EINTR after a handler,
//! restarted otherwise).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
use crate::kernel::signal::SigSet;
use crate::kernel::time::{timespec_bytes, timespec_from, timeval_bytes, timeval_from};
use crate::kernel::TaskRunner;
use crate::vfs::FileDescription;
use crate::waiter::{EventMask, Registration, WaitOutcome, EVENT_ERR, EVENT_HUP};

use super::arg_i32;

const POLLNVAL: u16 = 0x20;

/// One polled fd: its file (None: bad fd) and the events wanted.
struct Polled {
    file: Option<Arc<FileDescription>>,
    events: EventMask,
}

/// Waits until one of `items` is ready; returns each one's ready events.
fn wait_ready(
    t: &mut TaskRunner,
    items: &[Polled],
    deadline: Option<Instant>,
) -> SysResult<Vec<EventMask>> {
    let check = |items: &[Polled]| -> (Vec<EventMask>, bool) {
        let r: Vec<EventMask> = items
            .iter()
            .map(|p| match &p.file {
                Some(f) => {
                    f.readiness(p.events | EVENT_ERR | EVENT_HUP)
                        & (p.events | EVENT_ERR | EVENT_HUP)
                }
                None => 0,
            })
            .collect();
        let any = r.iter().any(|e| *e != 0) || items.iter().any(|p| p.file.is_none());
        (r, any)
    };
    let (r, any) = check(items);
    if any || deadline.is_some_and(|d| d <= Instant::now()) {
        return Ok(r);
    }
    let waiter = t.task.waiter.clone();
    let _regs: Vec<Registration<'_>> = items
        .iter()
        .filter_map(|p| p.file.as_ref())
        .filter_map(|f| {
            f.wait_queue()
                .map(|q| Registration::new(q, &waiter, crate::waiter::EVENT_ALL))
        })
        .collect();
    loop {
        let (r, any) = check(items);
        if any {
            return Ok(r);
        }
        if t.interrupted() {
            return Err(Errno::ERESTARTNOHAND);
        }
        if waiter.wait(deadline) == WaitOutcome::TimedOut {
            return Ok(check(items).0);
        }
    }
}

fn deadline_after(ns: i64) -> Instant {
    Instant::now() + Duration::from_nanos(ns.max(0) as u64)
}

fn do_poll(
    t: &mut TaskRunner,
    fds_addr: u64,
    nfds: u64,
    deadline: Option<Instant>,
) -> SysResult<u64> {
    if nfds > 1 << 20 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds as usize * 8];
    t.copy_in(fds_addr, &mut raw)?;
    let table = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let mut items = Vec::new();
    for e in raw.chunks_exact(8) {
        let fd = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let events = u16::from_le_bytes([e[4], e[5]]) as EventMask;
        let file = if fd < 0 {
            None
        } else {
            Some(table.get(fd).ok())
        };
        items.push((
            fd,
            file.clone(),
            Polled {
                file: file.flatten(),
                events,
            },
        ));
    }
    let polled: Vec<Polled> = items
        .iter()
        .filter(|(fd, _, _)| *fd >= 0)
        .map(|(_, _, p)| Polled {
            file: p.file.clone(),
            events: p.events,
        })
        .collect();
    let ready = wait_ready(t, &polled, deadline)?;
    let mut count = 0;
    let mut k = 0;
    for (i, (fd, file, _)) in items.iter().enumerate() {
        let rev: u16 = if *fd < 0 {
            0
        } else {
            let r = match file {
                Some(Some(_)) => ready[k] as u16,
                _ => POLLNVAL,
            };
            k += 1;
            r
        };
        if rev != 0 {
            count += 1;
        }
        raw[i * 8 + 6..i * 8 + 8].copy_from_slice(&rev.to_le_bytes());
    }
    t.copy_out(fds_addr, &raw)?;
    Ok(count)
}

/// `poll(fds, nfds, timeout_ms)`. Interrupted with a timeout, it leaves a
/// restart block so a restart (after a stop or a checkpoint) waits only
/// the time left (Linux `do_restart_poll`).
pub fn poll(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let ms = arg_i32(a[2]);
    if ms < 0 {
        return do_poll(t, a[0], a[1], None);
    }
    let deadline = t
        .kernel
        .clocks
        .monotonic()
        .saturating_add(ms as i64 * 1_000_000);
    restart_poll(t, a[0], a[1], deadline)
}

/// `poll` until the sandbox-monotonic `deadline` (also `restart_syscall`).
pub fn restart_poll(t: &mut TaskRunner, fds: u64, nfds: u64, deadline: i64) -> SysResult<u64> {
    use crate::kernel::time::ClockKind;
    let host = t.kernel.clocks.deadline(ClockKind::Monotonic, deadline, 0);
    match do_poll(t, fds, nfds, Some(host)) {
        Err(e) if e.code() == crate::errno::ERESTARTNOHAND => {
            t.task.local().restart = Some(crate::kernel::task::RestartBlock::Poll {
                fds,
                nfds,
                deadline,
            });
            Err(Errno::ERESTART_RESTARTBLOCK)
        }
        r => r,
    }
}

/// Installs the temporary signal mask of ppoll/pselect6.
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

/// `ppoll(fds, nfds, tsp, sigmask, sigsetsize)`.
pub fn ppoll(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let deadline = if a[2] != 0 {
        Some(deadline_after(timespec_from(&t.read_array::<16>(a[2])?)?))
    } else {
        None
    };
    temp_mask(t, a[3], a[4])?;
    let r = do_poll(t, a[0], a[1], deadline);
    if a[2] != 0 {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now()).as_nanos() as i64;
            let _ = t.copy_out(a[2], &timespec_bytes(left));
        }
    }
    r
}

fn do_select(
    t: &mut TaskRunner,
    nfds: u64,
    sets: [u64; 3],
    deadline: Option<Instant>,
) -> SysResult<u64> {
    let nfds = arg_i32(nfds);
    if nfds < 0 {
        return Err(Errno::EINVAL);
    }
    let nfds = nfds.min(t.task.tg.fds().map(|f| f.limit() as i32).unwrap_or(0)) as usize;
    let bytes = nfds.div_ceil(64) * 8;
    let mut bits = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    for (i, addr) in sets.iter().enumerate() {
        if *addr != 0 {
            t.copy_in(*addr, &mut bits[i])?;
        }
    }
    let table = t.task.tg.fds().ok_or(Errno::EBADF)?;
    const IN: EventMask = crate::waiter::EVENT_IN | EVENT_HUP | EVENT_ERR;
    const OUT: EventMask = crate::waiter::EVENT_OUT | EVENT_ERR;
    const PRI: EventMask = libc::POLLPRI as EventMask;
    let mut fds = Vec::new();
    let mut items = Vec::new();
    for fd in 0..nfds {
        let bit = |s: &Vec<u8>| s[fd / 8] & (1 << (fd % 8)) != 0;
        let mut ev = 0;
        if bit(&bits[0]) {
            ev |= IN;
        }
        if bit(&bits[1]) {
            ev |= OUT;
        }
        if bit(&bits[2]) {
            ev |= PRI;
        }
        if ev != 0 {
            let f = table.get(fd as i32)?;
            fds.push(fd);
            items.push(Polled {
                file: Some(f),
                events: ev,
            });
        }
    }
    let ready = wait_ready(t, &items, deadline)?;
    let mut out = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    let mut count = 0;
    for (k, fd) in fds.iter().enumerate() {
        let want = items[k].events;
        let r = ready[k];
        for (s, mask) in [(0, IN), (1, OUT), (2, PRI)] {
            if want & mask != 0 && r & mask != 0 {
                out[s][fd / 8] |= 1 << (fd % 8);
                count += 1;
            }
        }
    }
    for (i, addr) in sets.iter().enumerate() {
        if *addr != 0 {
            t.copy_out(*addr, &out[i])?;
        }
    }
    Ok(count)
}

/// `select(nfds, readfds, writefds, exceptfds, timeout)`; the remaining
/// time is written back to `timeout` like Linux.
pub fn select(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let deadline = if a[4] != 0 {
        Some(deadline_after(timeval_from(&t.read_array::<16>(a[4])?)?))
    } else {
        None
    };
    let r = do_select(t, a[0], [a[1], a[2], a[3]], deadline);
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(Instant::now()).as_nanos() as i64;
        let _ = t.copy_out(a[4], &timeval_bytes(left));
    }
    r
}

/// `pselect6(nfds, r, w, e, timeout, {sigmask, size})`.
pub fn pselect6(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let deadline = if a[4] != 0 {
        Some(deadline_after(timespec_from(&t.read_array::<16>(a[4])?)?))
    } else {
        None
    };
    if a[5] != 0 {
        let b = t.read_array::<16>(a[5])?;
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[0..8]);
        let addr = u64::from_le_bytes(x);
        x.copy_from_slice(&b[8..16]);
        temp_mask(t, addr, u64::from_le_bytes(x))?;
    }
    let r = do_select(t, a[0], [a[1], a[2], a[3]], deadline);
    if let Some(d) = deadline {
        let left = d.saturating_duration_since(Instant::now()).as_nanos() as i64;
        let _ = t.copy_out(a[4], &timespec_bytes(left));
    }
    r
}
