//! The x86-64 system-call table and its handlers, grouped by family.
//!
//! [`table`] is the one declarative list of every x86-64 syscall number
//! (from `arch/x86/entry/syscalls/syscall_64.tbl`) with its name and,
//! where implemented, its handler. It generates dispatch ([`lookup`]),
//! the names used by the strace-style `trace!` lines and the unimplemented
//! set (entries without a handler: `ENOSYS`, logged once per sandbox).
//!
//! Handlers take the task's runner and the six raw argument registers and
//! return `SysResult<u64>`; they validate at this boundary (every guest
//! pointer through copy-in/out, every flag checked) and trust inside.

pub mod epoll;
pub mod fs;
pub mod futex;
pub mod mm;
pub mod poll;
pub mod process;
pub mod signal;
pub mod socket;
pub mod time;

mod table;

use crate::errno::SysResult;
use crate::kernel::TaskRunner;

pub use futex::futex_wake_addr;

/// A syscall handler.
pub type Handler = fn(&mut TaskRunner, [u64; 6]) -> SysResult<u64>;

/// Generates [`lookup`] from `nr name => (handler?)` rows.
macro_rules! syscall_table {
    ($($nr:literal $name:ident => ($($h:path)?),)*) => {
        /// The name and handler (if implemented) of syscall `nr`.
        pub fn lookup(nr: u64) -> Option<(&'static str, Option<Handler>)> {
            match nr {
                $($nr => Some((stringify!($name), None$(.or(Some($h as Handler)))?)),)*
                _ => None,
            }
        }

        /// Every syscall number the table knows, implemented or not.
        pub fn all_numbers() -> &'static [u64] {
            &[$($nr),*]
        }
    };
}
pub(crate) use syscall_table;

pub use table::{all_numbers, lookup};

/// Whether `EPIPE` from this syscall raises SIGPIPE (writes to pipes and
/// sockets; Linux `pipe_write`, `sk_stream_error`).
pub fn raises_sigpipe(nr: u64) -> bool {
    // write, pwrite64, writev, sendfile, pwritev, pwritev2, splice,
    // vmsplice; sendto/sendmsg/sendmmsg raise it themselves unless
    // MSG_NOSIGNAL (socket.rs).
    matches!(nr, 1 | 18 | 20 | 40 | 275 | 278 | 296 | 328)
}

/// Argument helpers: registers hold u64; these give the C types.
pub fn arg_i32(v: u64) -> i32 {
    v as u32 as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_match_linux_numbers() {
        assert_eq!(lookup(0).map(|e| e.0), Some("read"));
        assert_eq!(lookup(59).map(|e| e.0), Some("execve"));
        assert_eq!(lookup(231).map(|e| e.0), Some("exit_group"));
        assert_eq!(lookup(439).map(|e| e.0), Some("faccessat2"));
        assert!(lookup(1000).is_none());
    }

    #[test]
    fn unimplemented_entries_have_names_but_no_handler() {
        let (name, h) = lookup(174).expect("create_module is in the table");
        assert_eq!(name, "create_module");
        assert!(h.is_none());
        assert!(lookup(1).and_then(|e| e.1).is_some());
    }
}
