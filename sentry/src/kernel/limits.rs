//! Resource limits (`getrlimit(2)`), per thread group.
//!
//! Defaults are Linux's for a fresh login (`include/asm-generic/
//! resource.h`, `INIT_RLIMITS`) with the common distribution values for
//! `RLIMIT_NOFILE` (1024/4096) and `RLIMIT_STACK` (8 MiB). The sentry
//! enforces `RLIMIT_NOFILE` through the fd table; the others are stored
//! and reported.

use crate::errno::{Errno, SysResult};
use checkpoints::Stateify;

pub const RLIMIT_CPU: usize = 0;
pub const RLIMIT_FSIZE: usize = 1;
pub const RLIMIT_DATA: usize = 2;
pub const RLIMIT_STACK: usize = 3;
pub const RLIMIT_CORE: usize = 4;
pub const RLIMIT_RSS: usize = 5;
pub const RLIMIT_NPROC: usize = 6;
pub const RLIMIT_NOFILE: usize = 7;
pub const RLIMIT_MEMLOCK: usize = 8;
pub const RLIMIT_AS: usize = 9;
pub const RLIMIT_NLIMITS: usize = 16;
pub const RLIM_INFINITY: u64 = u64::MAX;

/// One limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub struct Rlimit {
    pub cur: u64,
    pub max: u64,
}

/// All limits of a thread group.
#[derive(Clone, Debug, PartialEq, Eq, Stateify)]
pub struct Limits {
    pub limits: Vec<Rlimit>,
}

impl Default for Limits {
    fn default() -> Self {
        let inf = Rlimit {
            cur: RLIM_INFINITY,
            max: RLIM_INFINITY,
        };
        let mut limits = vec![inf; RLIMIT_NLIMITS];
        limits[RLIMIT_STACK] = Rlimit {
            cur: 8 << 20,
            max: RLIM_INFINITY,
        };
        limits[RLIMIT_CORE] = Rlimit {
            cur: 0,
            max: RLIM_INFINITY,
        };
        limits[RLIMIT_NOFILE] = Rlimit {
            cur: 1024,
            max: 4096,
        };
        limits[RLIMIT_MEMLOCK] = Rlimit {
            cur: 8 << 20,
            max: 8 << 20,
        };
        limits[RLIMIT_NPROC] = Rlimit {
            cur: 63_704,
            max: 63_704,
        };
        limits[14] = Rlimit { cur: 0, max: 0 }; // RLIMIT_RTPRIO
        limits[13] = Rlimit { cur: 0, max: 0 }; // RLIMIT_NICE
        limits[11] = Rlimit {
            cur: 63_704,
            max: 63_704,
        }; // RLIMIT_SIGPENDING
        limits[12] = Rlimit {
            cur: 819_200,
            max: 819_200,
        }; // RLIMIT_MSGQUEUE
        Limits { limits }
    }
}

impl Limits {
    pub fn get(&self, res: usize) -> SysResult<Rlimit> {
        self.limits
            .get(res)
            .copied()
            .ok_or(Errno::EINVAL.because("unknown resource"))
    }

    /// Linux `do_prlimit`: cur <= max; raising max needs privilege.
    pub fn set(&mut self, res: usize, new: Rlimit, privileged: bool) -> SysResult<()> {
        let old = self.get(res)?;
        if new.cur > new.max {
            return Err(Errno::EINVAL.because("rlim_cur > rlim_max"));
        }
        if new.max > old.max && !privileged {
            return Err(Errno::EPERM);
        }
        self.limits[res] = new;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cur_above_max_is_einval_and_raising_max_needs_privilege() {
        let mut l = Limits::default();
        assert_eq!(
            l.set(RLIMIT_NOFILE, Rlimit { cur: 10, max: 5 }, true)
                .map_err(Errno::code),
            Err(libc::EINVAL)
        );
        assert_eq!(
            l.set(
                RLIMIT_NOFILE,
                Rlimit {
                    cur: 10,
                    max: 99_999
                },
                false
            )
            .map_err(Errno::code),
            Err(libc::EPERM)
        );
        l.set(RLIMIT_NOFILE, Rlimit { cur: 10, max: 20 }, false)
            .unwrap();
        assert_eq!(l.get(RLIMIT_NOFILE).unwrap().cur, 10);
    }
}
