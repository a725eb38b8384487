//! Open file descriptions (Linux `struct file`): what an fd refers to,
//! with its offset and status flags. Shared between fds by dup and fork.
//!
//! Nothing here blocks: a read or write that would block returns `EAGAIN`,
//! and the kernel waits on [`FileDescription::wait_queue`] (register, then
//! re-check [`FileDescription::readiness`], then sleep), unless the
//! description has `O_NONBLOCK`, in which case `EAGAIN` is the answer.
//!
//! Lock order: `offset` → `dir_snapshot` → the file's own locks (node,
//! pipe). `flags` is never held while taking another lock.

use std::sync::{Arc, Mutex, MutexGuard};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::dev::{DevKind, DevNode};
use crate::vfs::epoll::Epoll;
use crate::vfs::eventfd::{EventFd, EFD_SEMAPHORE};
use crate::vfs::host::{HostFile, HostFileKind, IoctlOutcome};
use crate::vfs::location::Location;
use crate::vfs::lock::{FileLocks, FlockRecord, LockKind, LockOwner};
use crate::vfs::mapped::MappedFile;
use crate::vfs::overlay::{DirEntry, Node};
use crate::vfs::pipe::{PipeEnd, PIPEFS_DEV};
use crate::vfs::proc::{ProcNode, ProcSource};
use crate::vfs::stat::{FileType, Stat};
use crate::vfs::unix::{SockType, SocketEnd, UnixSocket};
use crate::waiter::{EventMask, WaitQueue, EVENT_IN, EVENT_OUT};

/// Status flags `F_SETFL` may change. Linux: fs/fcntl.c `SETFL_MASK`.
pub const SETFL_MASK: u32 =
    (libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME) as u32;

/// What a file description refers to.
#[derive(Debug, Stateify)]
pub enum FileKind {
    /// A regular file of the overlay.
    Regular(Arc<Node>),
    /// A directory of any mount; `parent_ino` is reported for `..`.
    Directory { loc: Location, parent_ino: u64 },
    /// An `O_PATH` description: no I/O, only a place.
    Path(Location),
    /// A pipe end.
    Pipe(PipeEnd),
    /// A memory device of `/dev`.
    Device(DevKind),
    /// A host file passed through (stdio, `/dev/tty`).
    Host(Arc<HostFile>),
    /// A `/proc` file; its contents were generated at open.
    Proc { node: ProcNode, data: Vec<u8> },
    /// An eventfd counter.
    EventFd(Arc<EventFd>),
    /// An epoll instance.
    Epoll(Arc<Epoll>),
    /// A Unix domain socket.
    Socket(SocketEnd),
}

/// The device number sockets report (`sockfs`).
pub const SOCKFS_DEV: u64 = 0x08;

fn socket_ino(s: &Arc<UnixSocket>) -> u64 {
    s.ino()
}

/// The device number of anonymous inodes (eventfd, epoll).
pub const ANON_INODE_DEV: u64 = 0x0e;

static NEXT_DESCRIPTION_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// An open file description.
#[derive(Debug, Stateify)]
#[state(after_load = "reserve_id")]
pub struct FileDescription {
    /// Identity as a lock owner (`flock`, OFD locks); immutable.
    id: u64,
    kind: FileKind,
    /// Access mode and status flags (`O_ACCMODE`, `O_APPEND`,
    /// `O_NONBLOCK`, ...; creation flags and `O_CLOEXEC` removed).
    flags: Mutex<u32>,
    /// File offset; held across a whole read/write/getdents like Linux's
    /// `f_pos_lock`.
    offset: Mutex<u64>,
    /// The sandbox path this was opened by (for `/proc/<pid>/fd`, maps).
    path: Vec<u8>,
    /// Directory listing taken at the first `getdents64` after open or a
    /// rewind, so offsets stay stable while the listing continues.
    dir_snapshot: Mutex<Option<Vec<DirEntry>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning: every critical section leaves the data consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Size of a `linux_dirent64` record for a name of `len` bytes.
fn dirent_reclen(len: usize) -> usize {
    (19 + len + 1).div_ceil(8) * 8
}

impl FileDescription {
    /// A new description. `flags` are the `open(2)` flags; creation flags
    /// and `O_CLOEXEC` are dropped, `O_LARGEFILE` is added as Linux does
    /// on 64-bit.
    pub fn new(kind: FileKind, flags: u32, path: Vec<u8>) -> Arc<FileDescription> {
        let drop_mask =
            (libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_TRUNC | libc::O_CLOEXEC)
                as u32;
        Arc::new(FileDescription {
            id: NEXT_DESCRIPTION_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            kind,
            flags: Mutex::new((flags & !drop_mask) | libc::O_LARGEFILE as u32),
            offset: Mutex::new(0),
            path,
            dir_snapshot: Mutex::new(None),
        })
    }

