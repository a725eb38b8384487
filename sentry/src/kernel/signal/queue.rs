//! Pending signals and their `siginfo`.
//!
//! Linux `kernel/signal.c`: a standard signal (< 32) is pending at most
//! once (later instances are merged), real-time signals queue every
//! instance in order. Lower numbers are dequeued first, synchronous fault
//! signals ahead of the rest (`next_signal`).

use super::{SigSet, Signal, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};
use checkpoints::Stateify;

/// `si_code` values used by the sentry.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TKILL: i32 = -6;
pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;

/// A `siginfo_t` (128 bytes on x86-64), kept as the guest will see it.
///
/// Layout: `si_signo` @0, `si_errno` @4, `si_code` @8, then the union @16:
/// kill/tkill `si_pid` @16 `si_uid` @20; SIGCHLD adds `si_status` @24;
/// faults `si_addr` @16; rt/queue `si_value` @24.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    /// The union, as bytes 16..48 (what the sentry fills; the rest is 0).
    pub fields: [u64; 4],
}

impl SigInfo {
    pub const SIZE: usize = 128;

    /// A signal sent by a process (`kill`, `tgkill`: `code` SI_USER /
    /// SI_TKILL).
    pub fn user(signo: Signal, code: i32, pid: i32, uid: u32) -> SigInfo {
        SigInfo {
            signo,
            errno: 0,
            code,
            fields: [(pid as u32 as u64) | ((uid as u64) << 32), 0, 0, 0],
        }
    }

    /// A signal raised by the kernel itself (e.g. SIGPIPE, SIGKILL at exit).
    pub fn kernel(signo: Signal) -> SigInfo {
        SigInfo {
            signo,
            errno: 0,
            code: SI_KERNEL,
            fields: [0; 4],
        }
    }

    /// A synchronous fault with its address.
    pub fn fault(signo: Signal, code: i32, addr: u64) -> SigInfo {
        SigInfo {
            signo,
            errno: 0,
            code,
            fields: [addr, 0, 0, 0],
        }
    }

    /// SIGCHLD for a child `pid` (`code` CLD_*, `status` exit code or
    /// signal).
    pub fn child(pid: i32, uid: u32, code: i32, status: i32) -> SigInfo {
        SigInfo {
            signo: super::SIGCHLD,
            errno: 0,
            code,
            fields: [
                (pid as u32 as u64) | ((uid as u64) << 32),
                status as u32 as u64,
                0,
                0,
            ],
        }
    }

    /// Decodes a guest `siginfo_t` (for `rt_sigqueueinfo`).
    pub fn from_bytes(b: &[u8; 128]) -> SigInfo {
        let i32_at = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        SigInfo {
            signo: i32_at(0),
            errno: i32_at(4),
            code: i32_at(8),
            fields: [u64_at(16), u64_at(24), u64_at(32), u64_at(40)],
        }
    }

    /// The guest's `siginfo_t` bytes.
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[4..8].copy_from_slice(&self.errno.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        for (i, f) in self.fields.iter().enumerate() {
            b[16 + i * 8..24 + i * 8].copy_from_slice(&f.to_le_bytes());
        }
        b
    }
}

/// Signals pending on a task or a thread group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Stateify)]
pub struct SigQueue {
    /// In arrival order.
    pub entries: Vec<SigInfo>,
}

impl SigQueue {
    /// The set of pending signal numbers.
    pub fn set(&self) -> SigSet {
        let mut s = SigSet::EMPTY;
        for e in &self.entries {
            s.add(e.signo);
        }
        s
    }

    /// Queues `info`; a standard signal already pending is merged. Returns
    /// whether it was newly queued.
    pub fn enqueue(&mut self, info: SigInfo) -> bool {
        if info.signo < 32 && self.entries.iter().any(|e| e.signo == info.signo) {
            return false;
        }
        self.entries.push(info);
        true
    }

    /// Removes every instance of `sig`.
    pub fn discard(&mut self, sig: Signal) {
        self.entries.retain(|e| e.signo != sig);
    }

    /// Dequeues the signal to deliver next among those not in `blocked`:
    /// synchronous faults first, then the lowest number
    /// (Linux `next_signal`).
    pub fn dequeue(&mut self, blocked: SigSet) -> Option<SigInfo> {
        let avail = SigSet(self.set().0 & !blocked.0);
        if avail.0 == 0 {
            return None;
        }
        let sync = [SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE];
        let sig = sync
            .into_iter()
            .find(|s| avail.has(*s))
            .unwrap_or(avail.0.trailing_zeros() as i32 + 1);
        let idx = self.entries.iter().position(|e| e.signo == sig)?;
        Some(self.entries.remove(idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::signal::{SIGINT, SIGTERM, SIGUSR1};

    #[test]
    fn standard_signals_merge_realtime_signals_queue() {
        let mut q = SigQueue::default();
        assert!(q.enqueue(SigInfo::kernel(SIGUSR1)));
        assert!(!q.enqueue(SigInfo::kernel(SIGUSR1)));
        assert!(q.enqueue(SigInfo::kernel(40)));
        assert!(q.enqueue(SigInfo::kernel(40)));
        assert_eq!(q.entries.len(), 3);
    }

    #[test]
    fn dequeue_skips_blocked_and_prefers_faults_then_low_numbers() {
        let mut q = SigQueue::default();
        q.enqueue(SigInfo::kernel(SIGTERM));
        q.enqueue(SigInfo::kernel(SIGINT));
        q.enqueue(SigInfo::fault(SIGSEGV, SEGV_MAPERR, 8));
        assert_eq!(
            q.dequeue(SigSet::of(SIGSEGV)).map(|i| i.signo),
            Some(SIGINT)
        );
        assert_eq!(q.dequeue(SigSet::EMPTY).map(|i| i.signo), Some(SIGSEGV));
        assert_eq!(q.dequeue(SigSet::of(SIGTERM)), None);
    }

    #[test]
    fn siginfo_layout_puts_addr_at_16() {
        let b = SigInfo::fault(SIGSEGV, SEGV_MAPERR, 0xdead_beef).to_bytes();
        assert_eq!(&b[0..4], &11i32.to_le_bytes());
        assert_eq!(&b[8..12], &1i32.to_le_bytes());
        assert_eq!(&b[16..24], &0xdead_beefu64.to_le_bytes());
        assert_eq!(
            SigInfo::from_bytes(&b),
            SigInfo::fault(SIGSEGV, SEGV_MAPERR, 0xdead_beef)
        );
    }
}
