//! Measures the ptrace platform's costs on this host:
//! - a guest `getppid` round trip (stop → sentry → resume), with tracer and
//!   stub pinned to the same CPU and with placement left to the scheduler;
//! - stub creation (fork, setup, first stop) plus teardown.
//!
//! `cargo run --release -p platform-ptrace --example syscall_rtt [N]`

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use nix::sched::CpuSet;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::unistd::Pid;
use platform_ptrace::{CpuPinning, PlatformOptions, PtracePlatform, StubCreation};
use sentry::platform::{Context, Event, Prot, Registers};

const CODE: u64 = 0x10000;

/// ```text
///  0: b8 6e 00 00 00   mov eax, 110      ; getppid
///  5: 0f 05            syscall
///  7: 48 ff cb         dec rbx
///  a: 75 f4            jnz 0
///  c: b8 3c 00 00 00   mov eax, 60       ; exit
/// 11: 0f 05            syscall
/// 13: cc               int3
/// ```
const LOOP: &[u8] = &[
    0xb8, 0x6e, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0xff, 0xcb, 0x75, 0xf4, 0xb8, 0x3c, 0x00, 0x00,
    0x00, 0x0f, 0x05, 0xcc,
];

fn platform(pinning: CpuPinning, creation: StubCreation) -> PtracePlatform {
    let file = File::from(memfd_create(c"rtt", MemFdCreateFlag::empty()).expect("memfd"));
    file.set_len(0x1000).expect("ftruncate");
    file.write_all_at(LOOP, 0).expect("write code");
    PtracePlatform::with_options(file.into(), PlatformOptions { pinning, creation })
        .expect("platform")
}

/// Where the bench puts tracer and stub.
#[derive(Clone, Copy)]
enum Placement {
    /// The platform's default: both pinned to one CPU.
    SameCpu,
    /// Left to the host scheduler.
    Scheduler,
    /// Forced apart: the stub on another CPU than its tracer (what an
    /// unpinned platform gets under load).
    ApartCpus,
}

/// Runs `n` getppid round trips in a fresh thread (so pinning of one run
/// does not leak into the next); returns µs per round trip.
fn rtt(placement: Placement, n: u64) -> f64 {
    std::thread::spawn(move || {
        let pinning = match placement {
            Placement::Scheduler => CpuPinning::None,
            _ => CpuPinning::SameCpu,
        };
        let p = platform(pinning, StubCreation::default());
        let mut ctx = p.new_ptrace_context().expect("context");
        if let Placement::ApartCpus = placement {
            let me = nix::sched::sched_getaffinity(Pid::from_raw(0)).expect("getaffinity");
            let mine = (0..CpuSet::count())
                .find(|&c| me.is_set(c).unwrap_or(false))
                .expect("a cpu");
            let mut other = CpuSet::new();
            other.set(if mine == 0 { 1 } else { 0 }).expect("cpu set");
            nix::sched::sched_setaffinity(Pid::from_raw(ctx.stub_pid()), &other)
                .expect("setaffinity");
        }
        ctx.map(CODE, 0x1000, Prot::RX, 0).expect("map");
        let mut regs = Registers {
            rip: CODE,
            rbx: n,
            ..Registers::default()
        };
        let start = Instant::now();
        let mut count = 0u64;
        loop {
            match ctx.switch(&mut regs).expect("switch") {
                Event::Syscall if regs.orig_rax == 110 => {
                    count += 1;
                    regs.rax = 1;
                }
                Event::Syscall if regs.orig_rax == 60 => break,
                other => panic!("unexpected {other:?} at {:#x}", regs.rip),
            }
        }
        assert_eq!(count, n);
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    })
    .join()
    .expect("bench thread")
}

/// Runs `n` injected system calls (`mprotect` of the code page); returns
/// µs per call.
fn injection(n: u32) -> f64 {
    std::thread::spawn(move || {
        let p = platform(CpuPinning::SameCpu, StubCreation::default());
        let mut ctx = p.new_ptrace_context().expect("context");
        ctx.map(CODE, 0x1000, Prot::RX, 0).expect("map");
        let start = Instant::now();
        for _ in 0..n {
            ctx.protect(CODE, 0x1000, Prot::RX).expect("protect");
        }
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    })
    .join()
    .expect("bench thread")
}

/// Creates and destroys `n` contexts; returns µs per create and per drop.
fn creation(how: StubCreation, n: u32) -> (f64, f64) {
    std::thread::spawn(move || {
        let p = platform(CpuPinning::SameCpu, how);
        drop(p.new_ptrace_context().expect("warm-up context"));
        let (mut create, mut destroy) = (0.0, 0.0);
        for _ in 0..n {
            let t = Instant::now();
            let ctx = p.new_ptrace_context().expect("context");
            create += t.elapsed().as_secs_f64();
            let t = Instant::now();
            drop(ctx);
            destroy += t.elapsed().as_secs_f64();
        }
        (create * 1e6 / n as f64, destroy * 1e6 / n as f64)
    })
    .join()
    .expect("bench thread")
}

fn main() {
    if std::env::var_os("SBX_BENCH_CREATE_ONLY").is_some() {
        for _ in 0..3 {
            let (z, _) = creation(StubCreation::Zygote, 200);
            let (f, _) = creation(StubCreation::Fork, 200);
            println!("zygote {z:8.1} µs   fork {f:8.1} µs");
        }
        return;
    }
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let pinned = rtt(Placement::SameCpu, n);
    let unpinned = rtt(Placement::Scheduler, n);
    let apart = rtt(Placement::ApartCpus, n);
    println!("getppid round trip, tracer+stub on one CPU : {pinned:8.2} µs ({n} calls)");
    println!("getppid round trip, scheduler placement    : {unpinned:8.2} µs ({n} calls)");
    println!("getppid round trip, tracer and stub apart  : {apart:8.2} µs ({n} calls)");
    let inject = injection(5000);
    println!("injected syscall (mprotect) in the stub    : {inject:8.2} µs (5000 calls)");
    for (name, how) in [
        ("zygote clone", StubCreation::Zygote),
        ("sentry fork ", StubCreation::Fork),
    ] {
        let (create, destroy) = creation(how, 200);
        println!("stub creation by {name}, small sentry     : {create:8.1} µs, teardown {destroy:6.1} µs (mean of 200)");
    }
    // Forking copies the sentry's private page tables: again with 512 MiB
    // of touched sentry heap in 4 KiB pieces (no transparent huge pages).
    let ballast: Vec<Vec<u8>> = (0..(512 << 8)).map(|_| vec![1u8; 4096]).collect();
    for (name, how) in [
        ("zygote clone", StubCreation::Zygote),
        ("sentry fork ", StubCreation::Fork),
    ] {
        let (create, destroy) = creation(how, 20);
        println!("stub creation by {name}, 512 MiB heap     : {create:8.1} µs, teardown {destroy:6.1} µs (mean of 20)");
    }
    drop(ballast);
}
