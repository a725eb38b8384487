//! Contexts run real machine code in real stubs under ptrace.

mod common;

use std::time::Duration;

use common::{Guest, CODE, DATA, DATA_OFF, EXTRA, EXTRA_OFF, PAGE};
use platform_ptrace::{PlatformOptions, PtracePlatform, StubCreation, STUB_BASE, VSYSCALL_ADDR};
use sentry::platform::{Context, Event, Fault, FpState, Platform, PlatformError, Prot};

/// ```text
///  0: 48 c7 c7 0b 00 00 00   mov rdi, 11
///  7: 48 c7 c6 16 00 00 00   mov rsi, 22
///  e: b8 27 00 00 00         mov eax, 39        ; getpid
/// 13: 0f 05                  syscall
/// 15: 48 89 04 25 00 00 02 00  mov [0x20000], rax
/// 1d: cc                     int3
/// ```
const SYSCALL_PROG: &[u8] = &[
    0x48, 0xc7, 0xc7, 0x0b, 0x00, 0x00, 0x00, //
    0x48, 0xc7, 0xc6, 0x16, 0x00, 0x00, 0x00, //
    0xb8, 0x27, 0x00, 0x00, 0x00, //
    0x0f, 0x05, //
    0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, //
    0xcc,
];

/// ```text
///  0: 48 8b 04 25 00 00 03 00  mov rax, [0x30000]
///  8: 48 89 04 25 00 00 02 00  mov [0x20000], rax
/// 10: cc                       int3
/// ```
const LOAD_PROG: &[u8] = &[
    0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x03, 0x00, //
    0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, //
    0xcc,
];

/// ```text
///  0: 48 c7 04 25 00 00 02 00 77 00 00 00  mov qword [0x20000], 0x77
///  c: cc                                   int3
/// ```
const STORE_PROG: &[u8] = &[
    0x48, 0xc7, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0x77, 0x00, 0x00, 0x00, //
    0xcc,
];

/// ```text
///  0: 0f 11 04 25 00 00 02 00  movups [0x20000], xmm0
///  8: cc                       int3
/// ```
const XMM_PROG: &[u8] = &[0x0f, 0x11, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0xcc];

/// ```text
///  0: eb fe   jmp .
/// ```
const SPIN_PROG: &[u8] = &[0xeb, 0xfe];

/// ```text
///  0: 48 c7 c4 00 10 02 00   mov rsp, 0x21000          ; top of the data page
///  7: 48 c7 c0 00 04 60 ff   mov rax, 0xffffffffff600400 ; vsyscall time()
///  e: 31 ff                  xor edi, edi
/// 10: ff d0                  call rax
/// 12: 48 89 04 25 00 00 02 00  mov [0x20000], rax
/// 1a: cc                     int3
/// ```
const VSYSCALL_TIME_PROG: &[u8] = &[
    0x48, 0xc7, 0xc4, 0x00, 0x10, 0x02, 0x00, //
    0x48, 0xc7, 0xc0, 0x00, 0x04, 0x60, 0xff, //
    0x31, 0xff, //
    0xff, 0xd0, //
    0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, //
    0xcc,
];

/// ```text
///  0: 0f 0b   ud2
///  2: 31 c9   xor ecx, ecx
///  4: f7 f1   div ecx
/// ```
const ILL_THEN_DIV0_PROG: &[u8] = &[0x0f, 0x0b, 0x31, 0xc9, 0xf7, 0xf1];

/// `si_code`s of `ud2` (`ILL_ILLOPN`) and of a division by zero
/// (`FPE_INTDIV`).
const ILL_ILLOPN: i32 = 2;
const FPE_INTDIV: i32 = 1;

/// ```text
///  0: b8 14 00 00 00   mov eax, 20   ; getpid in the i386 table
///  5: cd 80            int 0x80
///  7: cc               int3
/// ```
const INT80_PROG: &[u8] = &[0xb8, 0x14, 0x00, 0x00, 0x00, 0xcd, 0x80, 0xcc];

const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;
/// `si_code` of an `int3` trap (Linux `SI_KERNEL`).
const SI_KERNEL: i32 = 0x80;

