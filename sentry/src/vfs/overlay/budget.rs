//! The upper layer's memory budget: file data held by the overlay counts
//! against a limit, and a write past it fails with `ENOSPC` (the overlay
//! is the sandbox's disk) instead of exhausting the host's memory.

use std::sync::atomic::{AtomicU64, Ordering};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};

/// Bytes of file data the overlay may hold.
#[derive(Debug, Stateify)]
pub struct Budget {
    /// Bytes charged now.
    used: AtomicU64,
    /// The limit (bytes).
    limit: AtomicU64,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Budget {
        Budget {
            used: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
        }
    }

    /// Half of the host's RAM: the default limit.
    pub fn default_limit() -> u64 {
        let si = rustix::system::sysinfo();
        (si.totalram as u64).saturating_mul(u64::from(si.mem_unit.max(1))) / 2
    }

    /// Charges `bytes`; `ENOSPC` (nothing charged) past the limit.
    pub fn charge(&self, bytes: u64) -> SysResult<()> {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(bytes).filter(|n| *n <= limit)
            })
            .map(|_| ())
            .map_err(|_| Errno::ENOSPC.because("overlay size limit reached"))
    }

    /// Returns `bytes` to the budget.
    pub fn credit(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit (data already held stays).
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_then_enospc() {
        let b = Budget::new(100);
        b.charge(60).unwrap();
        assert_eq!(b.charge(41).unwrap_err().code(), libc::ENOSPC);
        assert_eq!(b.used(), 60);
        b.credit(30);
        b.charge(70).unwrap();
        assert_eq!(b.used(), 100);
    }
}
