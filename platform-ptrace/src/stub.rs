//! Stub processes: the code page and the creation of a stub.
//!
//! A stub is a host process whose address space holds nothing but one page
//! of position-independent code at [`STUB_BASE`] (DESIGN.md point 3). The
//! first stub (the zygote, see `zygote.rs`; or every stub with
//! `StubCreation::Fork`) is created by its tracer thread with a raw
//! `clone(SIGCHLD)` (a `fork` without glibc's atfork handlers). The child runs only raw,
//! async-signal-safe system calls (it is a copy of a multi-threaded process:
//! it must not allocate or take locks):
//!
//! 1. `prctl(PR_SET_PDEATHSIG, SIGKILL)`, then checks `getppid()` so a
//!    sentry that died before the `prctl` is noticed;
//! 2. `ptrace(PTRACE_TRACEME)`: the forking thread becomes the tracer;
//! 3. unblocks every signal (an interrupt must never stay pending unseen);
//! 4. unregisters the restartable-sequences area glibc registered for the
//!    forking thread (inherited by `fork`): once the area is unmapped, the
//!    host kernel's next rseq update on return to user mode would fail and
//!    kill the stub with `SIGSEGV`/`SI_KERNEL` (Linux `kernel/rseq.c:
//!    rseq_handle_notify_resume()`, `force_sigsegv`);
//! 5. installs the [`VSYSCALL_FILTER`] seccomp filter (after
//!    `PR_SET_NO_NEW_PRIVS`);
//! 6. `close_range` around the memory file: the only fd it keeps;
//! 7. moves the sentry's copy of the code page to [`STUB_BASE`]
//!    (`mremap`, unless it already is there) and jumps into it.
//!
//! The code page then unmaps everything below and above itself (this also
//! removes the host vDSO and vvar: the guest must not use the host's) and
//! stops itself with `SIGSTOP`; the tracer sees that stop, sets its ptrace
//! options (`spawn.rs`) and the stub is ready.
//!
//! The page also holds the `syscall; int3` sequence injected system calls
//! run ([`StubPage::syscall_addr`]) and the zygote's clone sequence
//! ([`StubPage::clone_addrs`]). Clones inherit everything above (no
//! mappings but the page, the memory file as only fd, no rseq, the seccomp
//! filter, unblocked signals) and only set their own `PR_SET_PDEATHSIG`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// Base of the stub's code page in every stub, and one past the highest
/// application address: `[STUB_BASE, TASK_SIZE)` belongs to the platform.
///
/// Chosen just below the top of the 47-bit user address space (Linux
/// `TASK_SIZE_MAX` = 0x7fff_ffff_f000), 64 KiB-aligned, so the guest keeps
/// almost all of it and its stack sits where Linux would put it.
pub const STUB_BASE: u64 = 0x7fff_ffff_0000;

/// One past the highest user address on x86-64 with 4-level paging
/// (Linux `arch/x86/include/asm/page_64_types.h: TASK_SIZE_MAX`).
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// Size of the stub's code mapping.
pub const STUB_SIZE: u64 = 4096;

