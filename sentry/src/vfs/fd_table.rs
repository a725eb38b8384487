//! The fd table: small integers naming open file descriptions, each with
//! its own close-on-exec flag. Linux: fs/file.c.
//!
//! Shared by threads created with `CLONE_FILES` (the kernel holds it in an
//! `Arc`); `fork` without it gets a copy ([`FdTable::fork`]) whose fds
//! share the *descriptions* (offsets, flags) with the parent's.
//!
//! Closing an fd drops its `Arc<FileDescription>`; the description (and,
//! for pipes, its end) goes away with the last fd or mapping holding it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::file::FileDescription;

/// Default `RLIMIT_NOFILE` soft limit.
pub const DEFAULT_NOFILE: u32 = 1024;
/// Largest limit accepted (`/proc/sys/fs/nr_open`).
pub const NR_OPEN: u32 = 1 << 20;

#[derive(Clone, Debug, Stateify)]
struct FdEntry {
    file: Arc<FileDescription>,
    cloexec: bool,
}

#[derive(Debug, Stateify)]
struct FdTableInner {
    fds: BTreeMap<i32, FdEntry>,
    /// Fds must be below this (`RLIMIT_NOFILE`).
    limit: u32,
}

/// A process's fd table.
#[derive(Debug, Stateify)]
pub struct FdTable {
    inner: Mutex<FdTableInner>,
}

impl Default for FdTable {
    fn default() -> FdTable {
        FdTable::new()
    }
}

