//! Advisory file locks: `flock(2)` locks (owned by an open file
//! description), POSIX record locks (`fcntl(F_SETLK)`, owned by a process)
//! and open-file-description record locks (`F_OFD_SETLK`). Linux:
//! fs/locks.c.
//!
//! The lock table lives in the inode (the overlay [`super::overlay::Node`]),
//! so every description of the file sees it. Nothing blocks: a conflicting
//! request returns `EAGAIN`; `flock` without `LOCK_NB` and `F_SETLKW` wait
//! on [`FileLocks::queue`], which every release notifies, and retry.
//! Deadlock detection (`EDEADLK`) is not implemented.

use std::sync::{Mutex, MutexGuard};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::waiter::{WaitQueue, EVENT_ALL};

/// Who owns a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum LockOwner {
    /// POSIX record locks: the thread group (pid in the sandbox).
    Process(i32),
    /// `flock` and OFD locks: the open file description (its id).
    Description(u64),
}

/// Read (shared) or write (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum LockKind {
    Read,
    Write,
}

impl LockKind {
    fn conflicts(self, other: LockKind) -> bool {
        self == LockKind::Write || other == LockKind::Write
    }
}

/// A byte-range lock; `end` is inclusive (`u64::MAX`: to end of file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub struct RangeLock {
    pub owner: LockOwner,
    pub kind: LockKind,
    pub start: u64,
    pub end: u64,
}

/// A parsed `struct flock` (x86-64: 32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlockRecord {
    pub l_type: i16,
    pub l_whence: i16,
    pub l_start: i64,
    pub l_len: i64,
    pub l_pid: i32,
}

/// Size of `struct flock`.
pub const FLOCK_SIZE: usize = 32;

impl FlockRecord {
    /// Parses the guest's `struct flock`.
    pub fn from_bytes(b: &[u8; FLOCK_SIZE]) -> FlockRecord {
        let i64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            i64::from_le_bytes(x)
        };
        FlockRecord {
            l_type: i16::from_le_bytes([b[0], b[1]]),
            l_whence: i16::from_le_bytes([b[2], b[3]]),
            l_start: i64_at(8),
            l_len: i64_at(16),
            l_pid: i32::from_le_bytes([b[24], b[25], b[26], b[27]]),
        }
    }

    /// The guest's `struct flock` bytes.
    pub fn to_bytes(&self) -> [u8; FLOCK_SIZE] {
        let mut b = [0u8; FLOCK_SIZE];
        b[0..2].copy_from_slice(&self.l_type.to_le_bytes());
        b[2..4].copy_from_slice(&self.l_whence.to_le_bytes());
        b[8..16].copy_from_slice(&self.l_start.to_le_bytes());
        b[16..24].copy_from_slice(&self.l_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.l_pid.to_le_bytes());
        b
    }

    /// The absolute inclusive range, given the description's offset and
    /// the file size for `SEEK_CUR`/`SEEK_END`. Linux: `flock_to_posix_lock`.
    pub fn range(&self, offset: u64, size: u64) -> SysResult<(u64, u64)> {
        let base: i64 = match i32::from(self.l_whence) {
            libc::SEEK_SET => 0,
            libc::SEEK_CUR => offset as i64,
            libc::SEEK_END => size as i64,
            _ => return Err(Errno::EINVAL.because("bad l_whence")),
        };
        let start = base.checked_add(self.l_start).ok_or(Errno::EOVERFLOW)?;
        let (start, end) = match self.l_len {
            0 => (start, i64::MAX),
            len if len > 0 => (start, start.checked_add(len - 1).ok_or(Errno::EOVERFLOW)?),
            len => (start.checked_add(len).ok_or(Errno::EOVERFLOW)?, start - 1),
        };
        if start < 0 || end < start {
            return Err(Errno::EINVAL.because("lock range before offset 0"));
        }
        let end = if end == i64::MAX {
            u64::MAX
        } else {
            end as u64
        };
        Ok((start as u64, end))
    }
}

