//! The x86-64 real-time signal frame, built by the sentry in guest memory.
//!
//! Linux: `arch/x86/kernel/signal.c` (`x64_setup_rt_frame`,
//! `get_sigframe`), `arch/x86/kernel/signal_64.c`, `arch/x86/kernel/fpu/
//! signal.c` (`fpu__alloc_mathframe`, `save_xstate_epilog`) and the uapi
//! layouts in `asm/sigcontext.h` / `asm/ucontext.h`:
//!
//! ```text
//! high  ... interrupted stack (or the alternate stack's top)
//!       128-byte red zone (skipped unless switching to the alt stack)
//!       XSAVE area, 64-byte aligned, + 4-byte FP_XSTATE_MAGIC2 at its end
//!       struct rt_sigframe (aligned so that (rsp + 8) % 16 == 0):
//!         +0    pretcode (sa_restorer)        8
//!         +8    struct ucontext               304
//!                 +0  uc_flags, +8 uc_link, +16 uc_stack (24 bytes)
//!                 +40 struct sigcontext (256 bytes), +296 uc_sigmask
//!         +312  siginfo_t                     128
//! low   <- rsp at handler entry
//! ```

use crate::platform::Registers;

use super::{AltStack, SigInfo, SigSet};

/// Offsets inside `struct rt_sigframe`.
pub const UC_OFFSET: u64 = 8;
pub const SIGCONTEXT_OFFSET: u64 = UC_OFFSET + 40;
pub const SIGMASK_OFFSET: u64 = UC_OFFSET + 296;
pub const INFO_OFFSET: u64 = UC_OFFSET + 304;
pub const FRAME_SIZE: u64 = INFO_OFFSET + SigInfo::SIZE as u64;

/// `uc_flags` bits.
pub const UC_FP_XSTATE: u64 = 0x1;
pub const UC_SIGCONTEXT_SS: u64 = 0x2;
pub const UC_STRICT_RESTORE_SS: u64 = 0x4;

/// `fpx_sw_bytes` magic values.
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Offset of `sw_reserved` (`struct _fpx_sw_bytes`) in the FXSAVE area.
const SW_BYTES_OFFSET: usize = 464;
/// Offset of the XSAVE header's `xfeatures` (XSTATE_BV).
const XSTATE_BV_OFFSET: usize = 512;

/// Flags a sigreturn may change (Linux `FIX_EFLAGS`): AC OF DF TF SF ZF
/// AF PF CF RF.
pub const FIX_EFLAGS: u64 = 0x50dd5;

/// A frame ready to be copied into guest memory.
#[derive(Debug)]
pub struct Frame {
    /// Guest address of `struct rt_sigframe` = the handler's `rsp`.
    pub addr: u64,
    /// The frame's bytes, to copy to `addr`.
    pub bytes: Vec<u8>,
    /// Guest address of the XSAVE area.
    pub fp_addr: u64,
    /// The XSAVE area (with the sw bytes and trailing magic), to copy to
    /// `fp_addr`.
    pub fp_bytes: Vec<u8>,
}

/// Where the frame goes: the current stack minus the red zone, or the top
/// of the alternate stack (Linux `get_sigframe`).
pub fn stack_top(regs: &Registers, alt: &AltStack, onstack_requested: bool) -> u64 {
    if onstack_requested && alt.enabled() && !alt.contains(regs.rsp) {
        alt.sp.wrapping_add(alt.size)
    } else {
        regs.rsp.wrapping_sub(128)
    }
}

