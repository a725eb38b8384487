//! Raw host interfaces the safe wrappers of `nix` do not cover: waiting with
//! the raw status word, `NT_X86_XSTATE` register sets, `siginfo` fields,
//! CPUID and signals to a single thread.
//!
//! Every `unsafe` block of the crate outside the stub's creation
//! ([`crate::stub`]) lives here.
#![allow(unsafe_code)]

use std::io;

/// `NT_X86_XSTATE` (Linux `include/uapi/linux/elf.h`): the XSAVE-layout
/// extended register set of `PTRACE_GETREGSET`/`PTRACE_SETREGSET`.
const NT_X86_XSTATE: libc::c_int = 0x202;

/// Waits for a state change of the traced thread `tid` (`__WALL`, so a
/// clone child is waited for as well) and returns the raw status word.
/// Retries on `EINTR`.
pub(crate) fn wait_raw(tid: i32) -> io::Result<i32> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid, writable int for the duration of the
        // call; waitpid does not retain the pointer.
        let ret = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if ret == tid {
            return Ok(status);
        }
        let err = io::Error::last_os_error();
        if ret < 0 && err.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(err);
    }
}

/// Waits for an untraced child of this thread group to stop or end
/// (`WUNTRACED | __WALL`); returns the raw status word. Retries on `EINTR`.
pub(crate) fn wait_stopped(pid: i32) -> io::Result<i32> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: as in `wait_raw`.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED | libc::__WALL) };
        if ret == pid {
            return Ok(status);
        }
        let err = io::Error::last_os_error();
        if ret < 0 && err.raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return Err(err);
    }
}

/// `PTRACE_GETREGSET(NT_X86_XSTATE)` into `buf`; returns the number of bytes
/// the kernel wrote (its regset size when `buf` is at least that large).
pub(crate) fn get_xstate(tid: i32, buf: &mut [u8]) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, which is valid for writes of
    // `buf.len()` bytes; the kernel writes at most `iov_len` bytes and
    // updates `iov_len`; neither pointer is retained after the call.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            tid,
            NT_X86_XSTATE as usize as *mut libc::c_void,
            &mut iov as *mut libc::iovec as *mut libc::c_void,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(iov.iov_len)
}

/// `PTRACE_SETREGSET(NT_X86_XSTATE)` from `buf`, which must be exactly the
/// kernel's regset size (Linux `arch/x86/kernel/fpu/regset.c:
/// xstateregs_set()` refuses any other size with `EFAULT`).
pub(crate) fn set_xstate(tid: i32, buf: &[u8]) -> io::Result<()> {
    let mut iov = libc::iovec {
        // The kernel only reads through this pointer for SETREGSET.
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, valid for reads of `buf.len()` bytes;
    // PTRACE_SETREGSET only reads it; nothing is retained after the call.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGSET,
            tid,
            NT_X86_XSTATE as usize as *mut libc::c_void,
            &mut iov as *mut libc::iovec as *mut libc::c_void,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `PTRACE_GET_SYSCALL_INFO` (Linux `include/uapi/linux/ptrace.h`).
const PTRACE_GET_SYSCALL_INFO: libc::c_uint = 0x420e;
/// `PTRACE_SYSCALL_INFO_ENTRY`.
const PTRACE_SYSCALL_INFO_ENTRY: u8 = 1;
/// `AUDIT_ARCH_X86_64` (Linux `include/uapi/linux/audit.h`).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// The head of `struct ptrace_syscall_info`: the kernel copies only as
/// much as the caller asks for.
#[repr(C)]
#[derive(Default)]
struct SyscallInfoHead {
    op: u8,
    pad: [u8; 3],
    arch: u32,
}

/// Whether thread `tid`, in a syscall-entry-stop, entered through the
/// 32-bit ABI (`int 0x80`, or `syscall` from a 32-bit code segment) rather
/// than the x86-64 one.
pub(crate) fn is_compat_syscall(tid: i32) -> io::Result<bool> {
    let mut head = SyscallInfoHead::default();
    // SAFETY: the kernel writes at most `size_of::<SyscallInfoHead>()`
    // bytes (the size passed as `addr`) into `head`, a valid, writable,
    // repr(C) value; nothing is retained after the call.
    let ret = unsafe {
        libc::ptrace(
            PTRACE_GET_SYSCALL_INFO,
            tid,
            std::mem::size_of::<SyscallInfoHead>(),
            &mut head as *mut SyscallInfoHead as *mut libc::c_void,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(head.op == PTRACE_SYSCALL_INFO_ENTRY && head.arch != AUDIT_ARCH_X86_64)
}

/// `si_addr` of a fault siginfo (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP).
pub(crate) fn siginfo_addr(info: &libc::siginfo_t) -> u64 {
    // SAFETY: for the fault signals this crate decodes, the kernel fills the
    // `_sigfault` member of the union, whose first field is `si_addr`; libc
    // reads exactly that field. For other signals the value is meaningless
    // but still initialised memory (the kernel zeroes the whole siginfo).
    unsafe { info.si_addr() as u64 }
}

/// Sends `sig` to thread `tid` of thread group `tgid` (`tgkill(2)`).
pub(crate) fn tgkill(tgid: i32, tid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: tgkill takes only integers and has no memory effects on this
    // process.
    let ret = unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Size of the XSAVE area for the features enabled in XCR0
/// (CPUID leaf 0xD, sub-leaf 0, EBX).
pub(crate) fn cpuid_xsave_size() -> usize {
    // SAFETY: CPUID is available on every x86-64 CPU and leaf 0xD exists on
    // every CPU with XSAVE, which x86-64 Linux with NT_X86_XSTATE requires.
    #[allow(unused_unsafe)]
    let leaf = unsafe { std::arch::x86_64::__cpuid_count(0xd, 0) };
    leaf.ebx as usize
}

/// Size and standard-format offset of XSAVE state component `i` (>= 2):
/// CPUID leaf 0xD, sub-leaf `i`, EAX and EBX.
pub(crate) fn cpuid_xsave_component(i: u32) -> (usize, usize) {
    // SAFETY: as in `cpuid_xsave_size`; sub-leaves of 0xD for components
    // the CPU lacks return zeroes.
    #[allow(unused_unsafe)]
    let leaf = unsafe { std::arch::x86_64::__cpuid_count(0xd, i) };
    (leaf.eax as usize, leaf.ebx as usize)
}