/// The locks of one file.
#[derive(Debug, Default, Stateify)]
pub struct FileLocks {
    state: Mutex<LockTable>,
    /// Waiters for a release. Host synchronization: not saved (waiters
    /// re-register after restore).
    #[state(nosave)]
    queue: WaitQueue,
}

#[derive(Debug, Default, Stateify)]
struct LockTable {
    ranges: Vec<RangeLock>,
    /// `flock` locks: (description id, kind).
    flocks: Vec<(u64, LockKind)>,
}

fn overlaps(a: &RangeLock, start: u64, end: u64) -> bool {
    a.start <= end && start <= a.end
}

impl FileLocks {
    fn lock(&self) -> MutexGuard<'_, LockTable> {
        // Poisoning: every critical section leaves the table consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue to wait on for a blocking lock request.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// `flock(2)` for description `desc`: `kind` `None` unlocks.
    pub fn flock(&self, desc: u64, kind: Option<LockKind>) -> SysResult<()> {
        let mut t = self.lock();
        let Some(kind) = kind else {
            t.flocks.retain(|(d, _)| *d != desc);
            drop(t);
            self.queue.notify(EVENT_ALL);
            return Ok(());
        };
        if t.flocks
            .iter()
            .any(|(d, k)| *d != desc && k.conflicts(kind))
        {
            return Err(Errno::EAGAIN);
        }
        let had = t.flocks.iter().position(|(d, _)| *d == desc);
        match had {
            Some(i) => t.flocks[i].1 = kind,
            None => t.flocks.push((desc, kind)),
        }
        drop(t);
        // A downgrade (exclusive → shared) may let others in.
        self.queue.notify(EVENT_ALL);
        Ok(())
    }

    /// The first lock of another owner conflicting with the request.
    pub fn conflict(
        &self,
        owner: LockOwner,
        kind: LockKind,
        start: u64,
        end: u64,
    ) -> Option<RangeLock> {
        self.lock()
            .ranges
            .iter()
            .find(|l| l.owner != owner && overlaps(l, start, end) && l.kind.conflicts(kind))
            .copied()
    }

    /// Sets (or with `kind == None`, clears) `owner`'s lock on
    /// `[start, end]`, splitting or replacing its existing locks there.
    /// `EAGAIN` if another owner holds a conflicting lock.
    pub fn set_range(
        &self,
        owner: LockOwner,
        kind: Option<LockKind>,
        start: u64,
        end: u64,
    ) -> SysResult<()> {
        let mut t = self.lock();
        if let Some(k) = kind {
            if t.ranges
                .iter()
                .any(|l| l.owner != owner && overlaps(l, start, end) && l.kind.conflicts(k))
            {
                return Err(Errno::EAGAIN);
            }
        }
        let mut kept = Vec::with_capacity(t.ranges.len() + 2);
        for l in t.ranges.drain(..) {
            if l.owner != owner || !overlaps(&l, start, end) {
                kept.push(l);
                continue;
            }
            if l.start < start {
                kept.push(RangeLock {
                    end: start - 1,
                    ..l
                });
            }
            if l.end > end {
                kept.push(RangeLock {
                    start: end + 1,
                    ..l
                });
            }
        }
        if let Some(kind) = kind {
            kept.push(RangeLock {
                owner,
                kind,
                start,
                end,
            });
        }
        t.ranges = kept;
        drop(t);
        self.queue.notify(EVENT_ALL);
        Ok(())
    }

    /// Drops every lock of `owner` (a process closing any fd of the file,
    /// or a description going away); also its `flock` lock for
    /// descriptions.
    pub fn release(&self, owner: LockOwner) {
        let mut t = self.lock();
        let before = t.ranges.len() + t.flocks.len();
        t.ranges.retain(|l| l.owner != owner);
        if let LockOwner::Description(d) = owner {
            t.flocks.retain(|(x, _)| *x != d);
        }
        let changed = before != t.ranges.len() + t.flocks.len();
        drop(t);
        if changed {
            self.queue.notify(EVENT_ALL);
        }
    }

