//! Credentials (`struct cred`, Linux `kernel/cred.c`, `kernel/sys.c`).
//!
//! The sandbox starts with the identity of the user who ran `sbx` (real =
//! effective = saved = fs ids; a root caller's guest runs as root). The
//! sentry checks nothing against the host with them: they are what the
//! guest sees and what the set*id syscalls manipulate, with Linux's
//! permission rules for unprivileged callers.

use crate::errno::{Errno, SysResult};
use checkpoints::Stateify;

#[derive(Clone, Debug, Default, PartialEq, Eq, Stateify)]
pub struct Credentials {
    pub ruid: u32,
    pub euid: u32,
    pub suid: u32,
    pub fsuid: u32,
    pub rgid: u32,
    pub egid: u32,
    pub sgid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
}

/// `-1` as an id argument: leave unchanged.
const KEEP: u32 = u32::MAX;

impl Credentials {
    /// All ids equal to `uid`/`gid`.
    pub fn new(uid: u32, gid: u32) -> Credentials {
        Credentials {
            ruid: uid,
            euid: uid,
            suid: uid,
            fsuid: uid,
            rgid: gid,
            egid: gid,
            sgid: gid,
            fsgid: gid,
            groups: Vec::new(),
        }
    }

    /// Whether the task has CAP_SETUID/CAP_SETGID (modelled as euid 0).
    pub fn privileged(&self) -> bool {
        self.euid == 0
    }

    /// `setresuid(2)`.
    pub fn setresuid(&mut self, r: u32, e: u32, s: u32) -> SysResult<()> {
        if !self.privileged() {
            let ok = |v: u32| v == KEEP || v == self.ruid || v == self.euid || v == self.suid;
            if !(ok(r) && ok(e) && ok(s)) {
                return Err(Errno::EPERM);
            }
        }
        if r != KEEP {
            self.ruid = r;
        }
        if e != KEEP {
            self.euid = e;
        }
        if s != KEEP {
            self.suid = s;
        }
        self.fsuid = self.euid;
        Ok(())
    }

    /// `setresgid(2)`.
    pub fn setresgid(&mut self, r: u32, e: u32, s: u32) -> SysResult<()> {
        if !self.privileged() {
            let ok = |v: u32| v == KEEP || v == self.rgid || v == self.egid || v == self.sgid;
            if !(ok(r) && ok(e) && ok(s)) {
                return Err(Errno::EPERM);
            }
        }
        if r != KEEP {
            self.rgid = r;
        }
        if e != KEEP {
            self.egid = e;
        }
        if s != KEEP {
            self.sgid = s;
        }
        self.fsgid = self.egid;
        Ok(())
    }

    /// `setuid(2)`: privileged callers set all three ids.
    pub fn setuid(&mut self, uid: u32) -> SysResult<()> {
        if self.privileged() {
            self.setresuid(uid, uid, uid)
        } else if uid == self.ruid || uid == self.suid {
            self.setresuid(KEEP, uid, KEEP)
        } else {
            Err(Errno::EPERM)
        }
    }

    /// `setgid(2)`.
    pub fn setgid(&mut self, gid: u32) -> SysResult<()> {
        if self.privileged() {
            self.setresgid(gid, gid, gid)
        } else if gid == self.rgid || gid == self.sgid {
            self.setresgid(KEEP, gid, KEEP)
        } else {
            Err(Errno::EPERM)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprivileged_setuid_to_foreign_id_is_eperm() {
        let mut c = Credentials::new(1000, 1000);
        assert_eq!(c.setuid(0), Err(Errno::EPERM));
        assert_eq!(c.euid, 1000);
    }

    #[test]
    fn root_setuid_drops_all_ids() {
        let mut c = Credentials::new(0, 0);
        c.setuid(1000).unwrap();
        assert_eq!((c.ruid, c.euid, c.suid), (1000, 1000, 1000));
        assert_eq!(c.setuid(0), Err(Errno::EPERM));
    }
}
