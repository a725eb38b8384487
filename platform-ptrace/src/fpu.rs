//! Extended register state (x87, SSE, AVX, AVX-512, AMX) through
//! `PTRACE_GETREGSET`/`PTRACE_SETREGSET` with `NT_X86_XSTATE`.
//!
//! The state lives in the stub thread between switches; the sentry only
//! reads it (signal frames, checkpoints) and writes it (sigreturn, restore,
//! exec) when it needs to. Images are in the standard (uncompacted) XSAVE
//! format of this host's size; an image of another size (a checkpoint
//! from a host with other CPU features) is converted by [`adapt_image`].

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

/// Byte offsets in the standard XSAVE format (Intel SDM vol. 1, 13.4).
const SW_RESERVED: std::ops::Range<usize> = 464..512;
const XSTATE_BV: usize = 512;
const XCOMP_BV: usize = 520;
/// The legacy area plus the XSAVE header: the smallest XSAVE image.
pub(crate) const MIN_IMAGE: usize = 576;
/// Where the kernel reports the features it supports in an image it
/// wrote (`struct _fpx_sw_bytes.xfeatures`, after `FP_XSTATE_MAGIC1`).
const SW_MAGIC1: usize = 464;
const SW_XFEATURES: usize = 472;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

/// Converts `image`, an XSAVE image from another host (another size: other
/// CPU features), to this host's `host` image layout, so it can be loaded:
/// known components are kept, components this host lacks or that `image`
/// does not carry whole are dropped to their initial state (their
/// XSTATE_BV bits cleared). `host` is an image this host's kernel wrote
/// (for its size and supported features). `image` must hold at least the
/// legacy area and the XSAVE header.
pub(crate) fn adapt_image(image: &[u8], host: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; host.len()];
    let n = image.len().min(host.len());
    out[..n].copy_from_slice(&image[..n]);
    out[SW_RESERVED].copy_from_slice(&host[SW_RESERVED]);
    let magic = u32::from_le_bytes(read(host, SW_MAGIC1));
    let supported = if magic == FP_XSTATE_MAGIC1 {
        u64::from_le_bytes(read(host, SW_XFEATURES))
    } else {
        u64::MAX
    };
    let mut bv = u64::from_le_bytes(read(image, XSTATE_BV)) & supported;
    for bit in 2..64u32 {
        if bv & (1 << bit) == 0 {
            continue;
        }
        let (size, offset) = crate::sys::cpuid_xsave_component(bit);
        if size == 0 || offset + size > n {
            bv &= !(1 << bit);
        }
    }
    out[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&bv.to_le_bytes());
    out[XCOMP_BV..XCOMP_BV + 8].copy_from_slice(&0u64.to_le_bytes());
    out
}

/// The 4 or 8 bytes at `at` (the caller checked the length).
fn read<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}
