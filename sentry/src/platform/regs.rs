//! The x86-64 register file as the kernel sees and saves it.

use checkpoints::Stateify;
/// General-purpose registers, in the layout of Linux's `user_regs_struct`
/// (`arch/x86/include/asm/user_64.h`), so a platform can copy them to and
/// from `PTRACE_GETREGS` field by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Stateify)]
pub struct Registers {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

impl Registers {
    /// The system call number of a [`super::Event::Syscall`].
    pub fn syscall_nr(&self) -> u64 {
        self.orig_rax
    }

    /// The six system call arguments, in ABI order.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}

/// Extended register state in the XSAVE layout (`NT_X86_XSTATE`): the
/// legacy FXSAVE region (x87, MXCSR, XMM) followed by the XSAVE header and
/// the enabled components (AVX, AVX-512, ...). Its size is the host's
/// (`Platform::fp_state_size`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Stateify)]
pub struct FpState {
    pub bytes: Vec<u8>,
}
