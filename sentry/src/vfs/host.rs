//! Host file descriptions passed through to the guest (its stdio, and
//! `/dev/tty`), and the host-fd notifier.
//!
//! The sentry performs reads, writes, `fstat` and terminal ioctls on these
//! host fds itself. It never blocks on them: a read or write first asks
//! `poll(fd, 0)` and returns `EAGAIN` when the fd is not ready; the kernel
//! then waits on the file's [`WaitQueue`], which the notifier thread (one
//! `epoll` instance, like gVisor's `fdnotifier`) notifies when the host fd
//! becomes ready. The host fd's status flags are never changed (no
//! `O_NONBLOCK` on the caller's terminal).
//!
//! This module holds the VFS's only unsafe code: raw `poll`, `ioctl` and
//! `epoll` calls through libc, each with its `// SAFETY:` argument.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::stat::Stat;
use crate::waiter::{EventMask, WaitQueue, EVENT_ERR, EVENT_HUP, EVENT_IN, EVENT_OUT};

/// Which host file a [`HostFile`] stands for (what restore reattaches).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum HostFileKind {
    /// The sentry's own fd 0, 1 or 2.
    Stdio(i32),
    /// The host's `/dev/tty`, opened with these `open(2)` flags.
    Tty { flags: u32 },
}

/// A host file description used by the guest.
///
/// Only `kind` is saved. After restore, `reattach` (after_load) takes the
/// *restoring* sentry's stdio fd (or reopens `/dev/tty`), recomputes the
/// host properties and registers with the notifier: the restored guest
/// talks to whoever ran `sbx restore`, as with gVisor's host fds.
#[derive(Debug, Stateify)]
#[state(after_load = "reattach")]
pub struct HostFile {
    kind: HostFileKind,
    /// Our dup of the host fd. Host-only (see above); empty only if
    /// reattaching failed, and then every operation is `EIO`.
    #[state(nosave)]
    fd: OnceLock<OwnedFd>,
    /// Whether the fd is a terminal (ioctls allowed). Recomputed on attach.
    #[state(nosave)]
    is_tty: AtomicBool,
    /// Regular files and block devices: always ready, never in epoll.
    /// Recomputed on attach.
    #[state(nosave)]
    always_ready: AtomicBool,
    /// Notified by the notifier thread. Host synchronization, not saved.
    #[state(nosave)]
    queue: Arc<WaitQueue>,
}

/// `ioctl(2)` result for the kernel: either done (copy `out` to the
/// argument if non-empty, return `ret`), or a job-control request the
/// kernel answers from sandbox state (`TIOCGPGRP`, `TIOCSPGRP`,
/// `TIOCGSID` on a terminal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoctlOutcome {
    Done { ret: i64, out: Vec<u8> },
    JobControl,
}

/// Size of the kernel's `struct termios` (asm-generic/termbits.h).
pub const TERMIOS_SIZE: usize = 36;
/// Size of `struct winsize`.
pub const WINSIZE_SIZE: usize = 8;

/// How many bytes the kernel must copy in from the ioctl argument before
/// calling [`crate::vfs::FileDescription::ioctl`].
pub fn ioctl_input_len(cmd: u32) -> usize {
    match u64::from(cmd) {
        libc::TCSETS | libc::TCSETSW | libc::TCSETSF => TERMIOS_SIZE,
        libc::TIOCSWINSZ => WINSIZE_SIZE,
        libc::FIONBIO => 4,
        _ => 0,
    }
}

/// `poll(fd, events, 0)`: the host events ready now.
fn poll_now(fd: BorrowedFd<'_>, events: i16) -> i16 {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid, exclusively borrowed pollfd array of length
    // 1 for the duration of the call; timeout 0 never blocks; `fd` is a
    // live borrowed fd.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    if r <= 0 {
        0
    } else {
        pfd.revents
    }
}

impl HostFile {
    /// Wraps a dup of the sentry's own stdio fd `n` (0, 1 or 2).
    pub fn stdio(n: i32) -> SysResult<Arc<HostFile>> {
        let kind = HostFileKind::Stdio(n);
        Ok(HostFile::from_fd(kind, Self::open_kind(kind)?))
    }

    /// Opens the host's controlling terminal; `ENXIO` if there is none.
    pub fn tty(flags: u32) -> SysResult<Arc<HostFile>> {
        let kind = HostFileKind::Tty { flags };
        Ok(HostFile::from_fd(kind, Self::open_kind(kind)?))
    }

