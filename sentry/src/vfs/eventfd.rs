//! `eventfd(2)`: a 64-bit counter with file semantics. Linux: fs/eventfd.c.
//!
//! Nothing blocks here: a read of a zero counter or a write that would
//! overflow returns `EAGAIN`, and the kernel waits on [`EventFd::queue`].

use std::sync::{Mutex, MutexGuard};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::waiter::{EventMask, WaitQueue, EVENT_IN, EVENT_OUT};

/// `EFD_SEMAPHORE`.
pub const EFD_SEMAPHORE: u32 = 1;
/// The largest value the counter may hold (`ULLONG_MAX - 1`).
const MAX_COUNT: u64 = u64::MAX - 1;

/// An eventfd object.
#[derive(Debug, Stateify)]
pub struct EventFd {
    /// The counter. Protected by its own lock.
    count: Mutex<u64>,
    /// `EFD_SEMAPHORE`: reads return 1 and decrement by 1.
    semaphore: bool,
    /// Readers wait for `EVENT_IN`, writers for `EVENT_OUT`. Host
    /// synchronization, not saved: waiters re-register after restore.
    #[state(nosave)]
    queue: WaitQueue,
}

impl EventFd {
    /// A counter starting at `initval`.
    pub fn new(initval: u32, semaphore: bool) -> EventFd {
        EventFd {
            count: Mutex::new(u64::from(initval)),
            semaphore,
            queue: WaitQueue::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, u64> {
        // Poisoning: the counter is always a valid value.
        self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue to wait on.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// `read(2)`: the 8-byte counter value (or 1 in semaphore mode).
    pub fn read(&self, buf: &mut [u8]) -> SysResult<usize> {
        let out = buf
            .get_mut(..8)
            .ok_or(Errno::EINVAL.because("eventfd read buffer under 8 bytes"))?;
        let mut c = self.lock();
        if *c == 0 {
            return Err(Errno::EAGAIN);
        }
        let v = if self.semaphore { 1 } else { *c };
        *c -= v;
        drop(c);
        out.copy_from_slice(&v.to_le_bytes());
        self.queue.notify(EVENT_OUT);
        Ok(8)
    }

    /// `write(2)`: adds the 8-byte value to the counter.
    pub fn write(&self, buf: &[u8]) -> SysResult<usize> {
        let bytes = buf
            .get(..8)
            .ok_or(Errno::EINVAL.because("eventfd write buffer under 8 bytes"))?;
        let mut v = [0u8; 8];
        v.copy_from_slice(bytes);
        let v = u64::from_le_bytes(v);
        if v == u64::MAX {
            return Err(Errno::EINVAL.because("eventfd write of 0xffffffffffffffff"));
        }
        let mut c = self.lock();
        if MAX_COUNT - *c < v {
            return Err(Errno::EAGAIN);
        }
        *c += v;
        drop(c);
        if v > 0 {
            self.queue.notify(EVENT_IN);
        }
        Ok(8)
    }

    /// Ready events among `mask`.
    pub fn readiness(&self, mask: EventMask) -> EventMask {
        let c = *self.lock();
        let mut ev = 0;
        if c > 0 {
            ev |= EVENT_IN;
        }
        if c < MAX_COUNT {
            ev |= EVENT_OUT;
        }
        ev & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(e: &EventFd) -> SysResult<u64> {
        let mut b = [0u8; 8];
        e.read(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    #[test]
    fn counter_accumulates_and_read_resets() {
        let e = EventFd::new(2, false);
        e.write(&5u64.to_le_bytes()).unwrap();
        assert_eq!(read(&e).unwrap(), 7);
        assert_eq!(read(&e).unwrap_err().code(), libc::EAGAIN);
        assert_eq!(e.readiness(EVENT_IN | EVENT_OUT), EVENT_OUT);
    }

    #[test]
    fn semaphore_mode_counts_down_by_one() {
        let e = EventFd::new(2, true);
        assert_eq!(read(&e).unwrap(), 1);
        assert_eq!(read(&e).unwrap(), 1);
        assert_eq!(read(&e).unwrap_err().code(), libc::EAGAIN);
    }

    #[test]
    fn overflow_would_block_and_bad_sizes_are_einval() {
        let e = EventFd::new(0, false);
        e.write(&MAX_COUNT.to_le_bytes()).unwrap();
        assert_eq!(
            e.write(&1u64.to_le_bytes()).unwrap_err().code(),
            libc::EAGAIN
        );
        assert_eq!(e.readiness(EVENT_OUT), 0);
        assert_eq!(
            e.write(&u64::MAX.to_le_bytes()).unwrap_err().code(),
            libc::EINVAL
        );
        assert_eq!(e.read(&mut [0u8; 4]).unwrap_err().code(), libc::EINVAL);
    }
}