    /// The locks held (for `/proc/locks` and tests).
    pub fn ranges(&self) -> Vec<RangeLock> {
        self.lock().ranges.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: LockOwner = LockOwner::Process(10);
    const B: LockOwner = LockOwner::Process(20);

    #[test]
    fn read_locks_share_write_locks_exclude() {
        let l = FileLocks::default();
        l.set_range(A, Some(LockKind::Read), 0, 99).unwrap();
        l.set_range(B, Some(LockKind::Read), 50, 149).unwrap();
        assert_eq!(
            l.set_range(B, Some(LockKind::Write), 0, 9)
                .unwrap_err()
                .code(),
            libc::EAGAIN
        );
        l.set_range(B, Some(LockKind::Write), 100, 199).unwrap();
        let c = l.conflict(A, LockKind::Write, 120, 120).unwrap();
        assert_eq!((c.owner, c.start), (B, 100));
    }

    #[test]
    fn unlocking_the_middle_splits_a_lock() {
        let l = FileLocks::default();
        l.set_range(A, Some(LockKind::Write), 0, 99).unwrap();
        l.set_range(A, None, 40, 59).unwrap();
        let mut r: Vec<(u64, u64)> = l.ranges().iter().map(|x| (x.start, x.end)).collect();
        r.sort();
        assert_eq!(r, vec![(0, 39), (60, 99)]);
        l.set_range(B, Some(LockKind::Write), 45, 55).unwrap();
    }

    #[test]
    fn an_owner_converts_its_own_lock_without_conflict() {
        let l = FileLocks::default();
        l.set_range(A, Some(LockKind::Read), 0, u64::MAX).unwrap();
        l.set_range(A, Some(LockKind::Write), 10, 20).unwrap();
        assert_eq!(l.ranges().len(), 3);
        l.release(A);
        assert!(l.ranges().is_empty());
    }

    #[test]
    fn flock_exclusive_excludes_other_descriptions_until_unlock() {
        let l = FileLocks::default();
        l.flock(1, Some(LockKind::Write)).unwrap();
        assert_eq!(
            l.flock(2, Some(LockKind::Read)).unwrap_err().code(),
            libc::EAGAIN
        );
        l.flock(1, Some(LockKind::Read)).unwrap();
        l.flock(2, Some(LockKind::Read)).unwrap();
        l.release(LockOwner::Description(1));
        assert_eq!(
            l.flock(3, Some(LockKind::Write)).unwrap_err().code(),
            libc::EAGAIN
        );
        l.flock(2, None).unwrap();
        l.flock(3, Some(LockKind::Write)).unwrap();
    }

    #[test]
    fn flock_record_ranges_follow_whence_and_negative_lengths() {
        let r = |whence: i32, start: i64, len: i64| FlockRecord {
            l_type: libc::F_WRLCK as i16,
            l_whence: whence as i16,
            l_start: start,
            l_len: len,
            l_pid: 0,
        };
        assert_eq!(r(libc::SEEK_SET, 10, 5).range(0, 0).unwrap(), (10, 14));
        assert_eq!(r(libc::SEEK_CUR, 0, 0).range(7, 0).unwrap(), (7, u64::MAX));
        assert_eq!(r(libc::SEEK_END, -4, 4).range(0, 100).unwrap(), (96, 99));
        assert_eq!(r(libc::SEEK_SET, 10, -5).range(0, 0).unwrap(), (5, 9));
        assert_eq!(
            r(libc::SEEK_SET, 2, -5).range(0, 0).unwrap_err().code(),
            libc::EINVAL
        );
        let b = r(libc::SEEK_SET, 1, 2).to_bytes();
        assert_eq!(FlockRecord::from_bytes(&b), r(libc::SEEK_SET, 1, 2));
    }
}