#[test]
fn syscall_stop_reports_number_args_and_result_reaches_guest() {
    let mut g = Guest::new(SYSCALL_PROG);

    let first = g.ctx.switch(&mut g.regs).unwrap();
    let nr = g.regs.syscall_nr();
    let args = g.regs.syscall_args();
    let rip = g.regs.rip;
    // What the 32-bit-ABI check's fast path relies on: `syscall` loaded
    // rcx with the return address and r11 with the flags.
    let fast_path = (g.regs.rcx == g.regs.rip, g.regs.r11 == g.regs.eflags);
    g.regs.rax = 0x1234_5678;
    let second = g.ctx.switch(&mut g.regs).unwrap();

    assert_eq!(first, Event::Syscall);
    assert_eq!(nr, libc::SYS_getpid as u64);
    assert_eq!(&args[..2], &[11, 22]);
    assert_eq!(rip, CODE + 0x15, "rip points after the syscall instruction");
    assert_eq!(fast_path, (true, true));
    assert!(matches!(second, Event::Fault(f) if f.signo == libc::SIGTRAP && f.code == SI_KERNEL));
    assert_eq!(
        g.read_u64(DATA_OFF),
        0x1234_5678,
        "the guest saw the sentry's result"
    );
}

#[test]
fn forked_stub_runs_code_too() {
    let options = PlatformOptions {
        creation: StubCreation::Fork,
        ..PlatformOptions::default()
    };
    let mut g = Guest::with_options(SYSCALL_PROG, options);

    let first = g.ctx.switch(&mut g.regs).unwrap();
    g.regs.rax = 99;
    let second = g.ctx.switch(&mut g.regs).unwrap();

    assert_eq!(first, Event::Syscall);
    assert!(matches!(second, Event::Fault(f) if f.signo == libc::SIGTRAP));
    assert_eq!(g.read_u64(DATA_OFF), 99);
}

#[test]
fn context_outlives_its_platform() {
    let common::Guest {
        file,
        platform,
        mut ctx,
        mut regs,
    } = Guest::new(SYSCALL_PROG);
    // The zygote thread, the stub's parent, must stay while the stub lives.
    drop(platform);

    let first = ctx.switch(&mut regs).unwrap();
    regs.rax = 7;
    ctx.switch(&mut regs).unwrap();

    assert_eq!(first, Event::Syscall);
    let mut buf = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, DATA_OFF).unwrap();
    assert_eq!(u64::from_le_bytes(buf), 7);
}

#[test]
fn fault_on_unmapped_page_then_map_and_continue() {
    let mut g = Guest::new(LOAD_PROG);
    g.write_u64(EXTRA_OFF, 0xfeed_f00d);

    let fault = g.ctx.switch(&mut g.regs).unwrap();
    let fault_rip = g.regs.rip;
    g.ctx.map(EXTRA, PAGE, Prot::R, EXTRA_OFF).unwrap();
    let after = g.ctx.switch(&mut g.regs).unwrap();

    let Event::Fault(f) = fault else {
        panic!("expected a fault, got {fault:?}")
    };
    assert_eq!(
        (f.signo, f.code, f.addr),
        (libc::SIGSEGV, SEGV_MAPERR, EXTRA)
    );
    assert_eq!(fault_rip, CODE, "rip at the faulting instruction");
    assert!(matches!(after, Event::Fault(f) if f.signo == libc::SIGTRAP));
    assert_eq!(
        g.read_u64(DATA_OFF),
        0xfeed_f00d,
        "the load completed after the map"
    );
}

#[test]
fn illegal_instruction_and_division_by_zero_are_faults_at_their_rip() {
    let mut g = Guest::new(ILL_THEN_DIV0_PROG);

    let ill = g.ctx.switch(&mut g.regs).unwrap();
    let ill_rip = g.regs.rip;
    g.regs.rip += 2; // the kernel would deliver SIGILL; skip the ud2 instead
    let fpe = g.ctx.switch(&mut g.regs).unwrap();

    let expected_ill = Fault {
        signo: libc::SIGILL,
        code: ILL_ILLOPN,
        addr: CODE,
        write: None,
    };
    let expected_fpe = Fault {
        signo: libc::SIGFPE,
        code: FPE_INTDIV,
        addr: CODE + 4,
        write: None,
    };
    assert_eq!((ill, ill_rip), (Event::Fault(expected_ill), CODE));
    assert_eq!((fpe, g.regs.rip), (Event::Fault(expected_fpe), CODE + 4));
}

