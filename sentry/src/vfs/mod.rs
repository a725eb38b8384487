//! Files: file descriptions, the fd table, the overlay root filesystem,
//! path resolution, devices, procfs and pipes.
//!
//! The kernel creates one [`Vfs`] per sandbox with [`Vfs::new`] (the
//! overlay over the host root directory, `/dev` and `/proc` mounted on
//! top), one [`FsContext`] per process (root, cwd, umask) and one
//! [`FdTable`] per process. The file syscalls call the namespace
//! operations of [`Vfs`] (`open`, `stat`, `mkdir`, `unlink`, `rename`, ...)
//! and the I/O methods of [`FileDescription`] (`read`, `write`, `lseek`,
//! `getdents64`, `ioctl`, `readiness`, `wait_queue`, ...).
//!
//! Blocking is the kernel's job: nothing in this module sleeps. An
//! operation that would block returns `EAGAIN`; the kernel registers its
//! waiter on the description's wait queue, re-checks, and sleeps.
//!
//! Mounts: `/` is the [`overlay::Overlay`] of the host directory, `/dev`
//! the synthetic [`dev`] tree, `/proc` the synthetic [`proc`] tree fed by
//! a [`ProcSource`] the kernel implements.
//!
//! Contract with the kernel (what the syscall layer must do):
//! - **Blocking**: on `EAGAIN` from `read`/`write`/`accept`/`recv`/
//!   `send`, unless the description `is_nonblocking()`, register the
//!   task's waiter on `wait_queue()` (`EVENT_IN` for input, `EVENT_OUT`
//!   for output), retry, then sleep; `None` means the file never blocks.
//!   A blocking write loops over the rest after a short write (pipes,
//!   stream sockets).
//! - **EPIPE**: a write to a pipe or stream socket whose readers are gone
//!   returns `Errno::EPIPE`; the kernel sends `SIGPIPE`.
//! - **ioctl**: copy in [`ioctl_input_len`] bytes, call
//!   [`FileDescription::ioctl`], copy `out` back if non-empty;
//!   `IoctlOutcome::JobControl` (TIOCGPGRP/TIOCSPGRP/TIOCGSID on a
//!   terminal) is answered from sandbox state.
//! - **epoll**: `epoll_wait` = [`Epoll::collect`]; if empty and blocking,
//!   [`Epoll::register`] the waiter, collect again, sleep.
//! - **FIFOs**: after a blocking `open` of a FIFO, wait on `wait_queue()`
//!   while [`FileDescription::waiting_for_partner`]; on a signal drop the
//!   description and restart the open.
//! - **Locks**: `flock` → [`FileDescription::flock`]; `F_SETLK`/`F_GETLK`
//!   → `setlk`/`getlk` with `LockOwner::Process(tgid)` (OFD variants:
//!   `LockOwner::Description(fd.id())`); `EAGAIN` = conflict, blocking
//!   forms wait on `lock_queue()`. On `close(fd)` call
//!   `release_posix_locks(tgid)` (Linux drops a process's record locks
//!   when it closes any fd of the file).
//! - **Sockets**: [`unix`] (`socket`, `socketpair`, `bind` →
//!   [`Vfs::unix_bind`], `connect` → [`Vfs::unix_connect`], `accept`,
//!   `send`/`recv` with `SCM_RIGHTS` as descriptions, `shutdown`).
//! - **statfs**: [`Vfs::statfs`] / [`Vfs::fstatfs`] give per-mount magic.
//! - **/proc**: implement [`ProcSource`] (with `fd_file` so
//!   `/proc/<pid>/fd/N` and `/dev/stdin` reach pipes and host files).
//! - **Checkpoint**: save the `Vfs` (in an `Arc`), every `FsContext` and
//!   `FdTable`; host fds, the root directory and lower files are
//!   reattached by after_load hooks, lower files checked by size and mtime.
//!
//! Lock order: `FdTable` → `FileDescription` (offset → dir snapshot) →
//! `Epoll::items` → `Overlay::tree` → `Node::state` (parent → child) →
//! pipe / socket state → socket inbox → `WaitQueue`.

pub mod dev;
pub mod epoll;
pub mod eventfd;
pub mod fd_table;
pub mod file;
pub mod host;
pub mod location;
pub mod lock;
mod mapped;
mod ops;
pub mod overlay;
pub mod path;
pub mod pipe;
pub mod proc;
mod socket_ops;
pub mod stat;
pub mod statfs;
pub mod unix;

use std::path::Path;
use std::sync::Arc;

use checkpoints::Stateify;

pub use epoll::{Epoll, EpollEvent, EPOLL_EVENT_SIZE};
pub use fd_table::FdTable;
pub use file::{FileDescription, FileKind};
pub use host::{ioctl_input_len, IoctlOutcome};
pub use location::Location;
pub use mapped::MappedFile;
pub use ops::{At, Creds, UtimeSpec};
pub use overlay::{Overlay, OverlayNewError};
pub use proc::{NoProcesses, ProcSource};
pub use stat::{FileType, Stat, Timespec};

/// The sandbox's mount namespace: the overlay root with `/dev` and
/// `/proc` on top.
#[derive(Debug, Stateify)]
#[state(after_load = "relink_shm")]
pub struct Vfs {
    overlay: Arc<Overlay>,
    /// The root of `/dev/shm`: an in-memory directory (like a tmpfs) made
    /// of upper-only overlay nodes.
    shm: Arc<overlay::Node>,
    /// Names of bound Unix sockets.
    unix: unix::UnixNames,
}

/// Per-process filesystem context (Linux `struct fs_struct`). Cloned on
/// `fork`; shared (the kernel holds it in an `Arc<Mutex<_>>`) with
/// `CLONE_FS`.
#[derive(Clone, Debug, Stateify)]
pub struct FsContext {
    /// `chroot` directory: absolute paths start here, `..` stops here.
    pub root: Location,
    /// Working directory.
    pub cwd: Location,
    /// File mode creation mask.
    pub umask: u32,
}

impl Vfs {
    /// A namespace whose root is the host directory `root_dir` seen
    /// read-only through an in-memory overlay.
    pub fn new(root_dir: &Path) -> Result<Vfs, OverlayNewError> {
        let overlay = Arc::new(Overlay::new(root_dir)?);
        let shm = overlay.new_detached_dir(b"shm", 0o1777, dev::DEV_SHM_INO, dev::DEVFS_DEV);
        Ok(Vfs {
            overlay,
            shm,
            unix: unix::UnixNames::default(),
        })
    }

    /// after_load: parent pointers below `/dev/shm` (the overlay's own
    /// after_load covers the root tree).
    fn relink_shm(&self) {
        Overlay::relink_tree(&self.shm);
    }

    /// The root of `/dev/shm`.
    pub fn shm(&self) -> &Arc<overlay::Node> {
        &self.shm
    }

    /// The overlay root filesystem.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// The root directory.
    pub fn root(&self) -> Location {
        Location::Overlay(self.overlay.root().clone())
    }

    /// The context of the first process: root and cwd at `/`, umask 022.
    pub fn new_context(&self) -> FsContext {
        FsContext {
            root: self.root(),
            cwd: self.root(),
            umask: 0o022,
        }
    }
}

#[cfg(test)]
mod tests;
