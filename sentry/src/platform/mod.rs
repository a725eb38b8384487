//! The contract between the sentry and an execution platform.
//!
//! A platform runs application code and reports back every time that code
//! needs the kernel: a system call, a synchronous fault, or an interruption
//! requested by the kernel. The kernel never lets the host execute an
//! application system call.
//!
//! # Threading model
//!
//! Every guest task has one host thread (its *task goroutine*, in gVisor's
//! words). A [`Context`] is created on, and used only from, that thread:
//! with ptrace the thread that creates a stub is its tracer, and only the
//! tracer may operate on it. A [`Context`] is therefore deliberately not
//! `Send`. Other threads reach a running context only through its
//! [`Interrupter`], which is `Send + Sync`.
//!
//! # Address spaces
//!
//! A context owns one application address space (with ptrace: one stub
//! process). The kernel's memory manager decides what is mapped where; the
//! context only carries out `map`/`unmap`/`protect` of ranges of the
//! *memory file* (the memfd the sentry owns, see `mm`). Those operations
//! take effect for every context that shares the address space.

mod regs;

pub use regs::{FpState, Registers};

use std::sync::Arc;

/// Page protection bits as used by `mmap`/`mprotect` (`PROT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    pub const NONE: Prot = Prot {
        read: false,
        write: false,
        exec: false,
    };
    pub const R: Prot = Prot {
        read: true,
        write: false,
        exec: false,
    };
    pub const RW: Prot = Prot {
        read: true,
        write: true,
        exec: false,
    };
    pub const RX: Prot = Prot {
        read: true,
        write: false,
        exec: true,
    };
    pub const RWX: Prot = Prot {
        read: true,
        write: true,
        exec: true,
    };

    /// Converts Linux `PROT_*` bits (unknown bits are ignored by the caller's
    /// validation, not here).
    pub fn from_bits(bits: u64) -> Prot {
        Prot {
            read: bits & 1 != 0,
            write: bits & 2 != 0,
            exec: bits & 4 != 0,
        }
    }

    /// The Linux `PROT_*` bits.
    pub fn bits(self) -> u64 {
        (self.read as u64) | ((self.write as u64) << 1) | ((self.exec as u64) << 2)
    }
}

/// Why a [`Context::switch`] returned to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The application executed `syscall`. The registers hold the request:
    /// `orig_rax` is the system call number, `rdi, rsi, rdx, r10, r8, r9`
    /// the arguments, `rip` points *after* the `syscall` instruction. The
    /// kernel writes the result into `rax` and switches again.
    Syscall,
    /// A synchronous fault raised by application code (SIGSEGV, SIGBUS,
    /// SIGFPE, SIGILL, SIGTRAP). `rip` points at the faulting instruction.
    Fault(Fault),
    /// The context was kicked out of application code by its
    /// [`Interrupter`] (or by a host signal that is not the application's
    /// business). Nothing happened to the application.
    Interrupted,
}

/// A synchronous fault, as the host reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Host signal number (`SIGSEGV`, `SIGBUS`, `SIGFPE`, `SIGILL`, `SIGTRAP`).
    pub signo: i32,
    /// `si_code` of the host siginfo (e.g. `SEGV_MAPERR`, `SEGV_ACCERR`).
    pub code: i32,
    /// `si_addr`: the faulting data address for SIGSEGV/SIGBUS, the
    /// instruction for SIGILL/SIGFPE.
    pub addr: u64,
    /// Whether the access was a write, when the platform can tell
    /// (x86 page-fault error code bit 1); `None` when unknown.
    pub write: Option<bool>,
}

