//! Socket syscalls over the VFS's Unix sockets ([`crate::vfs::unix`]).
//! Linux: net/socket.c (the ABI: `struct msghdr`, `cmsghdr`, address
//! lengths), net/unix/af_unix.c (the family), net/core/scm.c (control
//! messages), net/core/sock.c (socket options).
//!
//! Only `AF_UNIX` exists in the sandbox: every other family fails with
//! `EAFNOSUPPORT` (logged once per sandbox), as on a Linux built without
//! it. Blocking (`accept`, `recv*`, `send*` into a full peer, `connect` to
//! a listener with a full backlog) sleeps interruptibly through
//! [`TaskRunner::block_on`] unless the description is non-blocking or
//! `MSG_DONTWAIT` is given; a signal yields `ERESTARTSYS` (restarted with
//! `SA_RESTART`, after a stop and after a checkpoint pause, `EINTR`
//! otherwise). A sender blocked on a full receiver (connected or by
//! address) sleeps on its own socket's queue; the receiver's dequeue wakes
//! it (the library's room list, Linux `peer_wait`).
//!
//! Known gaps (each needs library support first):
//! - `SO_PASSCRED` (receiving `SCM_CREDENTIALS`; the library does not
//!   record per-message senders) fails with `ENOPROTOOPT`; a sent
//!   `SCM_CREDENTIALS` is checked like Linux (`EPERM` when it lies) and
//!   then not delivered, which is what a receiver without `SO_PASSCRED`
//!   sees.
//! - `recvfrom` on a stream socket reports no sender address (Linux gives
//!   the peer's bound name).
//! - `send` on an unconnected datagram socket without an address is
//!   `EDESTADDRREQ` from the library; mapped here to Linux's `ENOTCONN`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::procfs::KernelProc;
use crate::kernel::signal::SigInfo;
use crate::kernel::thread_group::lock;
use crate::kernel::TaskRunner;
use crate::vfs::unix::{SockType, Ucred, UnixAddr, UnixSocket, INBOX_CAPACITY, SCM_MAX_FD};
use crate::vfs::{Creds, FileDescription, FsContext};
use crate::waiter::{EVENT_IN, EVENT_OUT};

use super::arg_i32;

const SOCK_TYPE_MASK: i32 = 0xf;
/// Number of address families (Linux `AF_MAX`, `NPROTO`).
const AF_MAX: i32 = 46;
const MSG_OOB: u32 = 0x1;
const MSG_PEEK: u32 = 0x2;
const MSG_CTRUNC: u32 = 0x8;
const MSG_TRUNC: u32 = 0x20;
const MSG_DONTWAIT: u32 = 0x40;
const MSG_WAITALL: u32 = 0x100;
const MSG_NOSIGNAL: u32 = 0x4000;
const MSG_CMSG_CLOEXEC: u32 = 0x4000_0000;
/// `sizeof(struct sockaddr_un)`.
const SOCKADDR_UN_SIZE: usize = 110;
/// `UIO_MAXIOV`.
const UIO_MAXIOV: u64 = 1024;
/// `sizeof(struct msghdr)` on x86-64.
const MSGHDR_SIZE: usize = 56;
/// `sizeof(struct cmsghdr)` on x86-64 (`cmsg_len` is a `size_t`).
const CMSGHDR_SIZE: usize = 16;
/// Largest control buffer accepted by `sendmsg` (Linux `sysctl_optmem_max`).
const OPTMEM_MAX: u64 = 20480;
/// Largest single send/receive the sentry buffers.
const MAX_IO: usize = 8 << 20;

// ---- helpers ----

fn file(t: &TaskRunner, fd: u64) -> SysResult<Arc<FileDescription>> {
    t.task.tg.fds().ok_or(Errno::EBADF)?.get(arg_i32(fd))
}

/// The socket behind `fd` (`EBADF`, `ENOTSOCK`).
fn socket_of(t: &TaskRunner, fd: u64) -> SysResult<(Arc<FileDescription>, Arc<UnixSocket>)> {
    let f = file(t, fd)?;
    let s = f.socket()?.clone();
    Ok((f, s))
}

fn fs_ctx(t: &TaskRunner) -> FsContext {
    lock(&t.task.tg.fs).clone()
}

fn proc_src(t: &TaskRunner) -> KernelProc<'_> {
    KernelProc {
        kernel: &t.kernel,
        current: t.pid(),
    }
}