    /// The host fd `kind` stands for in this sentry process.
    fn open_kind(kind: HostFileKind) -> SysResult<OwnedFd> {
        match kind {
            HostFileKind::Stdio(n) => {
                if !(0..=2).contains(&n) {
                    return Err(Errno::EBADF.because("stdio fd out of range"));
                }
                // SAFETY: fds 0-2 are not owned by any Rust object in the
                // sentry; the borrow lives only for the dup below.
                let fd = unsafe { BorrowedFd::borrow_raw(n) };
                rustix::io::fcntl_dupfd_cloexec(fd, 3)
                    .map_err(|_| Errno::EBADF.because("sentry stdio fd is not open"))
            }
            HostFileKind::Tty { flags } => {
                let acc = match flags & libc::O_ACCMODE as u32 {
                    x if x == libc::O_RDONLY as u32 => rustix::fs::OFlags::RDONLY,
                    x if x == libc::O_WRONLY as u32 => rustix::fs::OFlags::WRONLY,
                    _ => rustix::fs::OFlags::RDWR,
                };
                rustix::fs::open(
                    "/dev/tty",
                    acc | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|_| Errno::ENXIO.because("the sentry has no controlling terminal"))
            }
        }
    }

    fn from_fd(kind: HostFileKind, fd: OwnedFd) -> Arc<HostFile> {
        let f = Arc::new(HostFile {
            kind,
            fd: OnceLock::new(),
            is_tty: AtomicBool::new(false),
            always_ready: AtomicBool::new(false),
            queue: Arc::new(WaitQueue::new()),
        });
        f.attach(fd);
        f
    }

    /// Installs `fd` as the host fd: records its properties and registers
    /// it with the notifier.
    fn attach(&self, fd: OwnedFd) {
        let is_tty = rustix::termios::isatty(&fd);
        let always_ready = rustix::fs::fstat(&fd)
            .map(|st| {
                let t = st.st_mode & libc::S_IFMT;
                t == libc::S_IFREG || t == libc::S_IFBLK
            })
            .unwrap_or(false);
        self.is_tty.store(is_tty, Ordering::Relaxed);
        self.always_ready.store(always_ready, Ordering::Relaxed);
        let raw = fd.as_raw_fd();
        if self.fd.set(fd).is_ok() && !always_ready {
            notifier().add(raw, &self.queue);
        }
    }

    /// after_load: attaches this file to the restoring sentry's host fd.
    fn reattach(&self) {
        match Self::open_kind(self.kind) {
            Ok(fd) => self.attach(fd),
            Err(e) => {
                tracing::warn!(kind = ?self.kind, errno = ?e, "restore: cannot reattach host file")
            }
        }
    }

    fn always_ready(&self) -> bool {
        self.always_ready.load(Ordering::Relaxed)
    }

    /// What this file stands for.
    pub fn kind(&self) -> HostFileKind {
        self.kind
    }

    /// Whether the host fd is a terminal.
    pub fn is_tty(&self) -> bool {
        self.is_tty.load(Ordering::Relaxed)
    }

    /// The host description's access mode (`O_RDONLY`, `O_WRONLY` or
    /// `O_RDWR`).
    pub fn access_mode(&self) -> u32 {
        self.borrow()
            .ok()
            .and_then(|fd| rustix::fs::fcntl_getfl(fd).ok())
            .map(|fl| fl.bits() & libc::O_ACCMODE as u32)
            .unwrap_or(libc::O_RDWR as u32)
    }

    /// The queue notified when the host fd becomes ready.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }

    /// Ready events among `mask` (ERR and HUP always reported).
    pub fn readiness(&self, mask: EventMask) -> EventMask {
        if self.always_ready() {
            return (EVENT_IN | EVENT_OUT) & mask;
        }
        let Ok(fd) = self.borrow() else {
            return EVENT_ERR;
        };
        let want = (mask & (EVENT_IN | EVENT_OUT)) as i16;
        let got = poll_now(fd, want) as u16 as u32;
        got & (mask | EVENT_ERR | EVENT_HUP)
    }

