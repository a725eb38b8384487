//! Conversion between the sentry's [`Registers`] and the host's
//! `user_regs_struct` (same layout and names: Linux
//! `arch/x86/include/asm/user_64.h`).

use sentry::platform::Registers;

/// Copies `regs` into the host layout.
pub(crate) fn to_host(regs: &Registers) -> libc::user_regs_struct {
    libc::user_regs_struct {
        r15: regs.r15,
        r14: regs.r14,
        r13: regs.r13,
        r12: regs.r12,
        rbp: regs.rbp,
        rbx: regs.rbx,
        r11: regs.r11,
        r10: regs.r10,
        r9: regs.r9,
        r8: regs.r8,
        rax: regs.rax,
        rcx: regs.rcx,
        rdx: regs.rdx,
        rsi: regs.rsi,
        rdi: regs.rdi,
        orig_rax: regs.orig_rax,
        rip: regs.rip,
        cs: regs.cs,
        eflags: regs.eflags,
        rsp: regs.rsp,
        ss: regs.ss,
        fs_base: regs.fs_base,
        gs_base: regs.gs_base,
        ds: regs.ds,
        es: regs.es,
        fs: regs.fs,
        gs: regs.gs,
    }
}

/// Copies host registers into `regs`.
pub(crate) fn from_host(host: &libc::user_regs_struct, regs: &mut Registers) {
    *regs = Registers {
        r15: host.r15,
        r14: host.r14,
        r13: host.r13,
        r12: host.r12,
        rbp: host.rbp,
        rbx: host.rbx,
        r11: host.r11,
        r10: host.r10,
        r9: host.r9,
        r8: host.r8,
        rax: host.rax,
        rcx: host.rcx,
        rdx: host.rdx,
        rsi: host.rsi,
        rdi: host.rdi,
        orig_rax: host.orig_rax,
        rip: host.rip,
        cs: host.cs,
        eflags: host.eflags,
        rsp: host.rsp,
        ss: host.ss,
        fs_base: host.fs_base,
        gs_base: host.gs_base,
        ds: host.ds,
        es: host.es,
        fs: host.fs,
        gs: host.gs,
    };
}

/// Registers as they must be handed to `PTRACE_SETREGS` before resuming
/// application code.
///
/// - The segment selectors are the stub's own (`init`): in 64-bit mode the
///   application has no business changing them, and the kernel rejects
///   invalid ones (a zeroed `Registers` would otherwise be refused). gVisor
///   does the same (`ptrace_amd64.go: resetSysemuRegs`).
/// - `orig_rax` is -1: the host kernel then never applies its syscall-restart
///   logic (`arch/x86/kernel/signal.c: arch_do_signal_or_restart()` rewinds
///   `rip` or rewrites `rax` when `orig_rax >= 0` and `rax` is
///   `-ERESTART*`) to the application's registers when a host signal
///   arrives right after the resume. Restarts are the sentry's business.
pub(crate) fn for_resume(
    regs: &Registers,
    init: &libc::user_regs_struct,
) -> libc::user_regs_struct {
    let mut host = to_host(regs);
    host.cs = init.cs;
    host.ss = init.ss;
    host.ds = init.ds;
    host.es = init.es;
    host.fs = init.fs;
    host.gs = init.gs;
    host.orig_rax = u64::MAX;
    host
}

/// Field-wise equality (`user_regs_struct` has no `PartialEq` in libc).
pub(crate) fn same(a: &libc::user_regs_struct, b: &libc::user_regs_struct) -> bool {
    let (mut ra, mut rb) = (Registers::default(), Registers::default());
    from_host(a, &mut ra);
    from_host(b, &mut rb);
    ra == rb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_field() {
        let mut regs = Registers::default();
        // Distinct values so a swapped pair of fields is caught.
        let fields: [&mut u64; 27] = [
            &mut regs.r15,
            &mut regs.r14,
            &mut regs.r13,
            &mut regs.r12,
            &mut regs.rbp,
            &mut regs.rbx,
            &mut regs.r11,
            &mut regs.r10,
            &mut regs.r9,
            &mut regs.r8,
            &mut regs.rax,
            &mut regs.rcx,
            &mut regs.rdx,
            &mut regs.rsi,
            &mut regs.rdi,
            &mut regs.orig_rax,
            &mut regs.rip,
            &mut regs.cs,
            &mut regs.eflags,
            &mut regs.rsp,
            &mut regs.ss,
            &mut regs.fs_base,
            &mut regs.gs_base,
            &mut regs.ds,
            &mut regs.es,
            &mut regs.fs,
            &mut regs.gs,
        ];
        for (i, f) in fields.into_iter().enumerate() {
            *f = 0x1000 + i as u64;
        }
        let host = to_host(&regs);
        let mut back = Registers::default();
        from_host(&host, &mut back);
        assert_eq!(back, regs);
        assert_eq!(host.rdi, regs.rdi);
        assert_eq!(host.orig_rax, regs.orig_rax);
    }

    #[test]
    fn resume_forces_segments_and_orig_rax() {
        let regs = Registers {
            rax: 7,
            orig_rax: 39,
            ..Registers::default()
        };
        let init = to_host(&Registers {
            cs: 0x33,
            ss: 0x2b,
            ..Registers::default()
        });
        let host = for_resume(&regs, &init);
        assert_eq!(
            (host.cs, host.ss, host.orig_rax, host.rax),
            (0x33, 0x2b, u64::MAX, 7)
        );
    }
}