#[test]
fn write_to_read_only_page_is_accerr_until_protect_allows_it() {
    let mut g = Guest::new(STORE_PROG);
    g.ctx.protect(DATA, PAGE, Prot::R).unwrap();

    let fault = g.ctx.switch(&mut g.regs).unwrap();
    g.ctx.protect(DATA, PAGE, Prot::RW).unwrap();
    let after = g.ctx.switch(&mut g.regs).unwrap();

    let Event::Fault(f) = fault else {
        panic!("expected a fault, got {fault:?}")
    };
    assert_eq!(
        (f.signo, f.code, f.addr),
        (libc::SIGSEGV, SEGV_ACCERR, DATA)
    );
    assert!(matches!(after, Event::Fault(f) if f.signo == libc::SIGTRAP));
    assert_eq!(g.read_u64(DATA_OFF), 0x77);
}

#[test]
fn unmapped_page_faults_again() {
    let mut g = Guest::new(STORE_PROG);
    g.ctx.unmap(DATA, PAGE).unwrap();

    let fault = g.ctx.switch(&mut g.regs).unwrap();

    let Event::Fault(f) = fault else {
        panic!("expected a fault, got {fault:?}")
    };
    assert_eq!(
        (f.signo, f.code, f.addr),
        (libc::SIGSEGV, SEGV_MAPERR, DATA)
    );
    assert_eq!(g.read_u64(DATA_OFF), 0, "nothing was written");
}

#[test]
fn xmm0_set_through_set_fp_is_stored_by_guest() {
    let mut g = Guest::new(XMM_PROG);
    let mut fp = FpState::default();
    g.ctx.get_fp(&mut fp).unwrap();
    // FXSAVE layout: XMM0 at byte 160; XSAVE header's XSTATE_BV at 512,
    // bit 1 = SSE state present (else the kernel loads XMM as zeroes).
    fp.bytes[160..176]
        .copy_from_slice(&0x0123_4567_89ab_cdef_1122_3344_5566_7788u128.to_le_bytes());
    fp.bytes[512] |= 0b10;
    g.ctx.set_fp(&fp).unwrap();

    let event = g.ctx.switch(&mut g.regs).unwrap();
    let mut back = FpState::default();
    g.ctx.get_fp(&mut back).unwrap();

    assert!(matches!(event, Event::Fault(f) if f.signo == libc::SIGTRAP));
    assert_eq!(
        g.read_u64(DATA_OFF),
        0x5566_7788_u64 | (0x1122_3344_u64 << 32)
    );
    assert_eq!(g.read_u64(DATA_OFF + 8), 0x0123_4567_89ab_cdef);
    assert_eq!(back.bytes[160..176], fp.bytes[160..176]);
    assert_eq!(back.bytes.len(), g.platform.fp_state_size());
}

#[test]
fn int_0x80_is_a_general_protection_fault_not_a_syscall() {
    let mut g = Guest::new(INT80_PROG);
    g.regs.rcx = 0x1111; // whatever the program holds

    let event = g.ctx.switch(&mut g.regs).unwrap();
    let rip = g.regs.rip;
    g.regs.rip += 2; // a kernel would deliver SIGSEGV; skip the int instead
    let after = g.ctx.switch(&mut g.regs).unwrap();

    let expected = Fault {
        signo: libc::SIGSEGV,
        code: SI_KERNEL,
        addr: 0,
        write: None,
    };
    assert_eq!((event, rip), (Event::Fault(expected), CODE + 5));
    assert!(
        matches!(after, Event::Fault(f) if f.signo == libc::SIGTRAP),
        "{after:?}"
    );
}