    fn borrow(&self) -> SysResult<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fd
            .get()
            .map(|f| f.as_fd())
            .ok_or(Errno::EIO.because("host file not reattached after restore"))
    }

    /// Reads without blocking (`EAGAIN` when nothing is ready).
    pub fn read(&self, buf: &mut [u8]) -> SysResult<usize> {
        if !self.always_ready() && self.readiness(EVENT_IN) == 0 {
            return Err(Errno::EAGAIN);
        }
        rustix::io::read(self.borrow()?, buf).map_err(|e| Errno::new(e.raw_os_error()))
    }

    /// Writes without blocking when the host fd is full.
    pub fn write(&self, buf: &[u8]) -> SysResult<usize> {
        if !self.always_ready() && self.readiness(EVENT_OUT) & (EVENT_OUT | EVENT_ERR) == 0 {
            return Err(Errno::EAGAIN);
        }
        rustix::io::write(self.borrow()?, buf).map_err(|e| Errno::new(e.raw_os_error()))
    }

    /// `pread` (regular host files only; `ESPIPE` otherwise).
    pub fn pread(&self, buf: &mut [u8], off: u64) -> SysResult<usize> {
        rustix::io::pread(self.borrow()?, buf, off).map_err(|e| Errno::new(e.raw_os_error()))
    }

    /// `pwrite` (regular host files only; `ESPIPE` otherwise).
    pub fn pwrite(&self, buf: &[u8], off: u64) -> SysResult<usize> {
        rustix::io::pwrite(self.borrow()?, buf, off).map_err(|e| Errno::new(e.raw_os_error()))
    }

    /// `lseek` on the host fd.
    pub fn lseek(&self, off: i64, whence: i32) -> SysResult<u64> {
        use rustix::fs::SeekFrom;
        let pos = match whence {
            libc::SEEK_SET => SeekFrom::Start(off as u64),
            libc::SEEK_CUR => SeekFrom::Current(off),
            libc::SEEK_END => SeekFrom::End(off),
            _ => return Err(Errno::EINVAL.because("lseek whence")),
        };
        rustix::fs::seek(self.borrow()?, pos).map_err(|e| Errno::new(e.raw_os_error()))
    }

    /// `fstat` of the host fd.
    pub fn fstat(&self) -> SysResult<Stat> {
        rustix::fs::fstat(self.borrow()?)
            .map(|st| Stat::from_host(&st))
            .map_err(|e| Errno::new(e.raw_os_error()))
    }

    /// Terminal and `FIONREAD` ioctls, performed on the host fd.
    pub fn ioctl(&self, cmd: u32, input: &[u8]) -> SysResult<IoctlOutcome> {
        let fd = self.borrow()?.as_raw_fd();
        let is_tty = self.is_tty();
        match u64::from(cmd) {
            libc::TIOCGPGRP | libc::TIOCSPGRP | libc::TIOCGSID if is_tty => {
                Ok(IoctlOutcome::JobControl)
            }
            libc::TCGETS if is_tty => {
                let mut out = vec![0u8; TERMIOS_SIZE];
                ioctl_buf(fd, libc::TCGETS, &mut out)?;
                Ok(IoctlOutcome::Done { ret: 0, out })
            }
            c @ (libc::TCSETS | libc::TCSETSW | libc::TCSETSF) if is_tty => {
                let mut inp = input.get(..TERMIOS_SIZE).ok_or(Errno::EFAULT)?.to_vec();
                ioctl_buf(fd, c, &mut inp)?;
                Ok(IoctlOutcome::Done {
                    ret: 0,
                    out: Vec::new(),
                })
            }
            libc::TIOCGWINSZ if is_tty => {
                let mut out = vec![0u8; WINSIZE_SIZE];
                ioctl_buf(fd, libc::TIOCGWINSZ, &mut out)?;
                Ok(IoctlOutcome::Done { ret: 0, out })
            }
            libc::TIOCSWINSZ if is_tty => {
                let mut inp = input.get(..WINSIZE_SIZE).ok_or(Errno::EFAULT)?.to_vec();
                ioctl_buf(fd, libc::TIOCSWINSZ, &mut inp)?;
                Ok(IoctlOutcome::Done {
                    ret: 0,
                    out: Vec::new(),
                })
            }
            libc::FIONREAD => {
                let mut out = vec![0u8; 4];
                ioctl_buf(fd, libc::FIONREAD, &mut out)?;
                Ok(IoctlOutcome::Done { ret: 0, out })
            }
            _ => Err(Errno::ENOTTY),
        }
    }
}

/// `ioctl(fd, cmd, buf.as_mut_ptr())` for commands whose argument is a
/// pointer to a buffer of exactly `buf.len()` bytes.
fn ioctl_buf(fd: RawFd, cmd: u64, buf: &mut [u8]) -> SysResult<()> {
    // SAFETY: only called with the commands above, whose argument is a
    // pointer to a struct of the size `buf` has (termios 36 bytes, winsize
    // 8, int 4; checked by the callers); the kernel reads or writes at most
    // that many bytes; `fd` is a live fd owned by a `HostFile`.
    let r = unsafe { libc::ioctl(fd, cmd as _, buf.as_mut_ptr()) };
    if r < 0 {
        return Err(Errno::new(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ));
    }
    Ok(())
}

