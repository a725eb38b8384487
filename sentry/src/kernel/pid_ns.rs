//! The sandbox's PID namespace: the numbers the guest sees.
//!
//! Allocation follows Linux `kernel/pid.c` (`alloc_pid` via the IDR with a
//! cyclic cursor): the next pid is the lowest unused number above the last
//! one allocated, wrapping to `RESERVED` past `pid_max`. The first process
//! is 1 (init).

use checkpoints::Stateify;
use std::collections::BTreeSet;

use crate::errno::{Errno, SysResult};

/// A guest process or thread id.
pub type Pid = i32;

/// Linux's default `pid_max`.
pub const PID_MAX: Pid = 32_768;
/// After wrapping, allocation restarts above this (Linux `RESERVED_PIDS`).
const RESERVED: Pid = 300;

#[derive(Clone, Debug, Default, Stateify)]
pub struct PidNamespace {
    /// Ids in use (threads, processes, and ids kept alive by zombies).
    pub used: BTreeSet<Pid>,
    /// The last id handed out.
    pub last: Pid,
}

impl PidNamespace {
    /// Allocates the next id.
    pub fn alloc(&mut self) -> SysResult<Pid> {
        let candidates = (self.last + 1..PID_MAX).chain(RESERVED..=self.last.max(RESERVED));
        for pid in candidates {
            if pid > 0 && !self.used.contains(&pid) {
                self.used.insert(pid);
                self.last = pid;
                return Ok(pid);
            }
        }
        Err(Errno::EAGAIN.because("pid namespace full"))
    }

    /// Frees an id once nothing refers to it.
    pub fn free(&mut self, pid: Pid) {
        self.used.remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pid_is_one_and_freed_pids_are_not_reused_immediately() {
        let mut ns = PidNamespace::default();
        assert_eq!(ns.alloc().unwrap(), 1);
        assert_eq!(ns.alloc().unwrap(), 2);
        ns.free(2);
        assert_eq!(ns.alloc().unwrap(), 3);
    }

    #[test]
    fn allocation_wraps_above_reserved() {
        let mut ns = PidNamespace {
            last: PID_MAX - 1,
            ..Default::default()
        };
        ns.used.insert(1);
        assert_eq!(ns.alloc().unwrap(), RESERVED);
    }
}