std::arch::global_asm!(
    ".pushsection .text.sbx_stub,\"ax\",@progbits",
    ".p2align 4",
    ".globl sbx_stub_start",
    ".hidden sbx_stub_start",
    "sbx_stub_start:",
    // Entry, at offset 0 of the page; rdi = the page's base (STUB_BASE).
    // No stack from here on: everything else is about to be unmapped.
    "mov r12, rdi",
    // munmap(0, base)
    "xor edi, edi",
    "mov rsi, r12",
    "mov eax, 11",
    "syscall",
    // munmap(base + STUB_SIZE, TASK_SIZE - (base + STUB_SIZE))
    "lea rdi, [r12 + {size}]",
    "mov rsi, {task_size}",
    "sub rsi, rdi",
    "mov eax, 11",
    "syscall",
    // kill(getpid(), SIGSTOP): the tracer takes over at this stop.
    "mov eax, 39",
    "syscall",
    "mov edi, eax",
    "mov esi, 19",
    "mov eax, 62",
    "syscall",
    // Never resumed here; trap if it ever is.
    "2:",
    "int3",
    "jmp 2b",
    // Injected system calls: rip = here, rax/args set by the tracer.
    ".globl sbx_stub_syscall",
    ".hidden sbx_stub_syscall",
    "sbx_stub_syscall:",
    "syscall",
    "int3",
    // Injected clone in the zygote (see zygote.rs): rax = SYS_clone, args
    // set by the tracer, r12 = the sentry's pid.
    ".globl sbx_stub_clone",
    ".hidden sbx_stub_clone",
    "sbx_stub_clone:",
    "syscall",
    "test rax, rax",
    "jnz 5f",
    // The child: prctl(PR_SET_PDEATHSIG, SIGKILL)
    "mov eax, 157",
    "mov edi, 1",
    "mov esi, 9",
    "syscall",
    // getppid() must be the sentry (else it died before the prctl).
    "mov eax, 110",
    "syscall",
    "cmp rax, r12",
    "jne 6f",
    // kill(getpid(), SIGSTOP): wait, stopped, for the tracer to seize it.
    "mov eax, 39",
    "syscall",
    "mov edi, eax",
    "mov esi, 19",
    "mov eax, 62",
    "syscall",
    "7:",
    "int3",
    "jmp 7b",
    "6:",
    "mov edi, 1",
    "mov eax, 231",
    "syscall",
    "jmp 6b",
    // The zygote (parent): rax = child pid or -errno.
    "5:",
    "int3",
    ".globl sbx_stub_clone_done",
    ".hidden sbx_stub_clone_done",
    "sbx_stub_clone_done:",
    // Injected clone of an application thread (see thread.rs): rax =
    // SYS_clone, args set by the tracer, no new stack (none is used).
    ".globl sbx_stub_thread",
    ".hidden sbx_stub_thread",
    "sbx_stub_thread:",
    "syscall",
    "test rax, rax",
    "jnz 8f",
    // The new thread, and any thread whose context went away: idle in
    // pause() until seized (or killed with the process).
    ".globl sbx_stub_park",
    ".hidden sbx_stub_park",
    "sbx_stub_park:",
    "mov eax, 34",
    "syscall",
    "jmp sbx_stub_park",
    // The cloning thread: rax = new tid or -errno.
    "8:",
    "int3",
    ".globl sbx_stub_thread_done",
    ".hidden sbx_stub_thread_done",
    "sbx_stub_thread_done:",
    ".globl sbx_stub_end",
    ".hidden sbx_stub_end",
    "sbx_stub_end:",
    ".popsection",
    size = const STUB_SIZE,
    task_size = const TASK_SIZE,
);

extern "C" {
    static sbx_stub_start: u8;
    static sbx_stub_syscall: u8;
    static sbx_stub_clone: u8;
    static sbx_stub_clone_done: u8;
    static sbx_stub_thread: u8;
    static sbx_stub_thread_done: u8;
    static sbx_stub_park: u8;
    static sbx_stub_end: u8;
}

/// The code page in the sentry's own address space, from which every stub
/// inherits its copy. Created once per process, never unmapped.
#[derive(Debug)]
pub(crate) struct StubPage {
    /// Where the page is mapped in the sentry (ideally `STUB_BASE` itself,
    /// which saves the child an `mremap`).
    sentry_addr: u64,
    /// Offset of the `syscall; int3` sequence in the page.
    syscall_offset: u64,
    /// Offset of the zygote's clone sequence, and of the end of its
    /// parent side (where the tracer sees the `int3` stop).
    clone_offset: u64,
    clone_done_offset: u64,
    /// Offsets of the thread clone sequence, of the end of its parent side,
    /// and of the parking loop.
    thread_offset: u64,
    thread_done_offset: u64,
    park_offset: u64,
}

