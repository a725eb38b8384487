//! Socket syscalls. The sandbox has no socket families yet (no network,
//! no unix sockets), and says so the way Linux does for a kernel built
//! without them: `socket`/`socketpair` fail with `EAFNOSUPPORT` (logged
//! once per sandbox, like an unimplemented syscall), and every socket
//! operation on an fd fails with `EBADF` for a closed fd and `ENOTSOCK`
//! otherwise (no fd can be a socket) — which is what programs probing
//! their stdio (bash's `getpeername(0)`) expect.

use crate::errno::{Errno, SysResult};
use crate::kernel::TaskRunner;

use super::arg_i32;

fn no_family(t: &mut TaskRunner, nr: u64, name: &str) -> SysResult<u64> {
    t.kernel
        .log_unsupported(nr, name, "no socket families in the sandbox: EAFNOSUPPORT");
    Err(Errno::EAFNOSUPPORT.because("no socket families in the sandbox"))
}

/// `socket(domain, type, protocol)`.
pub fn socket(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    no_family(t, 41, "socket")
}

/// `socketpair(domain, type, protocol, sv)`.
pub fn socketpair(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    no_family(t, 53, "socketpair")
}

/// Any socket operation whose first argument is an fd.
fn not_a_socket(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    fds.get(arg_i32(a[0]))?;
    Err(Errno::ENOTSOCK)
}

macro_rules! fd_socket_ops {
    ($($name:ident),*) => {
        $(
            #[doc = concat!("`", stringify!($name), "`: EBADF or ENOTSOCK (see the module docs).")]
            pub fn $name(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
                not_a_socket(t, a)
            }
        )*
    };
}

fd_socket_ops!(
    connect,
    accept,
    accept4,
    sendto,
    recvfrom,
    sendmsg,
    recvmsg,
    shutdown,
    bind,
    listen,
    getsockname,
    getpeername,
    setsockopt,
    getsockopt,
    sendmmsg,
    recvmmsg
);
