//! `futex(2)` (Linux `kernel/futex/`): WAIT, WAKE and their bitset forms,
//! for the private futexes glibc uses. See `kernel::futex` for keys.

use std::time::{Duration, Instant};

use crate::errno::{Errno, SysResult};
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
            let deadline = if a[3] != 0 {
                let ns = crate::kernel::time::timespec_from(&t.read_array::<16>(a[3])?)?;
                if op == FUTEX_WAIT {
                    Some(Instant::now() + Duration::from_nanos(ns as u64))
                } else {
                    let kind = if a[1] & FUTEX_CLOCK_REALTIME != 0 {
                        crate::kernel::time::ClockKind::Realtime
                    } else {
                        crate::kernel::time::ClockKind::Monotonic
                    };
                    Some(t.kernel.clocks.deadline(kind, ns, 0))
                }
            } else {
                None
            };
            let queue = t.kernel.futexes.enter(key);
            let waiter = t.task.waiter.clone();
            let res = (|| {
                let _reg = Registration::new(&queue, &waiter, EVENT_ALL);
                if t.read_u32(uaddr)? != a[2] as u32 {
                    return Err(Errno::EAGAIN);
                }
                if t.interrupted() {
                    return Err(Errno::ERESTARTSYS);
                }
                match waiter.wait(deadline) {
                    WaitOutcome::TimedOut => Err(Errno::ETIMEDOUT),
                    WaitOutcome::Woken if t.interrupted() => Err(Errno::ERESTARTSYS),
                    WaitOutcome::Woken => Ok(0),
                }
            })();
            t.kernel.futexes.leave(key);
            res
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

/// Wakes `n` waiters of the futex at `addr` of the task's process (used
/// for `clear_child_tid` at exit).
pub fn futex_wake_addr(t: &TaskRunner, addr: u64, n: usize) {
    t.kernel.futexes.wake((t.pid(), addr), n);
}