/// The caller's credentials as `SO_PEERCRED` reports them (Linux
/// `cred_to_ucred`: tgid, euid, egid).
fn my_cred(t: &TaskRunner) -> Ucred {
    let l = t.task.local();
    Ucred {
        pid: t.pid(),
        uid: l.creds.euid,
        gid: l.creds.egid,
    }
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(x)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(x)
}

/// Reads a `struct sockaddr_un` of `len` bytes (Linux `move_addr_to_kernel`:
/// `EINVAL` for a negative or oversized length).
fn read_addr(t: &mut TaskRunner, addr: u64, len: u64) -> SysResult<UnixAddr> {
    let len = arg_i32(len);
    if len < 0 || len as usize > SOCKADDR_UN_SIZE {
        return Err(Errno::EINVAL.because("bad address length"));
    }
    let mut b = vec![0u8; len as usize];
    t.copy_in(addr, &mut b)?;
    UnixAddr::from_sockaddr(&b)
}

/// The address bytes a receive reports for a sender: nothing for an
/// unnamed one (Linux `unix_copy_addr` leaves `msg_namelen` at 0).
fn sender_bytes(from: &UnixAddr) -> Vec<u8> {
    match from {
        UnixAddr::Unnamed => Vec::new(),
        a => a.to_sockaddr(),
    }
}

/// Writes `b` to a user `(addr, *addrlen)` pair (see [`write_addr`]).
fn write_addr_bytes(t: &mut TaskRunner, addr: u64, addrlen: u64, b: &[u8]) -> SysResult<()> {
    if addr == 0 || addrlen == 0 {
        return Ok(());
    }
    let len = t.read_u32(addrlen)? as i32;
    if len < 0 {
        return Err(Errno::EINVAL.because("negative address length"));
    }
    let n = b.len().min(len as usize);
    t.copy_out(addr, &b[..n])?;
    t.write_u32(addrlen, b.len() as u32)
}

/// Writes `name` to a user `(addr, *addrlen)` pair: at most `*addrlen`
/// bytes, and the full length back into `*addrlen` (Linux
/// `move_addr_to_user`). `addr == 0` writes nothing.
fn write_addr(t: &mut TaskRunner, addr: u64, addrlen: u64, name: &UnixAddr) -> SysResult<()> {
    write_addr_bytes(t, addr, addrlen, &name.to_sockaddr())
}

