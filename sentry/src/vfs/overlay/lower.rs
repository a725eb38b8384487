//! The overlay's lower layer: a host directory, read-only, reached only
//! beneath an fd of the sandbox root.
//!
//! Every host access starts from `root_fd` with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, or, on kernels without
//! `openat2`, component by component with `openat(O_NOFOLLOW | O_PATH)`.
//! Paths handed to this module are relative, made of components the
//! sentry's own resolver produced (never `.`/`..`, never containing `/`),
//! and the host kernel refuses anything that would leave the root anyway:
//! symlinks are never followed by the host, the sentry resolves them
//! itself against the *sandbox* root.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use checkpoints::Stateify;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno as HostErrno;

use crate::errno::{Errno, SysResult};
use crate::vfs::stat::{FileType, Stat};

/// The host directory under the overlay.
#[derive(Debug, Stateify)]
#[state(after_load = "reopen")]
pub struct HostRoot {
    /// The host path given as `--root` (kept to reopen after restore).
    path: PathBuf,
    /// `O_PATH | O_DIRECTORY` fd of `path`; every lookup starts here.
    /// Host-only: not saved; `reopen` (after_load) opens `path` again.
    /// Empty only if that failed: every lower access is then `EIO`.
    #[state(nosave)]
    fd: OnceLock<OwnedFd>,
}

/// One entry of a lower directory listing.
#[derive(Clone, Debug)]
pub struct LowerEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub ftype: Option<FileType>,
}

/// Maps a host errno met while reading the lower layer to the guest errno.
pub(crate) fn host_errno(e: HostErrno) -> Errno {
    Errno::new(e.raw_os_error())
}

impl HostRoot {
    /// Opens `path` as the lower layer's root.
    pub fn open(path: &Path) -> std::io::Result<HostRoot> {
        let fd = OnceLock::new();
        let _ = fd.set(Self::open_root(path)?);
        Ok(HostRoot {
            path: path.to_path_buf(),
            fd,
        })
    }

    fn open_root(path: &Path) -> std::io::Result<OwnedFd> {
        Ok(rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// after_load: reopens the root directory by its saved path. Lower
    /// files themselves are reopened lazily by [`super::Node`], which
    /// checks their size and mtime against the saved ones.
    fn reopen(&self) {
        match Self::open_root(&self.path) {
            Ok(fd) => {
                let _ = self.fd.set(fd);
            }
            Err(e) => tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "restore: cannot reopen the root directory; lower files read as EIO"
            ),
        }
    }

    fn fd(&self) -> SysResult<&OwnedFd> {
        self.fd
            .get()
            .ok_or(Errno::EIO.because("root directory not reopened after restore"))
    }

    /// The host path of the root (for diagnostics and restore).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` (relative, `/`-separated sentry components; empty means
    /// the root itself) with `flags`, never following a symlink and never
    /// leaving the root.
    pub fn open_beneath(&self, rel: &[u8], flags: OFlags) -> SysResult<OwnedFd> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let path: &[u8] = if rel.is_empty() { b"." } else { rel };
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(self.fd()?, path, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(fd),
            Err(HostErrno::NOSYS) => self.open_stepwise(rel, flags),
            Err(e) => Err(host_errno(e)),
        }
    }

    /// The `openat2`-less path: one `openat(O_PATH | O_NOFOLLOW)` per
    /// component. A symlink met on the way is an error (`O_PATH |
    /// O_NOFOLLOW | O_DIRECTORY` fails with ENOTDIR on it).
    fn open_stepwise(&self, rel: &[u8], flags: OFlags) -> SysResult<OwnedFd> {
        let comps: Vec<&[u8]> = rel
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let root = self.fd()?;
        let mut dir = rustix::io::dup(root).map_err(host_errno)?;
        let Some((last, parents)) = comps.split_last() else {
            return rustix::fs::openat(root, ".", flags, Mode::empty()).map_err(host_errno);
        };
        for c in parents {
            if *c == b".." || *c == b"." {
                return Err(Errno::EPERM.because("dot component in lower path"));
            }
            dir = rustix::fs::openat(
                &dir,
                *c,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(host_errno)?;
        }
        if *last == b".." || *last == b"." {
            return Err(Errno::EPERM.because("dot component in lower path"));
        }
        rustix::fs::openat(&dir, *last, flags, Mode::empty()).map_err(host_errno)
    }

    /// `lstat` of `rel`.
    pub fn lstat(&self, rel: &[u8]) -> SysResult<Stat> {
        let fd = self.open_beneath(rel, OFlags::PATH)?;
        let st = rustix::fs::fstat(&fd).map_err(host_errno)?;
        Ok(Stat::from_host(&st))
    }

    /// The target of the symlink `rel`.
    pub fn readlink(&self, rel: &[u8]) -> SysResult<Vec<u8>> {
        let fd = self.open_beneath(rel, OFlags::PATH)?;
        let target = rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(host_errno)?;
        Ok(target.into_bytes())
    }

    /// Opens the regular file `rel` read-only.
    pub fn open_file(&self, rel: &[u8]) -> SysResult<File> {
        let fd = self.open_beneath(rel, OFlags::RDONLY)?;
        Ok(File::from(fd))
    }

    /// Lists the directory `rel` (without `.` and `..`).
    pub fn list(&self, rel: &[u8]) -> SysResult<Vec<LowerEntry>> {
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut dir = rustix::fs::Dir::read_from(fd.as_fd()).map_err(host_errno)?;
        let mut out = Vec::new();
        while let Some(ent) = dir.read() {
            let ent = ent.map_err(host_errno)?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let ftype = match ent.file_type() {
                rustix::fs::FileType::RegularFile => Some(FileType::Regular),
                rustix::fs::FileType::Directory => Some(FileType::Directory),
                rustix::fs::FileType::Symlink => Some(FileType::Symlink),
                rustix::fs::FileType::Fifo => Some(FileType::Fifo),
                rustix::fs::FileType::Socket => Some(FileType::Socket),
                rustix::fs::FileType::CharacterDevice => Some(FileType::CharDevice),
                rustix::fs::FileType::BlockDevice => Some(FileType::BlockDevice),
                rustix::fs::FileType::Unknown => None,
            };
            out.push(LowerEntry {
                name: name.to_vec(),
                ino: ent.ino(),
                ftype,
            });
        }
        Ok(out)
    }
}

/// Joins a lower directory path and a child name.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_symlink_is_never_followed_by_the_host() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"host secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("l")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("d")).unwrap();
        let hr = HostRoot::open(root.path()).unwrap();
        assert!(hr.open_file(b"l").is_err());
        assert!(hr.open_file(b"d/secret").is_err());
        assert!(hr.open_stepwise(b"d/secret", OFlags::RDONLY).is_err());
        assert!(hr.open_file(b"../secret").is_err());
        assert_eq!(hr.lstat(b"l").unwrap().file_type(), Some(FileType::Symlink));
    }
}