impl StubPage {
    /// The process-wide code page, created on first use.
    pub(crate) fn get() -> io::Result<&'static StubPage> {
        static PAGE: OnceLock<StubPage> = OnceLock::new();
        if let Some(page) = PAGE.get() {
            return Ok(page);
        }
        let page = StubPage::create()?;
        // A racing thread may have created one too; its page then stays
        // mapped and unused (one page, once).
        Ok(PAGE.get_or_init(|| page))
    }

    fn create() -> io::Result<StubPage> {
        // The symbols are defined by the global_asm! above, in one section,
        // in this order; only their addresses are taken.
        let start = std::ptr::addr_of!(sbx_stub_start) as usize;
        let end = std::ptr::addr_of!(sbx_stub_end) as usize;
        let offset = |sym: *const u8| (sym as usize - start) as u64;
        let len = end - start;
        // A build-time property of the asm above (about 0xa0 bytes), not
        // of any input: a failure here is a bug caught by every test.
        assert!(len <= STUB_SIZE as usize, "stub code larger than its page");
        let addr = map_page()?;
        // SAFETY: `addr` is a fresh private RW mapping of STUB_SIZE bytes
        // owned by nobody else; `[start, end)` is the stub's code in our
        // text section, readable, `len` <= STUB_SIZE, and the ranges do
        // not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(start as *const u8, addr as *mut u8, len);
        }
        // SAFETY: changes the protection of the page mapped above only.
        let ret = unsafe {
            libc::mprotect(
                addr as *mut libc::c_void,
                STUB_SIZE as usize,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StubPage {
            sentry_addr: addr,
            syscall_offset: offset(std::ptr::addr_of!(sbx_stub_syscall)),
            clone_offset: offset(std::ptr::addr_of!(sbx_stub_clone)),
            clone_done_offset: offset(std::ptr::addr_of!(sbx_stub_clone_done)),
            thread_offset: offset(std::ptr::addr_of!(sbx_stub_thread)),
            thread_done_offset: offset(std::ptr::addr_of!(sbx_stub_thread_done)),
            park_offset: offset(std::ptr::addr_of!(sbx_stub_park)),
        })
    }

    /// Address, in a stub, of the `syscall; int3` sequence.
    pub(crate) fn syscall_addr(&self) -> u64 {
        STUB_BASE + self.syscall_offset
    }

    /// The zygote's clone sequence: `(entry, rip at the parent's stop)`.
    pub(crate) fn clone_addrs(&self) -> (u64, u64) {
        (
            STUB_BASE + self.clone_offset,
            STUB_BASE + self.clone_done_offset,
        )
    }

    /// The thread clone sequence: `(entry, rip at the cloning thread's
    /// stop)`.
    pub(crate) fn thread_addrs(&self) -> (u64, u64) {
        (
            STUB_BASE + self.thread_offset,
            STUB_BASE + self.thread_done_offset,
        )
    }

    /// The parking loop (`pause()` forever).
    pub(crate) fn park_addr(&self) -> u64 {
        STUB_BASE + self.park_offset
    }

    /// Forks a new stub from the calling thread, which becomes its tracer.
    /// Returns its pid once the child is running (not yet stopped: the
    /// caller waits for its `SIGSTOP`).
    pub(crate) fn fork_stub(&self, memfd: RawFd) -> io::Result<i32> {
        let plan = ChildPlan {
            // SAFETY: getpid has no preconditions.
            parent: unsafe { libc::getpid() },
            memfd,
            page: self.sentry_addr,
            rseq: current_rseq(),
        };
        // SAFETY: a raw clone with only SIGCHLD is fork(2) without glibc's
        // atfork handlers. In the child (ret == 0) only `stub_child` runs,
        // which issues raw, async-signal-safe system calls on its own copy
        // of this stack and never returns, so none of this process's locks
        // or allocator state is touched there.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as libc::c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        if ret == 0 {
            // SAFETY: we are the freshly forked child, single-threaded.
            unsafe { stub_child(&plan) }
        }
        Ok(ret as i32)
    }
}

/// Maps the sentry's copy of the code page, at `STUB_BASE` if that is free.
fn map_page() -> io::Result<u64> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; a new
    // anonymous private page is created or the call fails.
    let at_base = unsafe {
        libc::mmap(
            STUB_BASE as *mut libc::c_void,
            STUB_SIZE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if at_base != libc::MAP_FAILED {
        return Ok(at_base as u64);
    }
    // SAFETY: a new anonymous private page wherever the kernel likes.
    let anywhere = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STUB_SIZE as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if anywhere == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(anywhere as u64)
}

/// Start of the legacy vsyscall page (Linux
/// `arch/x86/include/uapi/asm/vsyscall.h: VSYSCALL_ADDR`).
pub const VSYSCALL_ADDR: u64 = 0xffff_ffff_ff60_0000;

/// The stub's seccomp filter: `SECCOMP_RET_TRACE` for system calls made
/// from the legacy vsyscall page, `SECCOMP_RET_ALLOW` for everything else.
///
/// The vsyscall page cannot be unmapped, and in its default "xonly" mode
/// the host kernel *emulates* a call into it (`time`, `gettimeofday`,
/// `getcpu`) without any syscall-stop: that would be an application system
/// call run by the host. The emulation does consult seccomp (Linux
/// `arch/x86/entry/vsyscall/vsyscall_64.c: emulate_vsyscall()`), so this
/// filter turns it into a `PTRACE_EVENT_SECCOMP` stop, which the platform
/// reports as an ordinary `Event::Syscall` (`rip` = the vsyscall entry).
/// When the sentry resumes it with a result in `rax`, the platform's
/// `orig_rax = -1` makes the host skip its own emulation and return that
/// result to the caller. Real system calls never reach the filter (under
/// `PTRACE_SYSEMU` the host skips them before seccomp) and injected ones
/// are allowed.
static VSYSCALL_FILTER: [libc::sock_filter; 6] = [
    // A = instruction_pointer >> 32 (struct seccomp_data, offset 12)
    bpf_stmt(0x20, 12),
    // if A != 0xffffffff: goto allow
    bpf_jump(0x15, 0xffff_ffff, 0, 3),
    // A = instruction_pointer & 0xffffffff (offset 8)
    bpf_stmt(0x20, 8),
    // if A < 0xff600000: goto allow
    bpf_jump(0x35, 0xff60_0000, 0, 1),
    bpf_stmt(0x06, SECCOMP_RET_TRACE),
    // allow:
    bpf_stmt(0x06, SECCOMP_RET_ALLOW),
];

/// Linux `include/uapi/linux/seccomp.h`.
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_SET_MODE_FILTER: u32 = 1;

const fn bpf_stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn bpf_jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// What the forked child needs, computed before the fork.
struct ChildPlan {
    parent: libc::pid_t,
    memfd: RawFd,
    page: u64,
    /// The calling thread's rseq registration (area, size), if any.
    rseq: Option<(u64, u32)>,
}

/// The signature glibc registers rseq areas with on x86 (`RSEQ_SIG`,
/// glibc `sysdeps/unix/sysv/linux/x86/bits/rseq.h`).
const RSEQ_SIG: u32 = 0x5305_3053;
/// `RSEQ_FLAG_UNREGISTER` (Linux `include/uapi/linux/rseq.h`).
const RSEQ_FLAG_UNREGISTER: u32 = 1;
/// The smallest length glibc registers (`RSEQ_AREA_SIZE_INITIAL`).
const RSEQ_MIN_LEN: u32 = 32;

extern "C" {
    /// Offset of the rseq area from the thread pointer (glibc >= 2.35).
    static __rseq_offset: isize;
    /// Size of the rseq area's used part; 0 if rseq is not registered.
    static __rseq_size: libc::c_uint;
}

/// The calling thread's glibc rseq area and its size, if registered.
fn current_rseq() -> Option<(u64, u32)> {
    // SAFETY: both are constant glibc data symbols, initialised before
    // main and never written afterwards.
    let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return None;
    }
    let tp: u64;
    // SAFETY: on x86-64 glibc the first word of the TCB, at %fs:0, is the
    // thread pointer itself (`tcbhead_t.tcb`); reading it has no effects.
    unsafe {
        std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags));
    }
    Some((tp.wrapping_add(offset as u64), size))
}