/// Builds the frame for a handler invocation.
///
/// `top` comes from [`stack_top`]; `fp` is the task's XSAVE area;
/// `restorer` is `sa_restorer`; `old_mask` the mask to restore at
/// sigreturn.
pub fn build(
    regs: &Registers,
    fp: &[u8],
    info: &SigInfo,
    restorer: u64,
    old_mask: SigSet,
    alt: &AltStack,
    top: u64,
) -> Frame {
    // fpu__alloc_mathframe: room for the area and MAGIC2, 64-byte aligned.
    let fp_size = fp.len() as u64;
    let fp_addr = top.wrapping_sub(fp_size + 4) & !63;
    let addr = (fp_addr.wrapping_sub(FRAME_SIZE) & !15).wrapping_sub(8);

    let mut fp_bytes = fp.to_vec();
    fp_bytes.extend_from_slice(&FP_XSTATE_MAGIC2.to_le_bytes());
    let has_xsave = fp.len() > XSTATE_BV_OFFSET + 8;
    if fp.len() >= SW_BYTES_OFFSET + 48 {
        // struct _fpx_sw_bytes { magic1, extended_size, xfeatures, xstate_size, padding }
        let xfeatures = if has_xsave {
            let mut existing = [0u8; 8];
            existing.copy_from_slice(&fp[SW_BYTES_OFFSET + 8..SW_BYTES_OFFSET + 16]);
            match u64::from_le_bytes(existing) {
                0 => {
                    let mut bv = [0u8; 8];
                    bv.copy_from_slice(&fp[XSTATE_BV_OFFSET..XSTATE_BV_OFFSET + 8]);
                    u64::from_le_bytes(bv) | 3
                }
                x => x,
            }
        } else {
            3
        };
        let sw = &mut fp_bytes[SW_BYTES_OFFSET..SW_BYTES_OFFSET + 48];
        sw.fill(0);
        sw[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
        sw[4..8].copy_from_slice(&((fp_size + 4) as u32).to_le_bytes());
        sw[8..16].copy_from_slice(&xfeatures.to_le_bytes());
        sw[16..20].copy_from_slice(&(fp_size as u32).to_le_bytes());
    }

    let mut b = vec![0u8; FRAME_SIZE as usize];
    put(&mut b, 0, restorer);
    let uc = UC_OFFSET as usize;
    let uc_flags =
        UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | if has_xsave { UC_FP_XSTATE } else { 0 };
    put(&mut b, uc, uc_flags);
    put(&mut b, uc + 8, 0); // uc_link
    put(&mut b, uc + 16, alt.sp);
    b[uc + 24..uc + 28].copy_from_slice(&alt.flags.to_le_bytes());
    put(&mut b, uc + 32, alt.size);
    let sc = SIGCONTEXT_OFFSET as usize;
    let gprs = [
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        regs.rdi,
        regs.rsi,
        regs.rbp,
        regs.rbx,
        regs.rdx,
        regs.rax,
        regs.rcx,
        regs.rsp,
        regs.rip,
        regs.eflags,
    ];
    for (i, v) in gprs.iter().enumerate() {
        put(&mut b, sc + i * 8, *v);
    }
    let segs = [
        regs.cs as u16,
        regs.gs as u16,
        regs.fs as u16,
        regs.ss as u16,
    ];
    for (i, s) in segs.iter().enumerate() {
        b[sc + 144 + i * 2..sc + 146 + i * 2].copy_from_slice(&s.to_le_bytes());
    }
    // err, trapno, oldmask, cr2: a fault's address goes in cr2.
    let (trapno, cr2) = match info.signo {
        super::SIGSEGV | super::SIGBUS => (14, info.fields[0]),
        _ => (0, 0),
    };
    put(&mut b, sc + 152, 0);
    put(&mut b, sc + 160, trapno);
    put(&mut b, sc + 168, old_mask.0);
    put(&mut b, sc + 176, cr2);
    put(&mut b, sc + 184, fp_addr);
    put(&mut b, SIGMASK_OFFSET as usize, old_mask.0);
    b[INFO_OFFSET as usize..].copy_from_slice(&info.to_bytes());

    Frame {
        addr,
        bytes: b,
        fp_addr,
        fp_bytes,
    }
}

/// What `rt_sigreturn` restores from a `struct ucontext`.
#[derive(Debug)]
pub struct Restored {
    pub regs: Registers,
    pub mask: SigSet,
    pub alt: AltStack,
    /// Guest address of the saved XSAVE area (0: none saved).
    pub fp_addr: u64,
}

/// Size of the `struct ucontext` prefix `rt_sigreturn` reads.
pub const UCONTEXT_SIZE: usize = 304;

/// Decodes the `struct ucontext` the handler returns through, applying
/// Linux's `restore_sigcontext` rules to `cur` (segment registers stay the
/// sentry's; only `FIX_EFLAGS` bits come from the guest).
pub fn restore(cur: &Registers, uc: &[u8; UCONTEXT_SIZE]) -> Restored {
    let get = |o: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&uc[o..o + 8]);
        u64::from_le_bytes(x)
    };
    let sc = (SIGCONTEXT_OFFSET - UC_OFFSET) as usize;
    let g = |i: usize| get(sc + i * 8);
    let mut r = *cur;
    r.r8 = g(0);
    r.r9 = g(1);
    r.r10 = g(2);
    r.r11 = g(3);
    r.r12 = g(4);
    r.r13 = g(5);
    r.r14 = g(6);
    r.r15 = g(7);
    r.rdi = g(8);
    r.rsi = g(9);
    r.rbp = g(10);
    r.rbx = g(11);
    r.rdx = g(12);
    r.rax = g(13);
    r.rcx = g(14);
    r.rsp = g(15);
    r.rip = g(16);
    r.eflags = (cur.eflags & !FIX_EFLAGS) | (g(17) & FIX_EFLAGS);
    // No syscall restart after sigreturn (Linux: regs->orig_ax = -1).
    r.orig_rax = u64::MAX;
    let flags = i32::from_le_bytes([uc[24], uc[25], uc[26], uc[27]]);
    Restored {
        regs: r,
        mask: SigSet(get((SIGMASK_OFFSET - UC_OFFSET) as usize)).blockable(),
        alt: AltStack {
            sp: get(16),
            flags,
            size: get(32),
        },
        fp_addr: get(sc + 184),
    }
}