/// Errors of the platform itself (never of the application).
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("cannot create a stub process")]
    CreateStub(#[source] std::io::Error),
    #[error("ptrace {op} on stub thread {tid} failed")]
    Ptrace {
        op: &'static str,
        tid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("injected {syscall} in stub thread {tid} returned errno {errno}")]
    Injected {
        syscall: &'static str,
        tid: i32,
        errno: i32,
    },
    #[error("stub thread {tid} died unexpectedly (wait status {status:#x})")]
    StubDied { tid: i32, status: i32 },
    #[error("register state rejected by the host")]
    BadRegisters(#[source] std::io::Error),
    #[error("{what} not supported by this platform")]
    Unsupported { what: &'static str },
}

/// Kicks a context out of application code from any thread.
///
/// `interrupt` is idempotent and may be called at any time: if the context
/// is running application code, its `switch` returns
/// [`Event::Interrupted`] promptly; if it is not, the next `switch` may
/// return `Interrupted` at once (a spurious interruption the kernel must
/// tolerate). No interruption is ever lost.
pub trait Interrupter: Send + Sync {
    fn interrupt(&self);
}

/// One application thread of execution inside one address space.
///
/// Created on, and used only from, the task's host thread.
pub trait Context {
    /// Runs application code with `regs` until the next [`Event`]; on
    /// return `regs` holds the application's registers at that point.
    /// The extended (FPU/SSE/AVX) state stays in the context between
    /// switches; see [`Context::get_fp`] / [`Context::set_fp`].
    fn switch(&mut self, regs: &mut Registers) -> Result<Event, PlatformError>;

    /// Reads the extended register state (XSAVE layout).
    fn get_fp(&mut self, fp: &mut FpState) -> Result<(), PlatformError>;

    /// Replaces the extended register state (XSAVE layout).
    fn set_fp(&mut self, fp: &FpState) -> Result<(), PlatformError>;

    /// Maps `len` bytes of the memory file at `file_offset` at `addr` with
    /// `prot` (`MAP_SHARED | MAP_FIXED`), replacing whatever was there.
    /// `addr`, `len` and `file_offset` are page-aligned.
    fn map(
        &mut self,
        addr: u64,
        len: u64,
        prot: Prot,
        file_offset: u64,
    ) -> Result<(), PlatformError>;

    /// Unmaps `[addr, addr+len)`; unmapped pages fault on next access.
    fn unmap(&mut self, addr: u64, len: u64) -> Result<(), PlatformError>;

    /// Changes the protection of mapped pages in `[addr, addr+len)`.
    fn protect(&mut self, addr: u64, len: u64, prot: Prot) -> Result<(), PlatformError>;

    /// A handle other threads use to kick this context out of app code.
    fn interrupter(&self) -> Arc<dyn Interrupter>;

    /// Creates another application thread in this context's address space
    /// (the platform half of `clone(CLONE_VM | CLONE_THREAD)`). The new
    /// thread starts with a copy of this context's extended (FP) state; the
    /// kernel sets its registers at its first `switch`. It runs nothing
    /// until the new task's host thread turns the seed into a context with
    /// [`ThreadSeed::attach`]. `map`/`unmap`/`protect` through any thread's
    /// context affect all of them.
    fn new_thread(&mut self) -> Result<Box<dyn ThreadSeed>, PlatformError> {
        Err(PlatformError::Unsupported { what: "threads" })
    }
}

/// A thread made by [`Context::new_thread`], on its way to its own host
/// thread.
pub trait ThreadSeed: Send {
    /// Makes the calling host thread the owner of the new thread: the
    /// returned context is usable only from it (like
    /// [`Platform::new_context`]).
    fn attach(self: Box<Self>) -> Result<Box<dyn Context>, PlatformError>;
}

/// An execution platform.
pub trait Platform: Send + Sync {
    /// Creates a fresh, empty address space with one context in it, traced
    /// by (and usable only from) the calling thread.
    fn new_context(&self) -> Result<Box<dyn Context>, PlatformError>;

    /// One past the highest application address. Everything at or above it
    /// belongs to the platform (the stub's code page) and must never be
    /// given to the application.
    fn max_user_address(&self) -> u64;

    /// Size in bytes of the XSAVE area [`FpState`] holds on this host.
    fn fp_state_size(&self) -> usize;
}