#[test]
fn new_context_starts_with_the_initial_fpu_state() {
    let mut g = Guest::new(SPIN_PROG);
    let mut fp = FpState::default();

    g.ctx.get_fp(&mut fp).unwrap();

    let fcw = u16::from_le_bytes([fp.bytes[0], fp.bytes[1]]);
    let mxcsr = u32::from_le_bytes(fp.bytes[24..28].try_into().unwrap());
    assert_eq!((fcw, mxcsr), (0x37f, 0x1f80));
    // XMM0-15 (bytes 160..416) hold nothing of the sentry thread's.
    assert!(fp.bytes[160..416].iter().all(|&b| b == 0));
}

#[test]
fn vsyscall_page_call_is_a_syscall_the_sentry_answers() {
    let mut g = Guest::new(VSYSCALL_TIME_PROG);

    let event = g.ctx.switch(&mut g.regs).unwrap();
    let (nr, rip) = (g.regs.syscall_nr(), g.regs.rip);
    g.regs.rax = 4242;
    let after = g.ctx.switch(&mut g.regs).unwrap();

    assert_eq!(event, Event::Syscall);
    assert_eq!(nr, libc::SYS_time as u64);
    assert_eq!(rip, VSYSCALL_ADDR + 0x400);
    assert!(matches!(after, Event::Fault(f) if f.signo == libc::SIGTRAP));
    // The host did not run time(): the caller got the sentry's answer and
    // returned to the instruction after the call.
    assert_eq!(g.read_u64(DATA_OFF), 4242);
    assert_eq!(g.regs.rip, CODE + 0x1b);
}

/// An XSAVE image with only the legacy area and the header, XMM0 set (as
/// a host with nothing beyond SSE would write it).
fn sse_only_image() -> FpState {
    let mut bytes = vec![0u8; 576];
    bytes[0..2].copy_from_slice(&0x37fu16.to_le_bytes()); // FCW
    bytes[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // MXCSR
    bytes[160..176].copy_from_slice(&0xfeed_u128.to_le_bytes()); // XMM0
    bytes[512] = 0b11; // XSTATE_BV: x87 | SSE
    FpState { bytes }
}

#[test]
fn smaller_fp_image_from_another_host_is_adapted() {
    let mut g = Guest::new(XMM_PROG);

    g.ctx.set_fp(&sse_only_image()).unwrap();
    let event = g.ctx.switch(&mut g.regs).unwrap();

    assert!(matches!(event, Event::Fault(f) if f.signo == libc::SIGTRAP));
    assert_eq!(g.read_u64(DATA_OFF), 0xfeed);
}

#[test]
fn larger_fp_image_with_unknown_features_is_adapted() {
    let mut g = Guest::new(XMM_PROG);
    let mut image = FpState::default();
    g.ctx.get_fp(&mut image).unwrap();
    image.bytes[160..176].copy_from_slice(&0xbeef_u128.to_le_bytes());
    image.bytes[512] |= 0b10;
    // A component no CPU has (yet), and its room at the end.
    image.bytes[517] |= 1; // XSTATE_BV bit 40
    image.bytes.extend_from_slice(&[0u8; 4096]);

    g.ctx.set_fp(&image).unwrap();
    let event = g.ctx.switch(&mut g.regs).unwrap();

    assert!(matches!(event, Event::Fault(f) if f.signo == libc::SIGTRAP));
    assert_eq!(g.read_u64(DATA_OFF), 0xbeef);
}

#[test]
fn set_fp_without_xsave_header_is_rejected() {
    let mut g = Guest::new(SPIN_PROG);

    let err = g
        .ctx
        .set_fp(&FpState {
            bytes: vec![0; 512],
        })
        .unwrap_err();

    assert!(matches!(err, PlatformError::BadRegisters(_)));
}

#[test]
fn interrupt_from_another_thread_kicks_a_spinning_guest() {
    let mut g = Guest::new(SPIN_PROG);
    let kicker = g.ctx.interrupter();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        kicker.interrupt();
    });

    let event = g.ctx.switch(&mut g.regs).unwrap();
    thread.join().unwrap();

    assert_eq!(event, Event::Interrupted);
    assert_eq!(g.regs.rip, CODE, "still in the loop");
}