    /// The pair of descriptions of a new pipe (`pipe2(2)`); `flags` may
    /// hold `O_NONBLOCK` (and `O_CLOEXEC`, which is the fd table's).
    pub fn new_pipe(flags: u32) -> (Arc<FileDescription>, Arc<FileDescription>) {
        let (r, w) = crate::vfs::pipe::Pipe::new_pair();
        let nb = flags & libc::O_NONBLOCK as u32;
        let ino = r.pipe().ino();
        let name = format!("pipe:[{ino}]").into_bytes();
        (
            FileDescription::new(FileKind::Pipe(r), libc::O_RDONLY as u32 | nb, name.clone()),
            FileDescription::new(FileKind::Pipe(w), libc::O_WRONLY as u32 | nb, name),
        )
    }

    /// `eventfd2(2)`: `flags` may hold `EFD_SEMAPHORE` and `EFD_NONBLOCK`
    /// (= `O_NONBLOCK`; `EFD_CLOEXEC` is the fd table's).
    pub fn new_eventfd(initval: u32, flags: u32) -> Arc<FileDescription> {
        let e = EventFd::new(initval, flags & EFD_SEMAPHORE != 0);
        let nb = flags & libc::O_NONBLOCK as u32;
        FileDescription::new(
            FileKind::EventFd(Arc::new(e)),
            libc::O_RDWR as u32 | nb,
            b"anon_inode:[eventfd]".to_vec(),
        )
    }

    /// `epoll_create1(2)`.
    pub fn new_epoll() -> Arc<FileDescription> {
        FileDescription::new(
            FileKind::Epoll(Arc::new(Epoll::new())),
            libc::O_RDWR as u32,
            b"anon_inode:[eventpoll]".to_vec(),
        )
    }

    /// A description of the Unix socket `sock`; `flags` may hold
    /// `O_NONBLOCK` (`SOCK_NONBLOCK`).
    pub fn new_socket(sock: Arc<UnixSocket>, flags: u32) -> Arc<FileDescription> {
        let nb = flags & libc::O_NONBLOCK as u32;
        FileDescription::new(
            FileKind::Socket(SocketEnd::new(sock)),
            libc::O_RDWR as u32 | nb,
            Vec::new(),
        )
    }

    /// `socket(AF_UNIX, type, 0)`.
    pub fn new_unix_socket(stype: SockType, flags: u32) -> Arc<FileDescription> {
        FileDescription::new_socket(UnixSocket::new(stype), flags)
    }

    /// `socketpair(AF_UNIX, type, 0)`.
    pub fn new_unix_pair(
        stype: SockType,
        flags: u32,
    ) -> (Arc<FileDescription>, Arc<FileDescription>) {
        let (a, b) = UnixSocket::pair(stype);
        (
            FileDescription::new_socket(a, flags),
            FileDescription::new_socket(b, flags),
        )
    }

    /// The socket; `ENOTSOCK` for other files.
    pub fn socket(&self) -> SysResult<&Arc<UnixSocket>> {
        match &self.kind {
            FileKind::Socket(s) => Ok(s.socket()),
            _ => Err(Errno::ENOTSOCK),
        }
    }

    /// The epoll instance, if this is one.
    pub fn epoll(&self) -> Option<&Arc<Epoll>> {
        match &self.kind {
            FileKind::Epoll(e) => Some(e),
            _ => None,
        }
    }

    /// Descriptions of the sentry's own stdio, for the guest's fds 0-2.
    pub fn host_stdio(n: i32) -> SysResult<Arc<FileDescription>> {
        let f = HostFile::stdio(n)?;
        let acc = f.access_mode();
        Ok(FileDescription::new(FileKind::Host(f), acc, Vec::new()))
    }