/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC` of a type or `accept4` flags argument:
/// (status flags for the description, close-on-exec).
fn creation_flags(flags: i32) -> (u32, bool) {
    let nb = if flags & libc::SOCK_NONBLOCK != 0 {
        libc::O_NONBLOCK as u32
    } else {
        0
    };
    (nb, flags & libc::SOCK_CLOEXEC != 0)
}

/// Parses `socket`/`socketpair`'s (domain, type, protocol) (Linux
/// `__sock_create`, `unix_create`).
fn parse_socket_args(
    t: &TaskRunner,
    nr: u64,
    name: &str,
    a: &[u64; 6],
) -> SysResult<(SockType, u32, bool)> {
    let domain = arg_i32(a[0]);
    let ty = arg_i32(a[1]);
    let protocol = arg_i32(a[2]);
    if !(0..AF_MAX).contains(&domain) {
        return Err(Errno::EAFNOSUPPORT.because("no such address family"));
    }
    if domain != libc::AF_UNIX {
        t.kernel.log_unsupported(
            nr,
            name,
            "only AF_UNIX sockets exist in the sandbox: EAFNOSUPPORT",
        );
        return Err(Errno::EAFNOSUPPORT.because("only AF_UNIX sockets exist in the sandbox"));
    }
    if ty & !(SOCK_TYPE_MASK | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL.because("unknown socket type flags"));
    }
    if protocol != 0 && protocol != libc::PF_UNIX {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let stype = match ty & SOCK_TYPE_MASK {
        // Linux `unix_create`: SOCK_RAW is silently a datagram socket.
        libc::SOCK_RAW => SockType::Dgram,
        other => SockType::from_raw(other)?,
    };
    let (nb, cloexec) = creation_flags(ty);
    Ok((stype, nb, cloexec))
}

// ---- creation, naming, connection ----

/// `socket(domain, type, protocol)`.
pub fn socket(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (stype, nb, cloexec) = parse_socket_args(t, 41, "socket", &a)?;
    let f = FileDescription::new_unix_socket(stype, nb);
    f.socket()?.set_cred(my_cred(t));
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    Ok(fds.install(f, cloexec, 0)? as u64)
}

/// `socketpair(domain, type, protocol, sv)`.
pub fn socketpair(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (stype, nb, cloexec) = parse_socket_args(t, 53, "socketpair", &a)?;
    let (x, y) = FileDescription::new_unix_pair(stype, nb);
    x.socket()?.set_cred(my_cred(t));
    y.socket()?.set_cred(my_cred(t));
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let (fa, fb) = fds.install_pair(x, y, cloexec)?;
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&fa.to_le_bytes());
    out[4..].copy_from_slice(&fb.to_le_bytes());
    if let Err(e) = t.copy_out(a[3], &out) {
        // Linux installs the fds only after the copy succeeded.
        drop(fds.close(fa));
        drop(fds.close(fb));
        return Err(e);
    }
    Ok(0)
}

/// Counter for autobind names.
static AUTOBIND: AtomicU64 = AtomicU64::new(0);

/// `bind(fd, addr, addrlen)`. An address of only the family autobinds to
/// a fresh 5-hex-digit abstract name (Linux `unix_autobind`).
pub fn bind(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (_f, sock) = socket_of(t, a[0])?;
    let addr = read_addr(t, a[1], a[2])?;
    let ctx = fs_ctx(t);
    let l = t.task.local();
    let creds = Creds {
        uid: l.creds.fsuid,
        gid: l.creds.fsgid,
    };
    drop(l);
    let src = proc_src(t);
    if addr == UnixAddr::Unnamed {
        autobind(t, &sock)?;
        return Ok(0);
    }
    t.kernel.vfs.unix_bind(&ctx, &sock, addr, creds, &src)?;
    Ok(0)
}

fn autobind(t: &TaskRunner, sock: &Arc<UnixSocket>) -> SysResult<()> {
    if sock.local_name() != UnixAddr::Unnamed {
        return Err(Errno::EINVAL.because("socket already bound"));
    }
    let ctx = fs_ctx(t);
    let src = proc_src(t);
    for _ in 0..0x100000 {
        let n = AUTOBIND.fetch_add(1, Ordering::Relaxed) & 0xfffff;
        let name = UnixAddr::Abstract(format!("{n:05x}").into_bytes());
        match t
            .kernel
            .vfs
            .unix_bind(&ctx, sock, name, Creds { uid: 0, gid: 0 }, &src)
        {
            Err(e) if e.code() == libc::EADDRINUSE => continue,
            r => return r,
        }
    }
    Err(Errno::ENOSPC.because("autobind names exhausted"))
}

/// `listen(fd, backlog)`.
pub fn listen(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (_f, sock) = socket_of(t, a[0])?;
    sock.listen(arg_i32(a[1]))?;
    sock.set_cred(my_cred(t));
    Ok(0)
}

/// `connect(fd, addr, addrlen)`. A full backlog blocks a blocking socket
/// until an `accept` (Linux `unix_wait_for_peer`) and is `EAGAIN` for a
/// non-blocking one.
pub fn connect(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (f, sock) = socket_of(t, a[0])?;
    let addr = read_addr(t, a[1], a[2])?;
    let ctx = fs_ctx(t);
    let target = {
        let src = proc_src(t);
        t.kernel.vfs.unix_find(&ctx, &addr, &src)?
    };
    if sock.sock_type() != SockType::Dgram {
        sock.set_cred(my_cred(t));
    }
    let op = |_: &mut TaskRunner| {
        sock.connect(&target, addr.clone(), |server| {
            FileDescription::new_socket(server, 0)
        })
    };
    if f.is_nonblocking() {
        op(t)?;
    } else {
        t.block_on(target.queue(), EVENT_OUT, None, op)?;
    }
    Ok(0)
}

fn do_accept(t: &mut TaskRunner, a: [u64; 6], flags: i32) -> SysResult<u64> {
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL.because("bad accept4 flags"));
    }
    let (f, sock) = socket_of(t, a[0])?;
    let new = if f.is_nonblocking() {
        sock.accept()?
    } else {
        t.block_on(sock.queue(), EVENT_IN, None, |_| sock.accept())?
    };
    // A connector blocked on a full backlog may proceed.
    sock.queue().notify(EVENT_OUT);
    let (nb, cloexec) = creation_flags(flags);
    new.set_status_flags(nb);
    let peer = new.socket()?.peer_name().unwrap_or(UnixAddr::Unnamed);
    if a[1] != 0 {
        write_addr(t, a[1], a[2], &peer)?;
    }
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    Ok(fds.install(new, cloexec, 0)? as u64)
}

/// `accept(fd, addr, addrlen)`.
pub fn accept(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    do_accept(t, a, 0)
}

/// `accept4(fd, addr, addrlen, flags)`.
pub fn accept4(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    do_accept(t, a, arg_i32(a[3]))
}

/// `getsockname(fd, addr, addrlen)`.
pub fn getsockname(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (_f, sock) = socket_of(t, a[0])?;
    if a[2] == 0 {
        return Err(Errno::EFAULT);
    }
    write_addr(t, a[1], a[2], &sock.local_name())?;
    Ok(0)
}

/// `getpeername(fd, addr, addrlen)`.
pub fn getpeername(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (_f, sock) = socket_of(t, a[0])?;
    let name = sock.peer_name()?;
    if a[2] == 0 {
        return Err(Errno::EFAULT);
    }
    write_addr(t, a[1], a[2], &name)?;
    Ok(0)
}

/// `shutdown(fd, how)`.
pub fn shutdown(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (_f, sock) = socket_of(t, a[0])?;
    sock.shutdown(arg_i32(a[1]))?;
    Ok(0)
}

// ---- data ----

/// Sends `data` (with `rights` on the first segment) on `sock`; streams
/// keep going after short sends when blocking, like `do_write`.
/// `EPIPE` raises SIGPIPE unless `MSG_NOSIGNAL`.
fn do_send(
    t: &mut TaskRunner,
    f: &Arc<FileDescription>,
    sock: &Arc<UnixSocket>,
    data: &[u8],
    rights: Vec<Arc<FileDescription>>,
    to: Option<&UnixAddr>,
    flags: u32,
) -> SysResult<usize> {
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP.because("MSG_OOB on a Unix socket"));
    }
    let target = match to {
        Some(addr) if sock.sock_type() == SockType::Dgram => {
            let ctx = fs_ctx(t);
            let src = proc_src(t);
            Some(t.kernel.vfs.unix_find(&ctx, addr, &src)?)
        }
        // Linux `unix_stream_sendmsg`: an address on a stream socket is
        // EISCONN when connected, EOPNOTSUPP otherwise.
        Some(_) if sock.sock_type() == SockType::Stream => {
            return Err(if sock.peer_name().is_ok() {
                Errno::EISCONN
            } else {
                Errno::EOPNOTSUPP
            });
        }
        // `unix_seqpacket_sendmsg` ignores the address.
        _ => None,
    };
    let nonblock = f.is_nonblocking() || flags & MSG_DONTWAIT != 0;
    let stream = sock.sock_type() == SockType::Stream;
    let mut done = 0usize;
    let mut rights = Some(rights);
    let r = loop {
        let chunk = &data[done..];
        let fds = rights.clone().unwrap_or_default();
        let op = |_: &mut TaskRunner| sock.send(chunk, fds.clone(), target.as_ref());
        // A full receiver wakes this socket's queue when it dequeues (or
        // closes), whoever it is: the peer, or the target of `sendto`.
        let r = if nonblock {
            op(t)
        } else {
            t.block_on(sock.queue(), EVENT_OUT, None, op)
        };
        match r {
            Ok(n) => {
                rights = None;
                done += n;
                if !stream || done >= data.len() || n == 0 {
                    break Ok(done);
                }
            }
            Err(e) if done > 0 && e.code() != libc::EFAULT => break Ok(done),
            Err(e) => break Err(e),
        }
    };
    // Linux `unix_dgram_sendmsg`: no address and no peer is ENOTCONN (the
    // library says EDESTADDRREQ).
    let r = r.map_err(|e| {
        if e.code() == libc::EDESTADDRREQ {
            Errno::ENOTCONN
        } else {
            e
        }
    });
    if let Err(e) = r {
        if e.code() == libc::EPIPE && flags & MSG_NOSIGNAL == 0 {
            t.send_self(SigInfo::kernel(crate::kernel::signal::SIGPIPE));
        }
    }
    r
}

/// What `do_recv` got.
struct Got {
    data: Vec<u8>,
    /// The length to return (`full_len` with `MSG_TRUNC` on message
    /// sockets).
    ret: usize,
    msg_flags: u32,
    fds: Vec<Arc<FileDescription>>,
    from: UnixAddr,
}

fn do_recv(
    t: &mut TaskRunner,
    f: &Arc<FileDescription>,
    sock: &Arc<UnixSocket>,
    max: usize,
    flags: u32,
) -> SysResult<Got> {
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP.because("MSG_OOB on a Unix socket"));
    }
    let max = max.min(MAX_IO);
    let peek = flags & MSG_PEEK != 0;
    let nonblock = f.is_nonblocking() || flags & MSG_DONTWAIT != 0;
    let stream = sock.sock_type() == SockType::Stream;
    let mut op = |_: &mut TaskRunner| sock.recv(max, peek);
    let first = if nonblock {
        op(t)?
    } else {
        t.block_on(sock.queue(), EVENT_IN, None, &mut op)?
    };
    let mut got = Got {
        ret: if !stream && flags & MSG_TRUNC != 0 {
            first.full_len
        } else {
            first.data.len()
        },
        msg_flags: if first.full_len > first.data.len() {
            MSG_TRUNC
        } else {
            0
        },
        data: first.data,
        fds: first.fds,
        from: first.from,
    };
    // MSG_WAITALL on a stream: keep reading until full, EOF, a signal or
    // an error (Linux `unix_stream_read_generic` with `target = len`).
    if stream && flags & MSG_WAITALL != 0 && !nonblock && !peek {
        while got.data.len() < max && !got.data.is_empty() && got.fds.is_empty() {
            let want = max - got.data.len();
            let mut op = |_: &mut TaskRunner| sock.recv(want, false);
            match t.block_on(sock.queue(), EVENT_IN, None, &mut op) {
                Ok(more) if more.data.is_empty() => break,
                Ok(more) => {
                    got.data.extend_from_slice(&more.data);
                    got.fds = more.fds;
                }
                Err(_) => break,
            }
        }
        got.ret = got.data.len();
    }
    Ok(got)
}

/// `sendto(fd, buf, len, flags, addr, addrlen)`.
pub fn sendto(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (f, sock) = socket_of(t, a[0])?;
    let len = (a[2] as usize).min(MAX_IO);
    let mut data = vec![0u8; len];
    t.copy_in(a[1], &mut data)?;
    let to = if a[4] != 0 {
        Some(read_addr(t, a[4], a[5])?)
    } else {
        None
    };
    Ok(do_send(t, &f, &sock, &data, Vec::new(), to.as_ref(), a[3] as u32)? as u64)
}

/// `recvfrom(fd, buf, len, flags, addr, addrlen)`.
pub fn recvfrom(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (f, sock) = socket_of(t, a[0])?;
    let got = do_recv(t, &f, &sock, a[2] as usize, a[3] as u32)?;
    t.copy_out(a[1], &got.data)?;
    if a[4] != 0 {
        write_addr_bytes(t, a[4], a[5], &sender_bytes(&got.from))?;
    }
    Ok(got.ret as u64)
}

/// A guest `struct msghdr`.
struct MsgHdr {
    name: u64,
    namelen: u32,
    iov: Vec<(u64, u64)>,
    control: u64,
    controllen: u64,
}

fn read_msghdr(t: &mut TaskRunner, addr: u64) -> SysResult<MsgHdr> {
    let b = t.read_array::<MSGHDR_SIZE>(addr)?;
    let iov_addr = u64_at(&b, 16);
    let iovlen = u64_at(&b, 24);
    if iovlen > UIO_MAXIOV {
        return Err(Errno::EMSGSIZE.because("too many iovecs"));
    }
    let mut raw = vec![0u8; iovlen as usize * 16];
    t.copy_in(iov_addr, &mut raw)?;
    let mut iov = Vec::with_capacity(iovlen as usize);
    let mut total: u64 = 0;
    for e in raw.chunks_exact(16) {
        let (base, len) = (u64_at(e, 0), u64_at(e, 8));
        if len > isize::MAX as u64 {
            return Err(Errno::EINVAL.because("iovec length overflows"));
        }
        total = total.saturating_add(len);
        iov.push((base, len));
    }
    if total > isize::MAX as u64 {
        return Err(Errno::EINVAL.because("iovec total overflows"));
    }
    Ok(MsgHdr {
        name: u64_at(&b, 0),
        namelen: u32_at(&b, 8),
        iov,
        control: u64_at(&b, 32),
        controllen: u64_at(&b, 40),
    })
}

/// Parses `sendmsg`'s control buffer: `SCM_RIGHTS` descriptions (looked
/// up now, `EBADF` for a bad fd) and `SCM_CREDENTIALS` checked against
/// the caller (Linux `__scm_send`, `scm_check_creds`).
fn parse_control(t: &mut TaskRunner, m: &MsgHdr) -> SysResult<Vec<Arc<FileDescription>>> {
    let mut rights = Vec::new();
    if m.controllen == 0 {
        return Ok(rights);
    }
    if m.controllen > OPTMEM_MAX {
        return Err(Errno::new(libc::ENOBUFS).because("control buffer too large"));
    }
    let mut c = vec![0u8; m.controllen as usize];
    t.copy_in(m.control, &mut c)?;
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let mut off = 0usize;
    while off + CMSGHDR_SIZE <= c.len() {
        let len = u64_at(&c, off);
        if len < CMSGHDR_SIZE as u64 || len > (c.len() - off) as u64 {
            return Err(Errno::EINVAL.because("bad cmsg_len"));
        }
        let len = len as usize;
        let level = u32_at(&c, off + 8) as i32;
        let ty = u32_at(&c, off + 12) as i32;
        let body = &c[off + CMSGHDR_SIZE..off + len];
        if level == libc::SOL_SOCKET {
            match ty {
                libc::SCM_RIGHTS => {
                    if !body.len().is_multiple_of(4) || body.is_empty() {
                        return Err(Errno::EINVAL.because("bad SCM_RIGHTS length"));
                    }
                    if rights.len() + body.len() / 4 > SCM_MAX_FD {
                        return Err(Errno::EINVAL.because("too many SCM_RIGHTS fds"));
                    }
                    for fd in body.chunks_exact(4) {
                        let fd = i32::from_le_bytes([fd[0], fd[1], fd[2], fd[3]]);
                        rights.push(fds.get(fd)?);
                    }
                }
                libc::SCM_CREDENTIALS => {
                    if body.len() != 12 {
                        return Err(Errno::EINVAL.because("bad SCM_CREDENTIALS length"));
                    }
                    check_creds(t, body)?;
                }
                _ => return Err(Errno::EINVAL.because("unknown SOL_SOCKET cmsg type")),
            }
        }
        // CMSG_NXTHDR: the next header starts at the aligned end.
        off += (len + 7) & !7;
    }
    Ok(rights)
}

/// Linux `scm_check_creds` without capabilities: the pid must be the
/// caller's, the ids among its real/effective/saved ones.
fn check_creds(t: &TaskRunner, body: &[u8]) -> SysResult<()> {
    let pid = u32_at(body, 0) as i32;
    let uid = u32_at(body, 4);
    let gid = u32_at(body, 8);
    let l = t.task.local();
    let c = &l.creds;
    let root = c.euid == 0;
    let uid_ok = root || [c.ruid, c.euid, c.suid].contains(&uid);
    let gid_ok = root || [c.rgid, c.egid, c.sgid].contains(&gid);
    if (pid != t.pid() && !root) || !uid_ok || !gid_ok {
        return Err(Errno::EPERM.because("SCM_CREDENTIALS do not match the sender"));
    }
    Ok(())
}

/// `sendmsg(fd, msg, flags)`.
pub fn sendmsg(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (f, sock) = socket_of(t, a[0])?;
    let m = read_msghdr(t, a[1])?;
    let to = if m.name != 0 && m.namelen != 0 {
        Some(read_addr(t, m.name, u64::from(m.namelen))?)
    } else {
        None
    };
    let mut data = Vec::new();
    for &(base, len) in &m.iov {
        let take = (len as usize).min(MAX_IO - data.len());
        let start = data.len();
        data.resize(start + take, 0);
        t.copy_in(base, &mut data[start..])?;
    }
    let rights = parse_control(t, &m)?;
    Ok(do_send(t, &f, &sock, &data, rights, to.as_ref(), a[2] as u32)? as u64)
}

/// Builds the `SCM_RIGHTS` control message for `fds` into at most `room`
/// bytes, installing the descriptions that fit; the rest are dropped
/// (closed) and `MSG_CTRUNC` set, like Linux `scm_detach_fds`.
fn build_rights(
    t: &TaskRunner,
    fds: Vec<Arc<FileDescription>>,
    room: usize,
    cloexec: bool,
    msg_flags: &mut u32,
) -> SysResult<Vec<u8>> {
    if fds.is_empty() {
        return Ok(Vec::new());
    }
    let fit = room.saturating_sub(CMSGHDR_SIZE) / 4;
    let n = fds.len().min(fit);
    if n < fds.len() {
        *msg_flags |= MSG_CTRUNC;
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let table = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let mut nums = Vec::with_capacity(n);
    for f in fds.into_iter().take(n) {
        match table.install(f, cloexec, 0) {
            Ok(fd) => nums.push(fd),
            Err(_) => {
                // EMFILE: Linux stops and reports MSG_CTRUNC.
                *msg_flags |= MSG_CTRUNC;
                break;
            }
        }
    }
    let mut c = Vec::with_capacity(CMSGHDR_SIZE + nums.len() * 4);
    c.extend_from_slice(&((CMSGHDR_SIZE + nums.len() * 4) as u64).to_le_bytes());
    c.extend_from_slice(&libc::SOL_SOCKET.to_le_bytes());
    c.extend_from_slice(&libc::SCM_RIGHTS.to_le_bytes());
    for fd in nums {
        c.extend_from_slice(&fd.to_le_bytes());
    }
    Ok(c)
}

/// `recvmsg(fd, msg, flags)`: data scattered over the iovecs, the
/// sender's address into `msg_name`, `SCM_RIGHTS` into `msg_control`;
/// `msg_namelen`, `msg_controllen` and `msg_flags` written back.
pub fn recvmsg(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (f, sock) = socket_of(t, a[0])?;
    let flags = a[2] as u32;
    let m = read_msghdr(t, a[1])?;
    let cap: u64 = m.iov.iter().map(|&(_, l)| l).sum();
    let mut got = do_recv(t, &f, &sock, cap.min(MAX_IO as u64) as usize, flags)?;
    let mut off = 0usize;
    for &(base, len) in &m.iov {
        if off >= got.data.len() {
            break;
        }
        let n = (len as usize).min(got.data.len() - off);
        t.copy_out(base, &got.data[off..off + n])?;
        off += n;
    }
    if m.name != 0 {
        let b = sender_bytes(&got.from);
        let n = b.len().min(m.namelen as usize);
        t.copy_out(m.name, &b[..n])?;
        t.write_u32(a[1] + 8, b.len() as u32)?;
    } else {
        t.write_u32(a[1] + 8, 0)?;
    }
    let room = if m.control == 0 {
        0
    } else {
        m.controllen as usize
    };
    let cloexec = flags & MSG_CMSG_CLOEXEC != 0;
    // Linux `___sys_recvmsg` starts `msg_flags` from the caller's
    // MSG_CMSG_CLOEXEC.
    got.msg_flags |= flags & MSG_CMSG_CLOEXEC;
    let fds = std::mem::take(&mut got.fds);
    let control = build_rights(t, fds, room, cloexec, &mut got.msg_flags)?;
    t.copy_out(m.control, &control)?;
    t.copy_out(a[1] + 40, &(control.len() as u64).to_le_bytes())?;
    t.write_u32(a[1] + 48, got.msg_flags)?;
    Ok(got.ret as u64)
}

// ---- options ----

const SO_REUSEADDR: i32 = 2;
const SO_TYPE: i32 = 3;
const SO_ERROR: i32 = 4;
const SO_KEEPALIVE: i32 = 9;
const SO_SNDBUF: i32 = 7;
const SO_RCVBUF: i32 = 8;
const SO_PASSCRED: i32 = 16;
const SO_PEERCRED: i32 = 17;
const SO_PROTOCOL: i32 = 38;
const SO_DOMAIN: i32 = 39;

/// `setsockopt(fd, level, name, val, len)`: `SO_SNDBUF`/`SO_RCVBUF`
/// (accepted; the buffer stays at the fixed inbox capacity, which is
/// Linux's default), `SO_REUSEADDR`/`SO_KEEPALIVE` (accepted; meaningless
/// for Unix sockets in Linux too). Everything else is `ENOPROTOOPT`.
pub fn setsockopt(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (_f, _sock) = socket_of(t, a[0])?;
    let level = arg_i32(a[1]);
    let name = arg_i32(a[2]);
    if level != libc::SOL_SOCKET {
        return Err(Errno::ENOPROTOOPT.because("no such option level on a Unix socket"));
    }
    match name {
        SO_SNDBUF | SO_RCVBUF | SO_REUSEADDR | SO_KEEPALIVE => {
            if (arg_i32(a[4]) as i64) < 4 {
                return Err(Errno::EINVAL.because("option value too short"));
            }
            t.read_u32(a[3])?;
            Ok(0)
        }
        SO_PASSCRED => Err(Errno::ENOPROTOOPT.because("SO_PASSCRED is not supported")),
        _ => Err(Errno::ENOPROTOOPT.because("unsupported socket option")),
    }
}

/// `getsockopt(fd, level, name, val, len)`.
pub fn getsockopt(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let (_f, sock) = socket_of(t, a[0])?;
    let level = arg_i32(a[1]);
    let name = arg_i32(a[2]);
    if level != libc::SOL_SOCKET {
        return Err(Errno::ENOPROTOOPT.because("no such option level on a Unix socket"));
    }
    let int = |v: i32| v.to_le_bytes().to_vec();
    let val = match name {
        SO_TYPE => int(sock.sock_type().raw()),
        SO_ERROR | SO_REUSEADDR | SO_KEEPALIVE | SO_PASSCRED => int(0),
        SO_SNDBUF | SO_RCVBUF => int(INBOX_CAPACITY as i32),
        SO_DOMAIN => int(libc::AF_UNIX),
        SO_PROTOCOL => int(0),
        SO_PEERCRED => sock.peer_cred()?.to_bytes().to_vec(),
        _ => return Err(Errno::ENOPROTOOPT.because("unsupported socket option")),
    };
    let len = t.read_u32(a[4])? as i32;
    if len < 0 {
        return Err(Errno::EINVAL.because("negative option length"));
    }
    let n = val.len().min(len as usize);
    t.copy_out(a[3], &val[..n])?;
    t.write_u32(a[4], n as u32)?;
    Ok(0)
}

// ---- batches ----

/// `sizeof(struct mmsghdr)`: a `msghdr`, `msg_len` and padding.
const MMSGHDR_SIZE: u64 = 64;
const MSG_WAITFORONE: u32 = 0x10000;

/// `sendmmsg(fd, msgvec, vlen, flags)`: `sendmsg` per entry, storing each
/// count in `msg_len`; stops at the first error, which is returned only
/// if nothing was sent (Linux `__sys_sendmmsg`).
pub fn sendmmsg(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    socket_of(t, a[0])?;
    let vlen = (a[2] as u32).min(UIO_MAXIOV as u32) as u64;
    let mut sent = 0u64;
    while sent < vlen {
        let hdr = a[1] + sent * MMSGHDR_SIZE;
        match sendmsg(t, [a[0], hdr, a[3], 0, 0, 0]) {
            Ok(n) => {
                t.write_u32(hdr + MSGHDR_SIZE as u64, n as u32)?;
                sent += 1;
            }
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

/// `recvmmsg(fd, msgvec, vlen, flags, timeout)`: `recvmsg` per entry;
/// after the first message `MSG_WAITFORONE` makes the rest non-blocking.
/// The timeout is, as in Linux, only checked between messages; here a
/// given timeout makes every message after the first non-blocking.
pub fn recvmmsg(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    socket_of(t, a[0])?;
    let vlen = (a[2] as u32).min(UIO_MAXIOV as u32) as u64;
    let mut flags = a[3] as u32 & !MSG_WAITFORONE;
    if a[4] != 0 {
        crate::kernel::time::timespec_from(&t.read_array::<16>(a[4])?)?;
    }
    let mut got = 0u64;
    while got < vlen {
        let hdr = a[1] + got * MMSGHDR_SIZE;
        match recvmsg(t, [a[0], hdr, u64::from(flags), 0, 0, 0]) {
            Ok(n) => {
                t.write_u32(hdr + MSGHDR_SIZE as u64, n as u32)?;
                got += 1;
                if a[3] as u32 & MSG_WAITFORONE != 0 || a[4] != 0 {
                    flags |= MSG_DONTWAIT;
                }
            }
            Err(e) if got == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(got)
}