impl Drop for HostFile {
    fn drop(&mut self) {
        if let (Some(fd), false) = (self.fd.get(), self.always_ready()) {
            notifier().remove(fd.as_raw_fd());
        }
    }
}

/// The host-fd notifier: one epoll instance and one thread that notifies
/// the wait queue of each registered fd when it becomes ready
/// (edge-triggered: waiters re-check readiness after registering).
struct Notifier {
    epfd: Option<OwnedFd>,
    targets: Mutex<HashMap<RawFd, Weak<WaitQueue>>>,
}

fn notifier() -> &'static Notifier {
    static N: OnceLock<Notifier> = OnceLock::new();
    N.get_or_init(Notifier::start)
}

impl Notifier {
    fn start() -> Notifier {
        // SAFETY: epoll_create1 takes no pointers; the fd it returns (if
        // >= 0) is owned by nobody else.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let epfd = if raw >= 0 {
            use std::os::fd::FromRawFd;
            // SAFETY: `raw` was just returned by epoll_create1 and is owned
            // by no other object.
            Some(unsafe { OwnedFd::from_raw_fd(raw) })
        } else {
            tracing::warn!("host-fd notifier: epoll_create1 failed; host stdio will poll");
            None
        };
        if let Some(fd) = &epfd {
            let raw = fd.as_raw_fd();
            let spawned = std::thread::Builder::new()
                .name("sbx-fdnotifier".into())
                .spawn(move || Notifier::run(raw));
            if spawned.is_err() {
                tracing::warn!("host-fd notifier: cannot start its thread");
            }
        }
        Notifier {
            epfd,
            targets: Mutex::new(HashMap::new()),
        }
    }

    fn run(epfd: RawFd) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        loop {
            // SAFETY: `events` is a valid writable array of 16 epoll_events;
            // `epfd` stays open for the life of the process (the notifier
            // is a never-dropped static).
            let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), 16, -1) };
            if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                tracing::warn!("host-fd notifier: epoll_wait failed; stopping");
                return;
            }
            let n = n as usize;
            let targets = notifier().targets.lock().unwrap_or_else(|e| e.into_inner());
            for ev in &events[..n] {
                let fd = ev.u64 as RawFd;
                if let Some(q) = targets.get(&fd).and_then(Weak::upgrade) {
                    let mut mask = 0;
                    if ev.events & (libc::EPOLLIN as u32) != 0 {
                        mask |= EVENT_IN;
                    }
                    if ev.events & (libc::EPOLLOUT as u32) != 0 {
                        mask |= EVENT_OUT;
                    }
                    if ev.events & (libc::EPOLLERR as u32) != 0 {
                        mask |= EVENT_ERR;
                    }
                    if ev.events & (libc::EPOLLHUP as u32 | libc::EPOLLRDHUP as u32) != 0 {
                        mask |= EVENT_HUP | EVENT_IN;
                    }
                    q.notify(mask);
                }
            }
        }
    }

    fn add(&self, fd: RawFd, queue: &Arc<WaitQueue>) {
        let Some(ep) = &self.epfd else { return };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: fd as u64,
        };
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fd, Arc::downgrade(queue));
        // SAFETY: `ev` is a valid epoll_event for the duration of the call;
        // both fds are live. Failure (EPERM for files epoll cannot watch)
        // only means no notifications: readiness is still polled.
        let r = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            tracing::debug!(fd, "host-fd notifier: fd not pollable by epoll");
        }
    }

    fn remove(&self, fd: RawFd) {
        let Some(ep) = &self.epfd else { return };
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fd);
        // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null allowed
        // since Linux 2.6.9); `fd` is still open (called before it closes).
        unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiter::{Registration, WaitOutcome, Waiter};
    use std::time::{Duration, Instant};

    fn host_pipe_file() -> (Arc<HostFile>, OwnedFd) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        (HostFile::from_fd(HostFileKind::Stdio(0), r), w)
    }

    #[test]
    fn read_of_empty_host_pipe_is_eagain_not_blocking() {
        let (f, _w) = host_pipe_file();
        let mut buf = [0u8; 4];
        assert_eq!(f.read(&mut buf).unwrap_err().code(), libc::EAGAIN);
    }

    #[test]
    fn notifier_wakes_waiter_when_host_fd_becomes_readable() {
        let (f, w) = host_pipe_file();
        let waiter = Waiter::new();
        let _reg = Registration::new(f.queue(), &waiter, EVENT_IN);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            rustix::io::write(&w, b"hi").unwrap();
            w
        });
        assert_eq!(
            waiter.wait(Some(Instant::now() + Duration::from_secs(5))),
            WaitOutcome::Woken
        );
        let _w = t.join().unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(f.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
    }

    #[test]
    fn terminal_ioctls_on_a_non_tty_are_enotty() {
        let (f, _w) = host_pipe_file();
        assert_eq!(
            f.ioctl(libc::TCGETS as u32, &[]).unwrap_err(),
            Errno::ENOTTY
        );
        assert_eq!(
            f.ioctl(libc::TIOCGPGRP as u32, &[]).unwrap_err(),
            Errno::ENOTTY
        );
    }
}

