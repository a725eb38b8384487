//! The ptrace implementation of `sentry::platform::Platform`.
//!
//! Each context is a *stub*: a host process forked from its tracer thread
//! whose address space holds only one page of platform code at
//! [`STUB_BASE`] plus the ranges of the memory file the sentry maps into it
//! (see [`stub`] for how a stub is built). Application code runs in the
//! stub under `PTRACE_SYSEMU`: every application system call stops the stub
//! and is handed to the sentry; the host never executes one. The sentry's
//! own `mmap`/`munmap`/`mprotect` in the stub are injected system calls
//! ([`inject`]).
//!
//! Threading: a context is created on, and used only from, its task's host
//! thread, which is the stub's tracer (`PtraceContext` is `!Send`). Other
//! threads kick it through its [`Interrupter`](sentry::platform::Interrupter)
//! ([`interrupt`]).
//!
//! CPU placement: by default every new context pins its tracer thread to
//! one CPU (round-robin over the CPUs the process may use, unless the
//! thread is already pinned to a single CPU) before forking, so the stub
//! inherits the same CPU. A syscall round trip then costs a same-CPU
//! context switch (~10 µs here) instead of a cross-CPU wake-up (~55 µs).
//! The price: a busy task thread cannot migrate; two busy tasks that land
//! on the same CPU share it.
//!
//! The sentry must never wait for arbitrary children (`waitpid(-1)`): it
//! would steal the stubs' ptrace stops.
#![deny(unsafe_code)]

mod context;
mod fpu;
mod inject;
mod interrupt;
mod regs;
mod stub;
mod sys;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::ptrace;
use nix::unistd::Pid;
use sentry::platform::{Context, Platform, PlatformError};

pub use context::PtraceContext;
pub use interrupt::INTERRUPT_SIGNAL;
pub use stub::{STUB_BASE, STUB_SIZE, TASK_SIZE};

/// How contexts are placed on CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuPinning {
    /// Pin each tracer thread, and so its stub, to one CPU (round-robin).
    #[default]
    SameCpu,
    /// Leave placement to the host scheduler (tracer and stub may run on
    /// different CPUs; measurably slower, see the `syscall_rtt` example).
    None,
}

/// Options of [`PtracePlatform::with_options`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformOptions {
    pub pinning: CpuPinning,
}

/// The ptrace platform.
#[derive(Debug)]
pub struct PtracePlatform {
    /// The memory file. Every stub inherits this fd (same number) and keeps
    /// no other.
    memfd: OwnedFd,
    options: PlatformOptions,
    /// CPUs the process may run on, for round-robin pinning.
    cpus: Vec<usize>,
    /// Next index into `cpus`.
    next_cpu: AtomicUsize,
    fp_size: fpu::XstateSize,
    page: &'static stub::StubPage,
}

impl PtracePlatform {
    /// A platform whose stubs map ranges of `memfd` (the sentry's memory
    /// file; pass a `try_clone()` if the caller keeps its own fd).
    pub fn new(memfd: OwnedFd) -> Result<PtracePlatform, PlatformError> {
        PtracePlatform::with_options(memfd, PlatformOptions::default())
    }

    /// [`PtracePlatform::new`] with explicit options.
    pub fn with_options(
        memfd: OwnedFd,
        options: PlatformOptions,
    ) -> Result<PtracePlatform, PlatformError> {
        let page = stub::StubPage::get().map_err(PlatformError::CreateStub)?;
        let mask = sched_getaffinity(Pid::from_raw(0))
            .map_err(|e| PlatformError::CreateStub(std::io::Error::from(e)))?;
        let cpus = (0..CpuSet::count())
            .filter(|&cpu| mask.is_set(cpu).unwrap_or(false))
            .collect();
        Ok(PtracePlatform {
            memfd,
            options,
            cpus,
            next_cpu: AtomicUsize::new(0),
            fp_size: fpu::XstateSize::from_cpuid(),
            page,
        })
    }

    /// Creates a context with its concrete type (tests, benchmarks).
    pub fn new_ptrace_context(&self) -> Result<PtraceContext, PlatformError> {
        if self.options.pinning == CpuPinning::SameCpu {
            self.pin_calling_thread()
                .map_err(PlatformError::CreateStub)?;
        }
        let tid = self
            .page
            .fork_stub(self.memfd.as_raw_fd())
            .map_err(PlatformError::CreateStub)?;
        match self.adopt(tid) {
            Ok(ctx) => Ok(ctx),
            Err(err) => {
                // Best effort: the stub is useless; do not leave it behind.
                let _ = nix::sys::signal::kill(Pid::from_raw(tid), nix::sys::signal::SIGKILL);
                let _ = sys::wait_raw(tid);
                Err(err)
            }
        }
    }

    /// Waits for a freshly forked stub's `SIGSTOP` and takes it over.
    fn adopt(&self, tid: i32) -> Result<PtraceContext, PlatformError> {
        let status = sys::wait_raw(tid).map_err(PlatformError::CreateStub)?;
        if !libc::WIFSTOPPED(status) || libc::WSTOPSIG(status) != libc::SIGSTOP {
            return Err(PlatformError::StubDied { tid, status });
        }
        let pid = Pid::from_raw(tid);
        let ptrace_err = |op, e: nix::errno::Errno| PlatformError::Ptrace {
            op,
            tid,
            source: std::io::Error::from(e),
        };
        ptrace::setoptions(
            pid,
            ptrace::Options::PTRACE_O_EXITKILL | ptrace::Options::PTRACE_O_TRACESYSGOOD,
        )
        .map_err(|e| ptrace_err("PTRACE_SETOPTIONS", e))?;
        let stopped = ptrace::getregs(pid).map_err(|e| ptrace_err("PTRACE_GETREGS", e))?;
        // Keep only what the host decides (segment selectors, flags): the
        // rest holds sentry addresses (stack, TLS) no guest should see.
        let mut init = regs::to_host(&sentry::platform::Registers::default());
        init.cs = stopped.cs;
        init.ss = stopped.ss;
        init.ds = stopped.ds;
        init.es = stopped.es;
        init.fs = stopped.fs;
        init.gs = stopped.gs;
        init.eflags = stopped.eflags;
        init.rip = stopped.rip;
        let fp_size = self
            .fp_size
            .probe(tid)
            .map_err(|source| PlatformError::Ptrace {
                op: "PTRACE_GETREGSET",
                tid,
                source,
            })?;
        Ok(PtraceContext::new(
            tid,
            init,
            self.page.syscall_addr(),
            self.memfd.as_raw_fd(),
            fp_size,
        ))
    }

    /// Pins the calling thread to one CPU unless it already is.
    fn pin_calling_thread(&self) -> std::io::Result<()> {
        let me = Pid::from_raw(0);
        let current = sched_getaffinity(me)?;
        let allowed = (0..CpuSet::count())
            .filter(|&cpu| current.is_set(cpu).unwrap_or(false))
            .take(2)
            .count();
        if allowed == 1 || self.cpus.is_empty() {
            return Ok(());
        }
        let cpu = self.cpus[self.next_cpu.fetch_add(1, Ordering::Relaxed) % self.cpus.len()];
        let mut set = CpuSet::new();
        set.set(cpu)?;
        sched_setaffinity(me, &set)?;
        Ok(())
    }
}

impl Platform for PtracePlatform {
    fn new_context(&self) -> Result<Box<dyn Context>, PlatformError> {
        Ok(Box::new(self.new_ptrace_context()?))
    }

    fn max_user_address(&self) -> u64 {
        STUB_BASE
    }

    fn fp_state_size(&self) -> usize {
        self.fp_size.get()
    }
}