#[test]
fn outside_stop_and_continue_signals_only_interrupt() {
    let mut g = Guest::new(SPIN_PROG);
    let pid = nix::unistd::Pid::from_raw(g.ctx.stub_pid());
    let kicker = g.ctx.interrupter();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let thread = std::thread::spawn(move || {
        for sig in [
            nix::sys::signal::SIGSTOP,
            nix::sys::signal::SIGCONT,
            nix::sys::signal::SIGTERM,
        ] {
            std::thread::sleep(Duration::from_millis(20));
            nix::sys::signal::kill(pid, sig).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        done2.store(true, std::sync::atomic::Ordering::SeqCst);
        kicker.interrupt();
    });

    let mut events = Vec::new();
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        events.push(g.ctx.switch(&mut g.regs).unwrap());
    }
    thread.join().unwrap();

    assert!(
        events.iter().all(|e| *e == Event::Interrupted),
        "{events:?}"
    );
    assert!(events.len() >= 3, "{events:?}");
    assert_eq!(g.regs.rip, CODE, "still spinning, untouched");
}

#[test]
fn interrupt_while_stopped_ends_the_next_switch() {
    let mut g = Guest::new(SPIN_PROG);
    g.ctx.interrupter().interrupt();

    let event = g.ctx.switch(&mut g.regs).unwrap();

    assert_eq!(event, Event::Interrupted);
}

#[test]
fn interrupt_during_injected_syscall_is_not_lost() {
    let mut g = Guest::new(SPIN_PROG);
    g.ctx.interrupter().interrupt();
    // The pending kick is delivered during this injection and suppressed
    // there; the next switch must still report it.
    g.ctx.protect(DATA, PAGE, Prot::R).unwrap();

    let event = g.ctx.switch(&mut g.regs).unwrap();

    assert_eq!(event, Event::Interrupted);
}

#[test]
fn registers_survive_injected_syscalls() {
    let mut g = Guest::new(SYSCALL_PROG);
    g.regs.rbx = 0xb0b;
    g.regs.r12 = 0xc0c;

    g.ctx.switch(&mut g.regs).unwrap();
    g.ctx.map(EXTRA, PAGE, Prot::R, EXTRA_OFF).unwrap();
    let mut after = g.regs;
    after.rax = 5;
    g.ctx.switch(&mut after).unwrap();

    assert_eq!((after.rbx, after.r12), (0xb0b, 0xc0c));
    assert_eq!(g.read_u64(DATA_OFF), 5);
}

#[test]
fn map_over_the_stub_page_is_refused() {
    let mut g = Guest::new(SPIN_PROG);

    let err = g
        .ctx
        .map(STUB_BASE - PAGE, 2 * PAGE, Prot::R, 0)
        .unwrap_err();

    assert!(matches!(
        err,
        PlatformError::Injected {
            errno: libc::EINVAL,
            ..
        }
    ));
}

#[test]
fn failed_injected_syscall_reports_errno() {
    let mut g = Guest::new(SPIN_PROG);

    // Not page-aligned: mmap fails with EINVAL in the stub.
    let err = g.ctx.map(DATA + 1, PAGE, Prot::R, 0).unwrap_err();

    assert!(matches!(
        err,
        PlatformError::Injected {
            syscall: "mmap",
            errno: libc::EINVAL,
            ..
        }
    ));
}

#[test]
fn killed_stub_is_reported_as_died() {
    let mut g = Guest::new(SPIN_PROG);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(g.ctx.stub_pid()),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();

    let err = g.ctx.switch(&mut g.regs).unwrap_err();

    assert!(matches!(err, PlatformError::StubDied { .. }));
}

#[test]
fn platform_reports_limits() {
    let g = Guest::new(SPIN_PROG);

    assert_eq!(g.platform.max_user_address(), STUB_BASE);
    // At least the legacy area (512) plus the XSAVE header (64).
    assert!(g.platform.fp_state_size() >= 576);
}

#[test]
fn new_context_through_the_trait() {
    let fd =
        nix::sys::memfd::memfd_create(c"t", nix::sys::memfd::MemFdCreateFlag::empty()).unwrap();
    let platform = PtracePlatform::new(fd).unwrap();

    let ctx = platform.new_context();

    assert!(ctx.is_ok());
}