    /// after_load: new descriptions must not reuse a restored id.
    fn reserve_id(&self) {
        NEXT_DESCRIPTION_ID.fetch_max(self.id + 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The description's identity (owner of its `flock`/OFD locks).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The lock table of the file (overlay files and directories);
    /// `None` for files whose locks always succeed (pipes, devices, ...).
    pub fn locks(&self) -> Option<&FileLocks> {
        match &self.kind {
            FileKind::Regular(n) => Some(&n.locks),
            FileKind::Directory {
                loc: Location::Overlay(n),
                ..
            } => Some(&n.locks),
            _ => None,
        }
    }

    /// The queue a blocking `flock`/`F_SETLKW` waits on.
    pub fn lock_queue(&self) -> Option<&WaitQueue> {
        self.locks().map(FileLocks::queue)
    }

    /// `flock(2)`: `op` is `LOCK_SH`, `LOCK_EX` or `LOCK_UN` (`LOCK_NB`
    /// is the caller's: `EAGAIN` means "would block").
    pub fn flock(&self, op: i32) -> SysResult<()> {
        let kind = match op & !libc::LOCK_NB {
            libc::LOCK_SH => Some(LockKind::Read),
            libc::LOCK_EX => Some(LockKind::Write),
            libc::LOCK_UN => None,
            _ => return Err(Errno::EINVAL.because("bad flock operation")),
        };
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        match self.locks() {
            Some(l) => l.flock(self.id, kind),
            None => Ok(()),
        }
    }

    fn lock_range(&self, rec: &FlockRecord) -> SysResult<(u64, u64)> {
        let size = match &self.kind {
            FileKind::Regular(n) => n.size(),
            _ => 0,
        };
        rec.range(*lock(&self.offset), size)
    }

    /// `F_SETLK`/`F_OFD_SETLK` (`owner`: the process, or
    /// `LockOwner::Description(self.id())` for OFD locks). `EAGAIN` on a
    /// conflict (`F_SETLKW` waits on [`FileDescription::lock_queue`]).
    pub fn setlk(&self, owner: LockOwner, rec: &FlockRecord) -> SysResult<()> {
        let kind = match i32::from(rec.l_type) {
            libc::F_RDLCK if !self.is_readable() => return Err(Errno::EBADF),
            libc::F_WRLCK if !self.is_writable() => return Err(Errno::EBADF),
            libc::F_RDLCK => Some(LockKind::Read),
            libc::F_WRLCK => Some(LockKind::Write),
            libc::F_UNLCK => None,
            _ => return Err(Errno::EINVAL.because("bad l_type")),
        };
        let (start, end) = self.lock_range(rec)?;
        match self.locks() {
            Some(l) => l.set_range(owner, kind, start, end),
            None => Ok(()),
        }
    }

    /// `F_GETLK`/`F_OFD_GETLK`: the first conflicting lock, or the request
    /// with `l_type = F_UNLCK`.
    pub fn getlk(&self, owner: LockOwner, rec: &FlockRecord) -> SysResult<FlockRecord> {
        let kind = match i32::from(rec.l_type) {
            libc::F_RDLCK => LockKind::Read,
            libc::F_WRLCK => LockKind::Write,
            _ => return Err(Errno::EINVAL.because("bad l_type for F_GETLK")),
        };
        let (start, end) = self.lock_range(rec)?;
        let found = self
            .locks()
            .and_then(|l| l.conflict(owner, kind, start, end));
        Ok(match found {
            None => FlockRecord {
                l_type: libc::F_UNLCK as i16,
                ..*rec
            },
            Some(c) => FlockRecord {
                l_type: match c.kind {
                    LockKind::Read => libc::F_RDLCK as i16,
                    LockKind::Write => libc::F_WRLCK as i16,
                },
                l_whence: libc::SEEK_SET as i16,
                l_start: c.start as i64,
                l_len: if c.end == u64::MAX {
                    0
                } else {
                    (c.end - c.start + 1) as i64
                },
                l_pid: match c.owner {
                    LockOwner::Process(p) => p,
                    LockOwner::Description(_) => -1,
                },
            },
        })
    }

    /// Drops process `pid`'s POSIX locks on this file: Linux releases
    /// them when the process closes *any* fd of the file (and at exit).
    pub fn release_posix_locks(&self, pid: i32) {
        if let Some(l) = self.locks() {
            l.release(LockOwner::Process(pid));
        }
    }

    /// What this description refers to.
    pub fn kind(&self) -> &FileKind {
        &self.kind
    }

    /// `F_GETFL`.
    pub fn status_flags(&self) -> u32 {
        *lock(&self.flags)
    }

    /// `F_SETFL`: changes only the bits in [`SETFL_MASK`].
    pub fn set_status_flags(&self, new: u32) {
        let mut f = lock(&self.flags);
        *f = (*f & !SETFL_MASK) | (new & SETFL_MASK);
    }

    /// The type of the file (for `Location::File` and `S_IFMT`).
    pub fn file_type(&self) -> FileType {
        match &self.kind {
            FileKind::Regular(_) => FileType::Regular,
            FileKind::Directory { .. } => FileType::Directory,
            FileKind::Path(loc) => loc.file_type(),
            FileKind::Pipe(_) => FileType::Fifo,
            // Anonymous inodes have no type bits; callers only need
            // "not a directory, not a symlink".
            FileKind::EventFd(_) | FileKind::Epoll(_) => FileType::Regular,
            FileKind::Socket(_) => FileType::Socket,
            FileKind::Device(_) => FileType::CharDevice,
            FileKind::Proc { node, .. } => node.file_type(),
            FileKind::Host(h) => h
                .fstat()
                .ok()
                .and_then(|st| st.file_type())
                .unwrap_or(FileType::CharDevice),
        }
    }

    /// A new description of the same open file, for an `open` through a
    /// `/proc/<pid>/fd` magic link of a file without a path (Linux reopens
    /// the inode: a pipe gets a new end of the requested direction).
    pub fn reopen(&self, flags: u32) -> SysResult<Arc<FileDescription>> {
        let acc = flags & libc::O_ACCMODE as u32;
        let kind = match &self.kind {
            FileKind::Pipe(end) => {
                let write = if acc == libc::O_RDONLY as u32 {
                    false
                } else if acc == libc::O_WRONLY as u32 {
                    true
                } else {
                    return Err(Errno::EINVAL.because("O_RDWR reopen of a pipe"));
                };
                FileKind::Pipe(end.reopen(write))
            }
            FileKind::Host(h) => FileKind::Host(h.clone()),
            _ => return Err(Errno::ENXIO.because("reopen of a file with a path")),
        };
        Ok(FileDescription::new(kind, flags, self.proc_target()))
    }

    /// After `open` of a FIFO without `O_NONBLOCK`: whether the opener
    /// must still wait for the other side (the kernel blocks on
    /// `wait_queue()` until this is false, and on a signal drops the
    /// description and restarts the open).
    pub fn waiting_for_partner(&self) -> bool {
        match &self.kind {
            FileKind::Pipe(p) => p.fifo_node().is_some() && p.waiting_for_partner(),
            _ => false,
        }
    }

    /// Whether `O_NONBLOCK` is set.
    pub fn is_nonblocking(&self) -> bool {
        self.status_flags() & libc::O_NONBLOCK as u32 != 0
    }

    fn is_path_only(&self) -> bool {
        matches!(self.kind, FileKind::Path(_))
    }

    /// Readable by its access mode.
    pub fn is_readable(&self) -> bool {
        let acc = self.status_flags() & libc::O_ACCMODE as u32;
        !self.is_path_only() && (acc == libc::O_RDONLY as u32 || acc == libc::O_RDWR as u32)
    }

    /// Writable by its access mode.
    pub fn is_writable(&self) -> bool {
        let acc = self.status_flags() & libc::O_ACCMODE as u32;
        !self.is_path_only() && (acc == libc::O_WRONLY as u32 || acc == libc::O_RDWR as u32)
    }

    /// The sandbox path it was opened by.
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The place in the tree, for `*at` dirfds, `fchdir` and `AT_EMPTY_PATH`.
    pub fn location(&self) -> Option<Location> {
        match &self.kind {
            FileKind::Regular(n) => Some(Location::Overlay(n.clone())),
            FileKind::Directory { loc, .. } | FileKind::Path(loc) => Some(loc.clone()),
            FileKind::Device(k) => Some(Location::Dev(DevNode::Device(*k))),
            FileKind::Proc { node, .. } => Some(Location::Proc(*node)),
            FileKind::Host(h) if matches!(h.kind(), HostFileKind::Tty { .. }) => {
                Some(Location::Dev(DevNode::Device(DevKind::Tty)))
            }
            FileKind::Pipe(p) if p.fifo_node().is_some() => {
                p.fifo_node().map(|n| Location::Overlay(n.clone()))
            }
            FileKind::Host(_)
            | FileKind::Pipe(_)
            | FileKind::EventFd(_)
            | FileKind::Epoll(_)
            | FileKind::Socket(_) => None,
        }
    }

    /// The `/proc/<pid>/fd/<n>` link target.
    pub fn proc_target(&self) -> Vec<u8> {
        match &self.kind {
            FileKind::Pipe(p) if p.fifo_node().is_some() => self.path.clone(),
            FileKind::Pipe(p) => format!("pipe:[{}]", p.pipe().ino()).into_bytes(),
            FileKind::Socket(s) => format!("socket:[{}]", socket_ino(s.socket())).into_bytes(),
            FileKind::Host(h) => match h.kind() {
                HostFileKind::Tty { .. } => b"/dev/tty".to_vec(),
                HostFileKind::Stdio(n) => std::fs::read_link(format!("/proc/self/fd/{n}"))
                    .map(|p| p.into_os_string().into_encoded_bytes())
                    .unwrap_or_else(|_| format!("host:[{n}]").into_bytes()),
            },
            _ => self.path.clone(),
        }
    }

    /// `read(2)` at the file offset.
    pub fn read(&self, buf: &mut [u8]) -> SysResult<usize> {
        if !self.is_readable() {
            return Err(Errno::EBADF.because("fd not open for reading"));
        }
        match &self.kind {
            FileKind::Pipe(p) => p.read(buf),
            FileKind::EventFd(e) => e.read(buf),
            FileKind::Socket(s) => {
                let got = s.socket().recv(buf.len(), false)?;
                buf[..got.data.len()].copy_from_slice(&got.data);
                Ok(got.data.len())
            }
            FileKind::Epoll(_) => Err(Errno::EINVAL.because("read of an epoll fd")),
            FileKind::Host(h) => h.read(buf),
            FileKind::Device(k) => k.read(buf),
            FileKind::Directory { .. } => Err(Errno::EISDIR),
            _ => {
                let mut off = lock(&self.offset);
                let n = self.read_at_inner(buf, *off)?;
                *off += n as u64;
                Ok(n)
            }
        }
    }

    fn read_at_inner(&self, buf: &mut [u8], off: u64) -> SysResult<usize> {
        match &self.kind {
            FileKind::Regular(n) => n.read_at(off, buf),
            FileKind::Proc { data, .. } => {
                let len = data.len() as u64;
                if off >= len {
                    return Ok(0);
                }
                let n = buf.len().min((len - off) as usize);
                buf[..n].copy_from_slice(&data[off as usize..off as usize + n]);
                Ok(n)
            }
            FileKind::Device(k) => k.read(buf),
            FileKind::Host(h) => h.pread(buf, off),
            FileKind::Directory { .. } => Err(Errno::EISDIR),
            FileKind::Pipe(_) | FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::Socket(_) => {
                Err(Errno::ESPIPE)
            }
            FileKind::Path(_) => Err(Errno::EBADF),
        }
    }

    /// `write(2)` at the file offset (at the end with `O_APPEND`).
    pub fn write(&self, buf: &[u8]) -> SysResult<usize> {
        if !self.is_writable() {
            return Err(Errno::EBADF.because("fd not open for writing"));
        }
        match &self.kind {
            FileKind::Pipe(p) => p.write(buf),
            FileKind::EventFd(e) => e.write(buf),
            FileKind::Socket(s) => s.socket().send(buf, Vec::new(), None),
            FileKind::Host(h) => h.write(buf),
            FileKind::Device(k) => k.write(buf),
            FileKind::Regular(node) => {
                let mut off = lock(&self.offset);
                if self.status_flags() & libc::O_APPEND as u32 != 0 {
                    let (n, end) = node.append(buf)?;
                    *off = end;
                    Ok(n)
                } else {
                    let n = node.write_at(*off, buf)?;
                    *off += n as u64;
                    Ok(n)
                }
            }
            _ => Err(Errno::EBADF.because("not writable")),
        }
    }

    /// `pread64(2)`.
    pub fn pread(&self, buf: &mut [u8], off: i64) -> SysResult<usize> {
        if !self.is_readable() {
            return Err(Errno::EBADF.because("fd not open for reading"));
        }
        if matches!(
            self.kind,
            FileKind::Pipe(_) | FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::Socket(_)
        ) {
            return Err(Errno::ESPIPE);
        }
        if off < 0 {
            return Err(Errno::EINVAL.because("negative offset"));
        }
        self.read_at_inner(buf, off as u64)
    }

    /// `pwrite64(2)` (Linux quirk kept: with `O_APPEND` it appends).
    pub fn pwrite(&self, buf: &[u8], off: i64) -> SysResult<usize> {
        if !self.is_writable() {
            return Err(Errno::EBADF.because("fd not open for writing"));
        }
        if off < 0 {
            return Err(Errno::EINVAL.because("negative offset"));
        }
        match &self.kind {
            FileKind::Pipe(_) | FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::Socket(_) => {
                Err(Errno::ESPIPE)
            }
            FileKind::Regular(node) => {
                if self.status_flags() & libc::O_APPEND as u32 != 0 {
                    node.append(buf).map(|(n, _)| n)
                } else {
                    node.write_at(off as u64, buf)
                }
            }
            FileKind::Device(k) => k.write(buf),
            FileKind::Host(h) => h.pwrite(buf, off as u64),
            _ => Err(Errno::EBADF.because("not writable")),
        }
    }

    /// `lseek(2)`. `SEEK_DATA`/`SEEK_HOLE` treat a file as all data.
    pub fn lseek(&self, off: i64, whence: i32) -> SysResult<u64> {
        let size = match &self.kind {
            FileKind::Pipe(_) | FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::Socket(_) => {
                return Err(Errno::ESPIPE)
            }
            FileKind::Host(h) => return h.lseek(off, whence),
            FileKind::Device(_) => return Ok(0),
            FileKind::Path(_) => return Err(Errno::EBADF),
            FileKind::Regular(n) => n.size(),
            FileKind::Proc { data, .. } => data.len() as u64,
            FileKind::Directory { .. } => {
                if whence == libc::SEEK_END {
                    return Err(Errno::EINVAL.because("SEEK_END on a directory"));
                }
                0
            }
        };
        let mut cur = lock(&self.offset);
        let base: i64 = match whence {
            libc::SEEK_SET => 0,
            libc::SEEK_CUR => *cur as i64,
            libc::SEEK_END => size as i64,
            libc::SEEK_DATA | libc::SEEK_HOLE => {
                if off < 0 || off as u64 >= size {
                    return Err(Errno::ENXIO);
                }
                let pos = if whence == libc::SEEK_DATA {
                    off as u64
                } else {
                    size
                };
                *cur = pos;
                return Ok(pos);
            }
            _ => return Err(Errno::EINVAL.because("lseek whence")),
        };
        let new = base
            .checked_add(off)
            .filter(|n| *n >= 0)
            .ok_or(Errno::EINVAL.because("lseek to a negative offset"))?;
        *cur = new as u64;
        if matches!(self.kind, FileKind::Directory { .. }) && new == 0 {
            // rewinddir(3): the next listing sees the current directory.
            *lock(&self.dir_snapshot) = None;
        }
        Ok(new as u64)
    }

    /// `fstat(2)`.
    pub fn fstat(&self, src: &dyn ProcSource) -> SysResult<Stat> {
        match &self.kind {
            FileKind::Pipe(p) if p.fifo_node().is_some() => {
                Ok(p.fifo_node().map(|n| n.stat()).unwrap_or_default())
            }
            FileKind::Pipe(p) => Ok(Stat {
                dev: PIPEFS_DEV,
                ino: p.pipe().ino(),
                nlink: 1,
                mode: libc::S_IFIFO | 0o600,
                blksize: 4096,
                ..Stat::default()
            }),
            FileKind::Host(h) => h.fstat(),
            FileKind::EventFd(_) | FileKind::Epoll(_) => Ok(anon_stat()),
            FileKind::Socket(s) => Ok(Stat {
                dev: SOCKFS_DEV,
                ino: socket_ino(s.socket()),
                nlink: 1,
                mode: libc::S_IFSOCK | 0o777,
                blksize: 4096,
                ..Stat::default()
            }),
            // Like Linux, proc files report size 0 (their text is generated).
            FileKind::Proc { node, .. } => Ok(node.stat(src)),
            _ => match self.location() {
                Some(loc) => Ok(loc.stat(src)),
                None => Err(Errno::EBADF),
            },
        }
    }

    /// `ftruncate(2)`.
    pub fn ftruncate(&self, len: i64) -> SysResult<()> {
        if len < 0 {
            return Err(Errno::EINVAL.because("negative length"));
        }
        if !self.is_writable() {
            return Err(Errno::EINVAL.because("fd not open for writing"));
        }
        match &self.kind {
            FileKind::Regular(n) => n.truncate(len as u64),
            _ => Err(Errno::EINVAL.because("ftruncate of a non-regular file")),
        }
    }

    /// `fsync(2)`/`fdatasync(2)`: the overlay is memory; nothing to flush.
    pub fn fsync(&self) -> SysResult<()> {
        match &self.kind {
            FileKind::Pipe(_) | FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::Socket(_) => {
                Err(Errno::EINVAL)
            }
            FileKind::Path(_) => Err(Errno::EBADF),
            _ => Ok(()),
        }
    }

    /// `getdents64(2)`: as many `linux_dirent64` records as fit in
    /// `max_len` bytes; empty at the end; `EINVAL` if even one does not fit.
    pub fn getdents64(&self, max_len: usize, src: &dyn ProcSource) -> SysResult<Vec<u8>> {
        let (loc, parent_ino) = match &self.kind {
            FileKind::Directory { loc, parent_ino } => (loc, *parent_ino),
            FileKind::Path(_) => return Err(Errno::EBADF),
            _ => return Err(Errno::ENOTDIR),
        };
        let mut off = lock(&self.offset);
        let mut snap = lock(&self.dir_snapshot);
        if snap.is_none() {
            let self_ino = loc.stat(src).ino;
            let mut v = vec![
                DirEntry {
                    name: b".".to_vec(),
                    ino: self_ino,
                    ftype: Some(FileType::Directory),
                },
                DirEntry {
                    name: b"..".to_vec(),
                    ino: parent_ino,
                    ftype: Some(FileType::Directory),
                },
            ];
            v.extend(loc.list(src)?);
            *snap = Some(v);
        }
        let entries = snap.as_ref().map(Vec::as_slice).unwrap_or_default();
        let mut out = Vec::new();
        let mut i = *off as usize;
        while let Some(e) = entries.get(i) {
            let reclen = dirent_reclen(e.name.len());
            if out.len() + reclen > max_len {
                if out.is_empty() {
                    return Err(Errno::EINVAL.because("getdents buffer too small"));
                }
                break;
            }
            let start = out.len();
            out.extend_from_slice(&e.ino.to_le_bytes());
            out.extend_from_slice(&((i + 1) as i64).to_le_bytes());
            out.extend_from_slice(&(reclen as u16).to_le_bytes());
            out.push(e.ftype.map_or(libc::DT_UNKNOWN, FileType::dirent_type));
            out.extend_from_slice(&e.name);
            out.resize(start + reclen, 0);
            i += 1;
        }
        *off = i as u64;
        Ok(out)
    }

    /// Ready events among `mask`, for poll/select/epoll.
    pub fn readiness(&self, mask: EventMask) -> EventMask {
        match &self.kind {
            FileKind::Pipe(p) => p.readiness(mask),
            FileKind::EventFd(e) => e.readiness(mask),
            FileKind::Socket(s) => s.socket().readiness(mask),
            FileKind::Epoll(e) => e.readiness(mask),
            FileKind::Host(h) => h.readiness(mask),
            _ => (EVENT_IN | EVENT_OUT) & mask,
        }
    }

    /// The queue to wait on when an operation returned `EAGAIN`; `None`
    /// for files that are always ready.
    pub fn wait_queue(&self) -> Option<&WaitQueue> {
        match &self.kind {
            FileKind::Pipe(p) => Some(p.pipe().queue()),
            FileKind::EventFd(e) => Some(e.queue()),
            FileKind::Socket(s) => Some(s.socket().queue()),
            FileKind::Host(h) => Some(h.queue()),
            _ => None,
        }
    }

    /// `ioctl(2)`. `input` holds [`crate::vfs::ioctl_input_len`] bytes
    /// copied in from the argument.
    pub fn ioctl(&self, cmd: u32, input: &[u8]) -> SysResult<IoctlOutcome> {
        let int_out = |v: i32| {
            Ok(IoctlOutcome::Done {
                ret: 0,
                out: v.to_le_bytes().to_vec(),
            })
        };
        if u64::from(cmd) == libc::FIONBIO {
            let on = input.get(..4).ok_or(Errno::EFAULT)?;
            let on = i32::from_le_bytes([on[0], on[1], on[2], on[3]]) != 0;
            let mut f = lock(&self.flags);
            if on {
                *f |= libc::O_NONBLOCK as u32;
            } else {
                *f &= !(libc::O_NONBLOCK as u32);
            }
            return Ok(IoctlOutcome::Done {
                ret: 0,
                out: Vec::new(),
            });
        }
        match &self.kind {
            FileKind::Host(h) => h.ioctl(cmd, input),
            FileKind::Socket(s) if u64::from(cmd) == libc::FIONREAD => {
                int_out(s.socket().readable_bytes().min(i32::MAX as usize) as i32)
            }
            FileKind::Pipe(p) if u64::from(cmd) == libc::FIONREAD => {
                int_out(p.readable_bytes().min(i32::MAX as usize) as i32)
            }
            FileKind::Regular(n) if u64::from(cmd) == libc::FIONREAD => {
                let left = n.size().saturating_sub(*lock(&self.offset));
                int_out(left.min(i32::MAX as u64) as i32)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    /// `F_GETPIPE_SZ`.
    pub fn pipe_size(&self) -> SysResult<usize> {
        match &self.kind {
            FileKind::Pipe(p) => Ok(p.capacity()),
            _ => Err(Errno::EBADF.because("not a pipe")),
        }
    }

    /// `F_SETPIPE_SZ`.
    pub fn set_pipe_size(&self, size: usize) -> SysResult<usize> {
        match &self.kind {
            FileKind::Pipe(p) => p.set_capacity(size),
            _ => Err(Errno::EBADF.because("not a pipe")),
        }
    }

    /// The file's contents for `mmap` and the ELF loader. `ENODEV` for
    /// files that cannot be mapped; `/dev/zero` is mapped anonymously by
    /// the memory manager (see [`FileDescription::is_dev_zero`]).
    pub fn mapped_file(&self) -> SysResult<MappedFile> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            FileKind::Regular(n) => Ok(MappedFile::overlay(
                n.clone(),
                String::from_utf8_lossy(&self.path).into_owned(),
            )),
            _ => Err(Errno::ENODEV.because("file cannot be mapped")),
        }
    }

    /// Whether this is `/dev/zero` (an `mmap` of it is anonymous memory).
    pub fn is_dev_zero(&self) -> bool {
        matches!(self.kind, FileKind::Device(DevKind::Zero))
    }
}

/// `fstat` of an anonymous inode: like Linux's `anon_inode_getfile`, all
/// share one inode (mode 0600, no type bits).
fn anon_stat() -> Stat {
    Stat {
        dev: ANON_INODE_DEV,
        ino: 1,
        nlink: 1,
        mode: 0o600,
        blksize: 4096,
        ..Stat::default()
    }
}

impl Drop for FileDescription {
    /// The last reference is gone: its `flock` and OFD locks go with it
    /// (Linux `locks_remove_file`).
    fn drop(&mut self) {
        if let Some(l) = self.locks() {
            l.release(LockOwner::Description(self.id));
        }
    }
}
