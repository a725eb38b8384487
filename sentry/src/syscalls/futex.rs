//! `futex(2)` (Linux `kernel/futex/`): WAIT, WAKE and their bitset forms,
//! for the private futexes glibc uses. See `kernel::futex` for keys.

use crate::errno::{Errno, SysResult};
use crate::kernel::task::RestartBlock;
use crate::kernel::time::{timespec_from, ClockKind, Nanos};
use crate::kernel::TaskRunner;
use crate::waiter::{Registration, WaitOutcome, EVENT_ALL};

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE_FLAG: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// `futex(uaddr, op, val, timeout, uaddr2, val3)`.
pub fn futex(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let uaddr = a[0];
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL.because("unaligned futex"));
    }
    let op = a[1] & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let key = (t.pid(), uaddr);
    match op {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            if op == FUTEX_WAIT_BITSET && a[5] as u32 == 0 {
                return Err(Errno::EINVAL);
            }
            // FUTEX_WAIT's timeout is relative (measured on the sandbox
            // monotonic clock so what is left survives a restore);
            // FUTEX_WAIT_BITSET's is absolute on the chosen clock.
            let deadline = if a[3] != 0 {
                let ns = timespec_from(&t.read_array::<16>(a[3])?)?;
                if op == FUTEX_WAIT {
                    Some((
                        ClockKind::Monotonic,
                        t.kernel.clocks.monotonic().saturating_add(ns),
                    ))
                } else if a[1] & FUTEX_CLOCK_REALTIME != 0 {
                    Some((ClockKind::Realtime, ns))
                } else {
                    Some((ClockKind::Monotonic, ns))
                }
            } else {
                None
            };
            let restartable = op == FUTEX_WAIT && deadline.is_some();
            futex_wait(t, uaddr, a[2] as u32, deadline, restartable)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => Ok(t.kernel.futexes.wake(key, a[2] as usize) as u64),
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            if op == FUTEX_CMP_REQUEUE && t.read_u32(uaddr)? != a[5] as u32 {
                return Err(Errno::EAGAIN);
            }
            // Waking everyone is a correct (spurious-wake-up) requeue.
            let n = t.kernel.futexes.wake(key, usize::MAX);
            Ok(n as u64)
        }
        _ => Err(Errno::ENOSYS.because("unsupported futex op")),
    }
}

/// Waits on the futex at `uaddr` while it holds `val`, until woken or the
/// absolute `deadline` on its clock. Interrupted, a relative wait
/// (`restartable`: its deadline is sandbox monotonic) leaves a restart
/// block so `restart_syscall` waits only the time left, also after a
/// checkpoint/restore (Linux `futex_wait` → `futex_wait_restart`); others
/// restart with their own arguments (`ERESTARTSYS`).
fn futex_wait(
    t: &mut TaskRunner,
    uaddr: u64,
    val: u32,
    deadline: Option<(ClockKind, Nanos)>,
    restartable: bool,
) -> SysResult<u64> {
    let key = (t.pid(), uaddr);
    let host_deadline = deadline.map(|(kind, ns)| t.kernel.clocks.deadline(kind, ns, 0));
    let queue = t.kernel.futexes.enter(key);
    let waiter = t.task.waiter.clone();
    let res = (|| {
        let _reg = Registration::new(&queue, &waiter, EVENT_ALL);
        // Only a FUTEX_WAKE of this key from now on ends the wait with 0.
        let wakes = t.kernel.futexes.wakes(key);
        if t.read_u32(uaddr)? != val {
            return Err(Errno::EAGAIN);
        }
        loop {
            if t.interrupted() {
                return Err(Errno::ERESTARTSYS);
            }
            match waiter.wait(host_deadline) {
                WaitOutcome::TimedOut => return Err(Errno::ETIMEDOUT),
                WaitOutcome::Woken if t.kernel.futexes.wakes(key) != wakes => return Ok(0),
                // Not a futex wake: a kick for a blocked signal, one left
                // over from before the call (SIGCONT kicks a stopped task
                // more than once). Linux `futex_wait` goes back to sleep
                // too; a pending signal or a pause is checked above.
                WaitOutcome::Woken => {}
            }
        }
    })();
    t.kernel.futexes.leave(key);
    match (res, deadline) {
        (Err(e), Some((_, ns))) if restartable && e.code() == crate::errno::ERESTARTSYS => {
            t.task.local().restart = Some(RestartBlock::Futex {
                uaddr,
                val,
                deadline: ns,
            });
            Err(Errno::ERESTART_RESTARTBLOCK)
        }
        (r, _) => r,
    }
}

/// `restart_syscall` of an interrupted relative `FUTEX_WAIT`: waits until
/// the saved sandbox-monotonic `deadline`.
pub fn restart_futex_wait(
    t: &mut TaskRunner,
    uaddr: u64,
    val: u32,
    deadline: Nanos,
) -> SysResult<u64> {
    futex_wait(t, uaddr, val, Some((ClockKind::Monotonic, deadline)), true)
}

/// Wakes `n` waiters of the futex at `addr` of the task's process (used
/// for `clear_child_tid` at exit).
pub fn futex_wake_addr(t: &TaskRunner, addr: u64, n: usize) {
    t.kernel.futexes.wake((t.pid(), addr), n);
}