#[cfg(test)]
mod pty_tests {
    use super::*;
    use std::os::fd::FromRawFd;

    /// A pseudo-terminal pair (master, slave) from the host.
    fn pty() -> (OwnedFd, OwnedFd) {
        // SAFETY: plain libc calls on fds we create and own; the name
        // pointer returned by ptsname is used before any other pty call.
        unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(m >= 0);
            assert_eq!(libc::grantpt(m), 0);
            assert_eq!(libc::unlockpt(m), 0);
            let name = libc::ptsname(m);
            assert!(!name.is_null());
            let s = libc::open(name, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(s >= 0);
            (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s))
        }
    }

    #[test]
    fn window_size_set_then_get_round_trips_through_the_host_tty() {
        let (_m, s) = pty();
        let f = HostFile::from_fd(HostFileKind::Stdio(1), s);
        assert!(f.is_tty());
        // struct winsize { rows 33, cols 101, xpixel 0, ypixel 0 }
        let ws = [33u8, 0, 101, 0, 0, 0, 0, 0];
        assert_eq!(ioctl_input_len(libc::TIOCSWINSZ as u32), 8);
        f.ioctl(libc::TIOCSWINSZ as u32, &ws).unwrap();
        let got = f.ioctl(libc::TIOCGWINSZ as u32, &[]).unwrap();
        assert_eq!(
            got,
            IoctlOutcome::Done {
                ret: 0,
                out: ws.to_vec()
            }
        );
    }

    #[test]
    fn termios_get_set_uses_the_36_byte_kernel_struct() {
        let (_m, s) = pty();
        let f = HostFile::from_fd(HostFileKind::Stdio(0), s);
        let IoctlOutcome::Done { out: mut t, .. } = f.ioctl(libc::TCGETS as u32, &[]).unwrap()
        else {
            panic!("TCGETS is not job control");
        };
        assert_eq!(t.len(), TERMIOS_SIZE);
        // Clear ECHO in c_lflag (offset 12) and set it through TCSETS.
        let lflag = u32::from_le_bytes([t[12], t[13], t[14], t[15]]) & !libc::ECHO;
        t[12..16].copy_from_slice(&lflag.to_le_bytes());
        f.ioctl(libc::TCSETS as u32, &t).unwrap();
        let IoctlOutcome::Done { out: t2, .. } = f.ioctl(libc::TCGETS as u32, &[]).unwrap() else {
            panic!("TCGETS is not job control");
        };
        assert_eq!(
            u32::from_le_bytes([t2[12], t2[13], t2[14], t2[15]]) & libc::ECHO,
            0
        );
        assert_eq!(
            f.ioctl(libc::TIOCGPGRP as u32, &[]).unwrap(),
            IoctlOutcome::JobControl
        );
    }

    #[test]
    fn fionread_counts_bytes_waiting_on_the_tty() {
        let (m, s) = pty();
        let f = HostFile::from_fd(HostFileKind::Stdio(0), s);
        // Raw mode on the slave so bytes are readable without a newline.
        let IoctlOutcome::Done { out: mut t, .. } = f.ioctl(libc::TCGETS as u32, &[]).unwrap()
        else {
            panic!("TCGETS is not job control");
        };
        let lflag = u32::from_le_bytes([t[12], t[13], t[14], t[15]]) & !libc::ICANON;
        t[12..16].copy_from_slice(&lflag.to_le_bytes());
        f.ioctl(libc::TCSETS as u32, &t).unwrap();
        rustix::io::write(&m, b"abc").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let got = f.ioctl(libc::FIONREAD as u32, &[]).unwrap();
        assert_eq!(
            got,
            IoctlOutcome::Done {
                ret: 0,
                out: 3i32.to_le_bytes().to_vec()
            }
        );
        let mut buf = [0u8; 8];
        assert_eq!(f.read(&mut buf).unwrap(), 3);
        assert_eq!(f.read(&mut buf).unwrap_err().code(), libc::EAGAIN);
    }
}
