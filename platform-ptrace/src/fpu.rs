//! Extended register state (x87, SSE, AVX, AVX-512, AMX) through
//! `PTRACE_GETREGSET`/`PTRACE_SETREGSET` with `NT_X86_XSTATE`.
//!
//! The state lives in the stub thread between switches; the sentry only
//! reads it (signal frames, checkpoints) and writes it (sigreturn, restore,
//! exec) when it needs to.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Size of the XSAVE area as the host's ptrace regset has it.
///
/// Starts as CPUID's size for the features enabled in XCR0 and is replaced
/// by the kernel's own regset size the first time a stub exists to ask
/// (`PTRACE_SETREGSET` accepts nothing else: Linux
/// `arch/x86/kernel/fpu/regset.c: xstateregs_set()`).
#[derive(Debug)]
pub(crate) struct XstateSize {
    bytes: AtomicUsize,
    probed: std::sync::atomic::AtomicBool,
}

/// Large enough for any XSAVE area Linux supports today (AMX tiles
/// included, ~11 KiB).
const PROBE_BUF: usize = 64 * 1024;

impl XstateSize {
    pub(crate) fn from_cpuid() -> XstateSize {
        XstateSize {
            bytes: AtomicUsize::new(crate::sys::cpuid_xsave_size()),
            probed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn get(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Asks the kernel, once, through stopped stub `tid`.
    pub(crate) fn probe(&self, tid: i32) -> std::io::Result<usize> {
        if self.probed.load(Ordering::Acquire) {
            return Ok(self.get());
        }
        let mut buf = vec![0u8; PROBE_BUF];
        let len = crate::sys::get_xstate(tid, &mut buf)?;
        if len != self.get() {
            tracing::debug!(
                cpuid = self.get(),
                regset = len,
                "XSAVE size differs from CPUID"
            );
        }
        self.bytes.store(len, Ordering::Relaxed);
        self.probed.store(true, Ordering::Release);
        Ok(len)
    }
}
