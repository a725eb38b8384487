//! The ptrace implementation of `sentry::platform::Platform`.
//!
//! Each context is a *stub*: a host process whose address space holds only
//! one page of platform code at [`STUB_BASE`] plus the ranges of the memory
//! file the sentry maps into it (`stub.rs` builds the first one by forking
//! the sentry, `zygote.rs` clones all others from a tiny zygote stub).
//! Application code runs in the stub under `PTRACE_SYSEMU`: every
//! application system call stops the stub and is handed to the sentry; the
//! host never executes one (calls into the host's legacy vsyscall page
//! included: see `stub.rs: VSYSCALL_FILTER`). The sentry's own
//! `mmap`/`munmap`/`mprotect` in the stub are injected system calls
//! (`inject.rs`).
//!
//! Address space: the application owns `[0, STUB_BASE)`
//! (`Platform::max_user_address`, 0x7fff_ffff_0000); `[STUB_BASE,
//! TASK_SIZE)` is the platform's. Stubs have no vDSO, no vvar, no stack.
//!
//! Threading: a context is created on, and used only from, its task's host
//! thread, which is the stub's tracer (`PtraceContext` is `!Send`). Other
//! threads kick it through its [`Interrupter`](sentry::platform::Interrupter)
//! (`interrupt.rs`: `tgkill` with [`INTERRUPT_SIGNAL`]). Application
//! threads are more stub threads of the same stub process
//! (`Context::new_thread` on the parent task's host thread, then
//! `ThreadSeed::attach` on the new task's host thread; `thread.rs`).
//!
//! CPU placement: by default every new context pins its tracer thread to
//! one CPU (round-robin over the CPUs the process may use, unless the
//! thread is already pinned to a single CPU) and puts its stub on the same
//! CPU. A syscall round trip then costs a same-CPU context switch (5-10 µs
//! here) instead of a cross-CPU wake-up (30-80 µs). The price: a busy task
//! thread cannot migrate; two busy tasks that land on the same CPU share
//! it.
//!
//! Requirements on the rest of the sentry:
//! - never wait for arbitrary children (`waitpid(-1)`, `wait()`): that
//!   would steal the stubs' ptrace stops and exit statuses;
//! - never set `SIGCHLD` to `SIG_IGN` or `SA_NOCLDWAIT` (stubs would be
//!   reaped behind the tracers' backs);
//! - a context's thread must outlive the context: the stub dies with its
//!   tracer thread (`PTRACE_O_EXITKILL`).
//!
//! Lock order: `Zygote` requests are a channel, no lock; the interrupter's
//! lock and `StubProcess`'s thread count are leaves, never held together.
#![deny(unsafe_code)]

mod context;
mod fpu;
mod inject;
mod interrupt;
mod placement;
mod process;
mod regs;
mod spawn;
mod stub;
mod sys;
mod thread;
mod zygote;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, OnceLock};

use sentry::platform::{Context, FpState, Platform, PlatformError};

pub use context::PtraceContext;
pub use interrupt::INTERRUPT_SIGNAL;
use placement::Placement;
use process::StubProcess;
pub use stub::{STUB_BASE, STUB_SIZE, TASK_SIZE, VSYSCALL_ADDR};

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

/// How stubs are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StubCreation {
    /// Injected `clone` of a tiny zygote stub: cost independent of the
    /// sentry's size (`zygote.rs`).
    #[default]
    Zygote,
    /// `fork` of the calling sentry thread: no helper thread, but the cost
    /// grows with the sentry's private memory, and the stub dies with the
    /// thread that created it (`PR_SET_PDEATHSIG`) even when application
    /// threads attached elsewhere still use it.
    Fork,
}

/// Options of [`PtracePlatform::with_options`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PlatformOptions {
    pub pinning: CpuPinning,
    pub creation: StubCreation,
}

/// The ptrace platform.
#[derive(Debug)]
pub struct PtracePlatform {
    /// The memory file. Every stub inherits this fd (same number) and keeps
    /// no other.
    memfd: OwnedFd,
    /// Where new contexts' tracer and stub threads run.
    placement: Arc<Placement>,
    fp_size: fpu::XstateSize,
    page: &'static stub::StubPage,
    /// The XSAVE image of a fresh program (see `fpu::initial_image`).
    initial_fp: OnceLock<FpState>,
    /// The zygote thread, with [`StubCreation::Zygote`].
    zygote: Option<Arc<zygote::Zygote>>,
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
        let placement = Placement::new(options.pinning).map_err(PlatformError::CreateStub)?;
        let zygote = match options.creation {
            StubCreation::Zygote => Some(zygote::Zygote::start(page, memfd.as_raw_fd())?),
            StubCreation::Fork => None,
        };
        Ok(PtracePlatform {
            initial_fp: OnceLock::new(),
            zygote,
            memfd,
            placement: Arc::new(placement),
            fp_size: fpu::XstateSize::from_cpuid(),
            page,
        })
    }

    /// Creates a context with its concrete type (tests, benchmarks).
    pub fn new_ptrace_context(&self) -> Result<PtraceContext, PlatformError> {
        let cpus = self
            .placement
            .pin_calling_thread()
            .map_err(PlatformError::CreateStub)?;
        let memfd = self.memfd.as_raw_fd();
        let (tid, init) = match &self.zygote {
            Some(zygote) => {
                let tid = zygote.new_stub()?;
                // A clone of the zygote runs where the zygote may: move it
                // next to its tracer before it runs anything.
                Placement::place_stub(tid, &cpus);
                (tid, spawn::seize_and_adopt(tid)?)
            }
            // A fork of this thread inherits its CPU pinning.
            None => spawn::fork_and_adopt(self.page, memfd)?,
        };
        let fp_size = match self.fp_size.probe(tid) {
            Ok(size) => size,
            Err(source) => {
                spawn::kill_and_reap(tid);
                return Err(PlatformError::Ptrace {
                    op: "PTRACE_GETREGSET",
                    tid,
                    source,
                });
            }
        };
        let process = StubProcess::new(
            tid,
            init,
            self.page,
            memfd,
            fp_size,
            Some(self.placement.clone()),
            self.zygote.clone(),
        );
        let mut ctx = PtraceContext::new(tid, Arc::new(process));
        // The stub inherited the FPU registers of some sentry thread: start
        // the application from the state Linux gives a new program.
        let initial = self.initial_fp.get_or_init(|| FpState {
            bytes: fpu::initial_image(fp_size),
        });
        ctx.set_fp(initial)?;
        Ok(ctx)
    }
}

impl PtracePlatform {
    /// The host pid of the zygote stub (diagnostics, tests); `None` with
    /// [`StubCreation::Fork`].
    pub fn zygote_pid(&self) -> Option<i32> {
        self.zygote.as_ref().map(|z| z.pid())
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