fn put(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::signal::{SIGSEGV, SIGUSR1};

    fn regs() -> Registers {
        Registers {
            rax: 1,
            rbx: 2,
            rcx: 3,
            rdx: 4,
            rsi: 5,
            rdi: 6,
            rbp: 7,
            rsp: 0x7fff_0000_1000,
            r8: 8,
            r15: 15,
            rip: 0x401234,
            eflags: 0x246,
            cs: 0x33,
            ss: 0x2b,
            ..Default::default()
        }
    }

    #[test]
    fn frame_is_aligned_like_linux_and_below_the_red_zone() {
        let r = regs();
        let top = stack_top(&r, &AltStack::disabled(), false);
        let f = build(
            &r,
            &[0u8; 832],
            &SigInfo::kernel(SIGUSR1),
            0x400100,
            SigSet(0),
            &AltStack::disabled(),
            top,
        );
        assert_eq!(
            (f.addr + 8) % 16,
            0,
            "handler entry must see rsp+8 16-byte aligned"
        );
        assert_eq!(f.fp_addr % 64, 0);
        assert!(f.fp_addr + f.fp_bytes.len() as u64 <= r.rsp - 128);
        assert!(f.addr + FRAME_SIZE <= f.fp_addr);
        assert_eq!(&f.bytes[0..8], &0x400100u64.to_le_bytes());
    }

    #[test]
    fn sigreturn_restores_what_the_frame_saved() {
        let r = regs();
        let alt = AltStack {
            sp: 0x10000,
            size: 0x4000,
            flags: 0,
        };
        let f = build(
            &r,
            &[0u8; 832],
            &SigInfo::fault(SIGSEGV, 1, 0x10),
            0,
            SigSet(0x400),
            &alt,
            0x14000,
        );
        let mut uc = [0u8; UCONTEXT_SIZE];
        uc.copy_from_slice(&f.bytes[8..8 + UCONTEXT_SIZE]);
        let mut cur = r;
        cur.rip = 0;
        cur.rax = 99;
        let back = restore(&cur, &uc);
        assert_eq!(back.regs.rip, r.rip);
        assert_eq!(back.regs.rax, r.rax);
        assert_eq!(back.regs.r15, r.r15);
        assert_eq!(back.regs.rsp, r.rsp);
        assert_eq!(back.mask, SigSet(0x400));
        assert_eq!(back.alt, alt);
        assert_eq!(back.fp_addr, f.fp_addr);
    }

    #[test]
    fn altstack_is_used_only_when_not_already_on_it() {
        let mut r = regs();
        let alt = AltStack {
            sp: 0x10000,
            size: 0x4000,
            flags: 0,
        };
        assert_eq!(stack_top(&r, &alt, true), 0x14000);
        r.rsp = 0x12000;
        assert_eq!(stack_top(&r, &alt, true), 0x12000 - 128);
    }

    #[test]
    fn fpx_sw_bytes_carry_magic_and_sizes() {
        let r = regs();
        let f = build(
            &r,
            &[0u8; 832],
            &SigInfo::kernel(SIGUSR1),
            0,
            SigSet(0),
            &AltStack::disabled(),
            0x8000,
        );
        assert_eq!(&f.fp_bytes[464..468], &FP_XSTATE_MAGIC1.to_le_bytes());
        assert_eq!(&f.fp_bytes[468..472], &836u32.to_le_bytes());
        assert_eq!(&f.fp_bytes[832..836], &FP_XSTATE_MAGIC2.to_le_bytes());
    }
}
