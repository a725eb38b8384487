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

/// The XSAVE image (standard format, `size` bytes) of the state Linux gives
/// a new program (`arch/x86/kernel/fpu/core.c: fpstate_init_user()`): x87
/// control word 0x37f, MXCSR 0x1f80 (all exceptions masked), every register
/// zero. XSTATE_BV is 0: every component in its initial configuration.
pub(crate) fn initial_image(size: usize) -> Vec<u8> {
    let mut image = vec![0u8; size];
    if size < 512 {
        // Not an XSAVE area; the host will refuse it whatever it holds.
        return image;
    }
    // FXSAVE layout: FCW at byte 0, MXCSR at byte 24.
    image[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
    image[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    image
}
