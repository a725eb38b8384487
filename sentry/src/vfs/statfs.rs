//! `statfs(2)`: the x86-64 `struct statfs` of each mount, with the
//! filesystem magic numbers programs test (`PROC_SUPER_MAGIC` for `/proc`,
//! `TMPFS_MAGIC` for `/dev` and `/dev/shm`, `OVERLAYFS_SUPER_MAGIC` for
//! the root). Linux: include/uapi/linux/magic.h. The sizes are plausible
//! fixed numbers: the overlay lives in memory and has no blocks to count.

use std::sync::Arc;

use crate::errno::SysResult;
use crate::vfs::file::{FileDescription, FileKind};
use crate::vfs::location::Location;
use crate::vfs::ops::At;
use crate::vfs::proc::ProcSource;
use crate::vfs::{FsContext, Vfs};

/// Size of `struct statfs`.
pub const STATFS_SIZE: usize = 120;

pub const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;
pub const TMPFS_MAGIC: u64 = 0x0102_1994;
pub const PROC_SUPER_MAGIC: u64 = 0x9fa0;
pub const PIPEFS_MAGIC: u64 = 0x5049_5045;
pub const SOCKFS_MAGIC: u64 = 0x534f_434b;
pub const ANON_INODE_FS_MAGIC: u64 = 0x0904_1934;

/// `struct statfs` for a filesystem of type `magic`; `space` is (used,
/// limit) in bytes for filesystems that hold data.
pub fn statfs_bytes(magic: u64, space: Option<(u64, u64)>) -> [u8; STATFS_SIZE] {
    let mut b = [0u8; STATFS_SIZE];
    let mut put = |i: usize, v: u64| b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    put(0, magic); // f_type
    put(1, 4096); // f_bsize
    if let Some((used, limit)) = space {
        let free = limit.saturating_sub(used) / 4096;
        put(2, limit / 4096); // f_blocks
        put(3, free); // f_bfree
        put(4, free); // f_bavail
        put(5, 1 << 20); // f_files
        put(6, 1 << 19); // f_ffree
    }
    // f_fsid (slot 7) stays 0, like most Linux filesystems report it.
    put(8, 255); // f_namelen
    put(9, 4096); // f_frsize
    b
}

impl Location {
    /// The magic number of the filesystem this location is on.
    pub fn fs_magic(&self, vfs: &Vfs) -> u64 {
        match self {
            Location::Overlay(n) if Arc::ptr_eq(n, vfs.shm()) => TMPFS_MAGIC,
            Location::Overlay(n) if vfs.is_under_shm(n) => TMPFS_MAGIC,
            Location::Overlay(_) => OVERLAYFS_SUPER_MAGIC,
            Location::Dev(_) => TMPFS_MAGIC,
            Location::Proc(_) => PROC_SUPER_MAGIC,
            Location::File(f) => f.fs_magic(vfs),
        }
    }
}

impl FileDescription {
    /// The magic number of the filesystem this file is on (`fstatfs`).
    pub fn fs_magic(&self, vfs: &Vfs) -> u64 {
        if let Some(loc) = self.location() {
            return loc.fs_magic(vfs);
        }
        match self.kind() {
            FileKind::Pipe(_) => PIPEFS_MAGIC,
            FileKind::Socket(_) => SOCKFS_MAGIC,
            FileKind::EventFd(_) | FileKind::Epoll(_) => ANON_INODE_FS_MAGIC,
            // Host stdio: what the guest sees of it is a terminal or pipe.
            _ => TMPFS_MAGIC,
        }
    }
}

impl Vfs {
    /// `statfs(2)` of `path` (following symlinks).
    pub fn statfs(
        &self,
        ctx: &FsContext,
        path: &[u8],
        src: &dyn ProcSource,
    ) -> SysResult<[u8; STATFS_SIZE]> {
        let loc = self.lookup(ctx, At::Cwd, path, true, src)?;
        Ok(self.statfs_of(loc.fs_magic(self)))
    }

    /// `fstatfs(2)`.
    pub fn fstatfs(&self, f: &FileDescription) -> [u8; STATFS_SIZE] {
        self.statfs_of(f.fs_magic(self))
    }

    /// The overlay and the tmpfs mounts share the overlay's budget.
    fn statfs_of(&self, magic: u64) -> [u8; STATFS_SIZE] {
        let b = self.overlay().budget();
        let space =
            (magic == OVERLAYFS_SUPER_MAGIC || magic == TMPFS_MAGIC).then(|| (b.used(), b.limit()));
        statfs_bytes(magic, space)
    }

    /// Whether `n` is below `/dev/shm`.
    fn is_under_shm(&self, n: &Arc<crate::vfs::overlay::Node>) -> bool {
        let mut cur = n.parent();
        while let Some(p) = cur {
            if Arc::ptr_eq(&p, self.shm()) {
                return true;
            }
            cur = p.parent();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_is_the_first_field_and_namelen_the_ninth() {
        let b = statfs_bytes(PROC_SUPER_MAGIC, None);
        assert_eq!(u64::from_le_bytes(b[0..8].try_into().unwrap()), 0x9fa0);
        assert_eq!(u64::from_le_bytes(b[64..72].try_into().unwrap()), 255);
        assert_eq!(std::mem::size_of::<libc::statfs>(), STATFS_SIZE);
    }
}