/// The body of a freshly forked stub, up to the jump into the code page.
///
/// # Safety
///
/// Must be called only in the child of [`StubPage::fork_stub`]'s clone,
/// which is single-threaded and may use nothing but raw system calls.
unsafe fn stub_child(plan: &ChildPlan) -> ! {
    // SAFETY (whole body): raw system calls with integer arguments or
    // pointers into this thread's own stack; this process is about to
    // discard its whole address space, so nothing here can corrupt state
    // anyone else relies on.
    unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
        );
        if libc::syscall(libc::SYS_getppid) != plan.parent as libc::c_long {
            libc::syscall(libc::SYS_exit_group, 126);
        }
        if libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
            libc::syscall(libc::SYS_exit_group, 125);
        }
        if let Some((area, size)) = plan.rseq {
            // glibc registers max(__rseq_size, 32) bytes; the kernel wants
            // the exact length back.
            for len in [size.max(RSEQ_MIN_LEN), size] {
                let ret = libc::syscall(libc::SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
                if ret == 0 {
                    break;
                }
            }
        }
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_NO_NEW_PRIVS,
            1u64,
            0u64,
            0u64,
            0u64,
        );
        let prog = libc::sock_fprog {
            len: VSYSCALL_FILTER.len() as u16,
            filter: VSYSCALL_FILTER.as_ptr() as *mut libc::sock_filter,
        };
        if libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            0u32,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            libc::syscall(libc::SYS_exit_group, 123);
        }
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        if plan.memfd > 0 {
            libc::syscall(libc::SYS_close_range, 0u32, (plan.memfd - 1) as u32, 0u32);
        }
        libc::syscall(
            libc::SYS_close_range,
            (plan.memfd + 1) as u32,
            u32::MAX,
            0u32,
        );
        // Move the code page to STUB_BASE (unless it is there already) and
        // jump to its entry with rdi = STUB_BASE. After the mremap the
        // stack may be gone (it may have been at STUB_BASE), so this is one
        // asm block without memory accesses.
        std::arch::asm!(
            "cmp rdi, r8",
            "je 2f",
            "syscall",
            "cmp rax, r8",
            "jne 3f",
            "2:",
            "mov rdi, r8",
            "jmp r8",
            "3:",
            "mov edi, 124",
            "mov eax, 231",
            "syscall",
            "ud2",
            in("rax") libc::SYS_mremap,
            in("rdi") plan.page,
            in("rsi") STUB_SIZE,
            in("rdx") STUB_SIZE,
            in("r10") (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
            in("r8") STUB_BASE,
            options(noreturn),
        )
    }
}
