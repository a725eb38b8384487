//! Linux error numbers as the guest sees them.
//!
//! The syscall path returns `Result<_, Errno>`; a handler that wants to
//! explain itself in the trace log attaches a static message with
//! [`Errno::because`]. Guest mistakes are errnos, never panics.

use std::fmt;

/// A Linux errno (positive), optionally with a static explanation for logs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Errno {
    code: i32,
    why: Option<&'static str>,
}

macro_rules! errnos {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(pub const $name: Errno = Errno { code: libc::$name, why: None };)*

            /// The symbolic name (`"ENOENT"`), or `"E?"` for unknown codes.
            pub fn name(self) -> &'static str {
                match self.code {
                    $(libc::$name => stringify!($name),)*
                    _ => "E?",
                }
            }
        }
    };
}

errnos!(
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    ETXTBSY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    EDOM,
    ERANGE,
    EDEADLK,
    ENAMETOOLONG,
    ENOLCK,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    ENODATA,
    ENOTSOCK,
    EOPNOTSUPP,
    EAFNOSUPPORT,
    EADDRINUSE,
    ECONNREFUSED,
    ENOTCONN,
    ETIMEDOUT,
    EOVERFLOW,
    EPROTONOSUPPORT,
    ECONNRESET,
    EISCONN,
    EDESTADDRREQ,
    EMSGSIZE,
    ENOPROTOOPT,
);

/// `ERESTARTSYS` (kernel-internal, never seen by the guest): the call was
/// interrupted by a signal and is restarted if the handler has `SA_RESTART`.
pub const ERESTARTSYS: i32 = 512;
/// `ERESTARTNOINTR`: always restarted after the signal handler.
pub const ERESTARTNOINTR: i32 = 513;
/// `ERESTARTNOHAND`: restarted only if no handler ran.
pub const ERESTARTNOHAND: i32 = 514;
/// `ERESTART_RESTARTBLOCK`: restarted through `restart_syscall(2)`.
pub const ERESTART_RESTARTBLOCK: i32 = 516;

impl Errno {
    /// An errno from its number.
    pub const fn new(code: i32) -> Errno {
        Errno { code, why: None }
    }

    /// Attaches a static explanation, shown in trace logs only.
    pub const fn because(self, why: &'static str) -> Errno {
        Errno {
            code: self.code,
            why: Some(why),
        }
    }

    /// The positive error number.
    pub const fn code(self) -> i32 {
        self.code
    }

    /// The explanation attached with [`Errno::because`], if any.
    pub fn why(self) -> Option<&'static str> {
        self.why
    }

    /// The value a system call returns for this error (`-code`).
    pub fn as_return(self) -> u64 {
        (-(self.code as i64)) as u64
    }

    /// Same number as `EOPNOTSUPP` on Linux (so not a separate entry of the
    /// name table, whose match would have an unreachable arm).
    pub const ENOTSUP: Errno = Errno::EOPNOTSUPP;

    pub const ERESTARTSYS: Errno = Errno::new(ERESTARTSYS);
    pub const ERESTARTNOINTR: Errno = Errno::new(ERESTARTNOINTR);
    pub const ERESTARTNOHAND: Errno = Errno::new(ERESTARTNOHAND);
    pub const ERESTART_RESTARTBLOCK: Errno = Errno::new(ERESTART_RESTARTBLOCK);
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            Some(why) => write!(f, "{} ({why})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Errno {}

/// Syscall-path result.
pub type SysResult<T> = Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_value_is_negated_code() {
        assert_eq!(Errno::EFAULT.as_return() as i64, -14);
    }

    #[test]
    fn name_and_reason_show_in_debug() {
        let e = Errno::EINVAL.because("flags");
        assert_eq!(format!("{e:?}"), "EINVAL (flags)");
        assert_eq!(e, Errno::EINVAL.because("flags"));
    }
}