impl FdTable {
    /// An empty table with the default limit.
    pub fn new() -> FdTable {
        FdTable {
            inner: Mutex::new(FdTableInner {
                fds: BTreeMap::new(),
                limit: DEFAULT_NOFILE,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FdTableInner> {
        // Poisoning: every critical section leaves the map consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `RLIMIT_NOFILE` in force.
    pub fn limit(&self) -> u32 {
        self.lock().limit
    }

    /// Sets the limit (existing fds above it stay open, as in Linux).
    pub fn set_limit(&self, limit: u32) -> SysResult<()> {
        if limit > NR_OPEN {
            return Err(Errno::EPERM.because("RLIMIT_NOFILE above nr_open"));
        }
        self.lock().limit = limit;
        Ok(())
    }

    fn lowest_free(inner: &FdTableInner, min: i32) -> SysResult<i32> {
        let mut fd = min.max(0);
        for (&k, _) in inner.fds.range(fd..) {
            if k != fd {
                break;
            }
            fd += 1;
        }
        if fd as i64 >= i64::from(inner.limit) {
            return Err(Errno::EMFILE);
        }
        Ok(fd)
    }

    /// Installs `file` at the lowest free fd ≥ `min` (`open`, `F_DUPFD`).
    pub fn install(&self, file: Arc<FileDescription>, cloexec: bool, min: i32) -> SysResult<i32> {
        if min < 0 {
            return Err(Errno::EINVAL.because("negative minimum fd"));
        }
        let mut t = self.lock();
        if min as i64 >= i64::from(t.limit) {
            return Err(Errno::EINVAL.because("minimum fd above RLIMIT_NOFILE"));
        }
        let fd = Self::lowest_free(&t, min)?;
        t.fds.insert(fd, FdEntry { file, cloexec });
        Ok(fd)
    }

    /// Installs both ends of a pipe at the two lowest free fds, or neither.
    pub fn install_pair(
        &self,
        a: Arc<FileDescription>,
        b: Arc<FileDescription>,
        cloexec: bool,
    ) -> SysResult<(i32, i32)> {
        let mut t = self.lock();
        let fa = Self::lowest_free(&t, 0)?;
        t.fds.insert(fa, FdEntry { file: a, cloexec });
        match Self::lowest_free(&t, fa + 1) {
            Ok(fb) => {
                t.fds.insert(fb, FdEntry { file: b, cloexec });
                Ok((fa, fb))
            }
            Err(e) => {
                t.fds.remove(&fa);
                Err(e)
            }
        }
    }

    /// The description behind `fd`.
    pub fn get(&self, fd: i32) -> SysResult<Arc<FileDescription>> {
        self.lock()
            .fds
            .get(&fd)
            .map(|e| e.file.clone())
            .ok_or(Errno::EBADF)
    }

    /// Closes `fd`, returning its description so the caller drops it
    /// outside the table lock.
    pub fn close(&self, fd: i32) -> SysResult<Arc<FileDescription>> {
        self.lock()
            .fds
            .remove(&fd)
            .map(|e| e.file)
            .ok_or(Errno::EBADF)
    }

    /// `dup(2)`: lowest free fd, close-on-exec clear.
    pub fn dup(&self, fd: i32) -> SysResult<i32> {
        self.dup_min(fd, 0, false)
    }

    /// `fcntl(F_DUPFD / F_DUPFD_CLOEXEC)`.
    pub fn dup_min(&self, fd: i32, min: i32, cloexec: bool) -> SysResult<i32> {
        let file = self.get(fd)?;
        self.install(file, cloexec, min)
    }

    /// `dup2(2)` (`dup3` with `same_fd_is_error == true` and the
    /// `O_CLOEXEC` flag as `cloexec`). Atomically replaces `new`; returns
    /// the replaced description (drop it outside the lock).
    pub fn dup3(
        &self,
        old: i32,
        new: i32,
        cloexec: bool,
        same_fd_is_error: bool,
    ) -> SysResult<(i32, Option<Arc<FileDescription>>)> {
        let mut t = self.lock();
        let file = t
            .fds
            .get(&old)
            .map(|e| e.file.clone())
            .ok_or(Errno::EBADF)?;
        if old == new {
            return if same_fd_is_error {
                Err(Errno::EINVAL.because("dup3 with oldfd == newfd"))
            } else {
                Ok((new, None))
            };
        }
        if new < 0 || new as i64 >= i64::from(t.limit) {
            return Err(Errno::EBADF.because("newfd out of range"));
        }
        let replaced = t.fds.insert(new, FdEntry { file, cloexec }).map(|e| e.file);
        Ok((new, replaced))
    }

    /// `F_GETFD`: whether `FD_CLOEXEC` is set.
    pub fn cloexec(&self, fd: i32) -> SysResult<bool> {
        self.lock()
            .fds
            .get(&fd)
            .map(|e| e.cloexec)
            .ok_or(Errno::EBADF)
    }

    /// `F_SETFD`.
    pub fn set_cloexec(&self, fd: i32, on: bool) -> SysResult<()> {
        let mut t = self.lock();
        let e = t.fds.get_mut(&fd).ok_or(Errno::EBADF)?;
        e.cloexec = on;
        Ok(())
    }

    /// At `execve`: closes every close-on-exec fd; returns the closed
    /// descriptions (drop them outside the lock).
    pub fn close_on_exec(&self) -> Vec<Arc<FileDescription>> {
        let mut t = self.lock();
        let doomed: Vec<i32> = t
            .fds
            .iter()
            .filter(|(_, e)| e.cloexec)
            .map(|(k, _)| *k)
            .collect();
        doomed
            .into_iter()
            .filter_map(|fd| t.fds.remove(&fd).map(|e| e.file))
            .collect()
    }

    /// A copy for `fork` without `CLONE_FILES`: same fds, same shared
    /// descriptions, same close-on-exec flags and limit.
    pub fn fork(&self) -> FdTable {
        let t = self.lock();
        FdTable {
            inner: Mutex::new(FdTableInner {
                fds: t.fds.clone(),
                limit: t.limit,
            }),
        }
    }

    /// Closes every fd (process exit); returns the descriptions.
    pub fn close_all(&self) -> Vec<Arc<FileDescription>> {
        let mut t = self.lock();
        std::mem::take(&mut t.fds)
            .into_values()
            .map(|e| e.file)
            .collect()
    }

    /// Open fds in ascending order.
    pub fn fds(&self) -> Vec<i32> {
        self.lock().fds.keys().copied().collect()
    }

    /// `(fd, link target)` for `/proc/<pid>/fd`.
    pub fn proc_fd_targets(&self) -> Vec<(i32, Vec<u8>)> {
        let files: Vec<(i32, Arc<FileDescription>)> = self
            .lock()
            .fds
            .iter()
            .map(|(k, e)| (*k, e.file.clone()))
            .collect();
        files
            .into_iter()
            .map(|(k, f)| (k, f.proc_target()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::dev::DevKind;
    use crate::vfs::file::FileKind;

    fn null() -> Arc<FileDescription> {
        FileDescription::new(
            FileKind::Device(DevKind::Null),
            libc::O_RDWR as u32,
            b"/dev/null".to_vec(),
        )
    }

    #[test]
    fn install_takes_lowest_free_fd() {
        let t = FdTable::new();
        assert_eq!(t.install(null(), false, 0).unwrap(), 0);
        assert_eq!(t.install(null(), false, 0).unwrap(), 1);
        assert_eq!(t.install(null(), false, 0).unwrap(), 2);
        t.close(1).unwrap();
        assert_eq!(t.install(null(), false, 0).unwrap(), 1);
        assert_eq!(t.install(null(), false, 10).unwrap(), 10);
    }

    #[test]
    fn emfile_at_the_limit() {
        let t = FdTable::new();
        t.set_limit(2).unwrap();
        t.install(null(), false, 0).unwrap();
        t.install(null(), false, 0).unwrap();
        assert_eq!(t.install(null(), false, 0).unwrap_err(), Errno::EMFILE);
        assert_eq!(t.dup(0).unwrap_err(), Errno::EMFILE);
    }

    #[test]
    fn dup_shares_the_description_and_clears_cloexec() {
        let t = FdTable::new();
        let fd = t.install(null(), true, 0).unwrap();
        let d = t.dup(fd).unwrap();
        assert!(Arc::ptr_eq(&t.get(fd).unwrap(), &t.get(d).unwrap()));
        assert!(t.cloexec(fd).unwrap());
        assert!(!t.cloexec(d).unwrap());
    }

    #[test]
    fn dup2_replaces_target_and_dup3_rejects_same_fd() {
        let t = FdTable::new();
        let a = t.install(null(), false, 0).unwrap();
        let b = t.install(null(), false, 0).unwrap();
        let old_b = t.get(b).unwrap();
        let (fd, replaced) = t.dup3(a, b, true, false).unwrap();
        assert_eq!(fd, b);
        assert!(Arc::ptr_eq(&replaced.unwrap(), &old_b));
        assert!(Arc::ptr_eq(&t.get(a).unwrap(), &t.get(b).unwrap()));
        assert!(t.cloexec(b).unwrap());
        assert_eq!(t.dup3(a, a, false, false).unwrap().0, a);
        assert_eq!(t.dup3(a, a, false, true).unwrap_err().code(), libc::EINVAL);
        assert_eq!(t.dup3(7, 8, false, false).unwrap_err(), Errno::EBADF);
    }

    #[test]
    fn exec_closes_only_cloexec_fds() {
        let t = FdTable::new();
        t.install(null(), false, 0).unwrap();
        t.install(null(), true, 0).unwrap();
        t.install(null(), false, 0).unwrap();
        assert_eq!(t.close_on_exec().len(), 1);
        assert_eq!(t.fds(), vec![0, 2]);
    }

    #[test]
    fn fork_copies_fds_sharing_descriptions() {
        let t = FdTable::new();
        let fd = t.install(null(), true, 0).unwrap();
        let child = t.fork();
        assert!(Arc::ptr_eq(&t.get(fd).unwrap(), &child.get(fd).unwrap()));
        child.close(fd).unwrap();
        assert!(t.get(fd).is_ok());
        assert!(child.cloexec(fd).is_err());
    }

    #[test]
    fn pipe_ends_follow_fd_close_across_fork() {
        let t = FdTable::new();
        let (r, w) = FileDescription::new_pipe(0);
        let (rfd, wfd) = t.install_pair(r, w, false).unwrap();
        let child = t.fork();
        drop(t.close(wfd).unwrap());
        let mut buf = [0u8; 1];
        // The child still holds the write end: no EOF yet.
        assert_eq!(
            t.get(rfd).unwrap().read(&mut buf).unwrap_err().code(),
            libc::EAGAIN
        );
        drop(child.close(wfd).unwrap());
        assert_eq!(t.get(rfd).unwrap().read(&mut buf).unwrap(), 0);
    }
}
