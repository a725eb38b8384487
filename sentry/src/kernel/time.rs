//! Sandbox clocks.
//!
//! `CLOCK_REALTIME` is the host's. The sandbox's `CLOCK_MONOTONIC` (and
//! `CLOCK_BOOTTIME`) is the host's monotonic clock plus an offset kept in
//! kernel state, so that after a restore on another boot the guest's
//! monotonic time continues from where it was checkpointed instead of
//! jumping (compare gVisor `pkg/sentry/time`). CPU-time clocks are
//! approximated by the sandbox monotonic time since the task/process
//! started (documented approximation: the sentry does not account guest
//! CPU time separately from wall time).

use checkpoints::Stateify;
use std::time::Duration;

use crate::errno::{Errno, SysResult};

pub const CLOCK_REALTIME: i32 = 0;
pub const CLOCK_MONOTONIC: i32 = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
pub const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
pub const CLOCK_MONOTONIC_RAW: i32 = 4;
pub const CLOCK_REALTIME_COARSE: i32 = 5;
pub const CLOCK_MONOTONIC_COARSE: i32 = 6;
pub const CLOCK_BOOTTIME: i32 = 7;
pub const CLOCK_REALTIME_ALARM: i32 = 8;
pub const CLOCK_BOOTTIME_ALARM: i32 = 9;
pub const CLOCK_TAI: i32 = 11;

/// Nanoseconds.
pub type Nanos = i64;

/// The sandbox's clocks.
#[derive(Debug, Clone, Default, Stateify)]
pub struct Clocks {
    /// Added to the host monotonic clock to get the sandbox's. 0 at boot
    /// so the sandbox starts with the host's uptime; after restore it is
    /// `saved_monotonic - host_monotonic_now`.
    pub monotonic_offset: Nanos,
}

/// Which clock a `clockid_t` denotes, after validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockKind {
    Realtime,
    Monotonic,
    /// Process or thread CPU time (approximated, see module docs).
    Cpu,
}

/// Validates a `clockid_t` (Linux `kernel/time/posix-timers.c`). Dynamic
/// (fd/pid-based, negative) clocks are not supported: EINVAL.
pub fn clock_kind(id: i32) -> SysResult<ClockKind> {
    match id {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM | CLOCK_TAI => {
            Ok(ClockKind::Realtime)
        }
        CLOCK_MONOTONIC
        | CLOCK_MONOTONIC_RAW
        | CLOCK_MONOTONIC_COARSE
        | CLOCK_BOOTTIME
        | CLOCK_BOOTTIME_ALARM => Ok(ClockKind::Monotonic),
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => Ok(ClockKind::Cpu),
        _ => Err(Errno::EINVAL.because("unsupported clock id")),
    }
}

fn host(clock: rustix::time::ClockId) -> Nanos {
    let ts = rustix::time::clock_gettime(clock);
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl Clocks {
    /// The sandbox monotonic time.
    pub fn monotonic(&self) -> Nanos {
        host(rustix::time::ClockId::Monotonic) + self.monotonic_offset
    }

    /// Wall-clock time.
    pub fn realtime(&self) -> Nanos {
        host(rustix::time::ClockId::Realtime)
    }

    /// Reads a clock; CPU clocks report time since `start` (monotonic).
    pub fn now(&self, kind: ClockKind, cpu_start: Nanos) -> Nanos {
        match kind {
            ClockKind::Realtime => self.realtime(),
            ClockKind::Monotonic => self.monotonic(),
            ClockKind::Cpu => (self.monotonic() - cpu_start).max(0),
        }
    }

    /// Converts an absolute time on `kind` into a host `Instant` deadline.
    pub fn deadline(&self, kind: ClockKind, abs: Nanos, cpu_start: Nanos) -> std::time::Instant {
        let now = self.now(kind, cpu_start);
        let rel = abs.saturating_sub(now).max(0);
        std::time::Instant::now() + Duration::from_nanos(rel as u64)
    }
}

/// A `struct timespec` as 16 bytes.
pub fn timespec_bytes(ns: Nanos) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&ns.div_euclid(1_000_000_000).to_le_bytes());
    b[8..16].copy_from_slice(&ns.rem_euclid(1_000_000_000).to_le_bytes());
    b
}

/// A `struct timeval` as 16 bytes.
pub fn timeval_bytes(ns: Nanos) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&ns.div_euclid(1_000_000_000).to_le_bytes());
    b[8..16].copy_from_slice(&(ns.rem_euclid(1_000_000_000) / 1000).to_le_bytes());
    b
}

/// Decodes a guest `struct timespec`; EINVAL if `tv_nsec` is out of range
/// or the time is negative.
pub fn timespec_from(b: &[u8; 16]) -> SysResult<Nanos> {
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[0..8]);
    let sec = i64::from_le_bytes(s);
    s.copy_from_slice(&b[8..16]);
    let nsec = i64::from_le_bytes(s);
    if !(0..1_000_000_000).contains(&nsec) || sec < 0 {
        return Err(Errno::EINVAL.because("bad timespec"));
    }
    Ok(sec.saturating_mul(1_000_000_000).saturating_add(nsec))
}

/// Decodes a guest `struct timeval` (for select); EINVAL if out of range.
pub fn timeval_from(b: &[u8; 16]) -> SysResult<Nanos> {
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[0..8]);
    let sec = i64::from_le_bytes(s);
    s.copy_from_slice(&b[8..16]);
    let usec = i64::from_le_bytes(s);
    if !(0..1_000_000).contains(&usec) || sec < 0 {
        return Err(Errno::EINVAL.because("bad timeval"));
    }
    Ok(sec
        .saturating_mul(1_000_000_000)
        .saturating_add(usec * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_shifts_monotonic_time() {
        let a = Clocks {
            monotonic_offset: 0,
        };
        let b = Clocks {
            monotonic_offset: 1_000_000_000_000,
        };
        let (x, y) = (a.monotonic(), b.monotonic());
        assert!(y - x >= 999_000_000_000);
    }

    #[test]
    fn timespec_round_trip_and_validation() {
        let b = timespec_bytes(3_000_000_007);
        assert_eq!(timespec_from(&b), Ok(3_000_000_007));
        let mut bad = b;
        bad[8..16].copy_from_slice(&1_000_000_000i64.to_le_bytes());
        assert_eq!(timespec_from(&bad).map_err(Errno::code), Err(libc::EINVAL));
    }

    #[test]
    fn unknown_clock_is_einval() {
        assert_eq!(clock_kind(-2).map_err(Errno::code), Err(libc::EINVAL));
        assert_eq!(clock_kind(CLOCK_BOOTTIME), Ok(ClockKind::Monotonic));
    }
}
