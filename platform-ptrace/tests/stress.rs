//! Many contexts on many threads, with interrupts flying: nothing is lost,
//! nothing leaks.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Guest, DATA_OFF};
use sentry::platform::{Context, Event};

/// ```text
///  0: b8 6e 00 00 00   mov eax, 110      ; getppid
///  5: 0f 05            syscall
///  7: 48 01 04 25 00 00 02 00  add [0x20000], rax
///  f: 48 ff cb         dec rbx
/// 12: 75 ec            jnz 0
/// 14: cc               int3
/// ```
const COUNT_PROG: &[u8] = &[
    0xb8, 0x6e, 0x00, 0x00, 0x00, //
    0x0f, 0x05, //
    0x48, 0x01, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, //
    0x48, 0xff, 0xcb, //
    0x75, 0xec, //
    0xcc,
];

/// Each guest makes `CALLS` syscalls, each answered with 1 and summed by
/// the guest into memory, while another thread kicks it continuously.
const CALLS: u64 = 300;
const THREADS: usize = 4;
const CONTEXTS_PER_THREAD: usize = 10;

fn run_one() -> (u64, u64) {
    let mut g = Guest::new(COUNT_PROG);
    g.regs.rbx = CALLS;
    let kicker = g.ctx.interrupter();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            kicker.interrupt();
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let (mut syscalls, mut interrupts) = (0, 0);
    loop {
        match g.ctx.switch(&mut g.regs).unwrap() {
            Event::Syscall => {
                syscalls += 1;
                g.regs.rax = 1;
            }
            Event::Interrupted => interrupts += 1,
            Event::Fault(f) if f.signo == libc::SIGTRAP => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    assert_eq!(
        g.read_u64(DATA_OFF),
        CALLS,
        "every result reached the guest once"
    );
    (syscalls, interrupts)
}

#[test]
fn many_contexts_on_many_threads_with_interrupts() {
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(|| {
                (0..CONTEXTS_PER_THREAD)
                    .map(|_| run_one())
                    .collect::<Vec<_>>()
            })
        })
        .collect();

    let results: Vec<(u64, u64)> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();

    assert_eq!(results.len(), THREADS * CONTEXTS_PER_THREAD);
    assert!(results.iter().all(|&(syscalls, _)| syscalls == CALLS));
    // The kicks did land in the middle of all this.
    assert!(results.iter().map(|&(_, kicks)| kicks).sum::<u64>() > 0);
    // No stub outlives its context, no zygote its platform: once the
    // zygote threads have wound down, this process has no children left.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !all_children().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(all_children(), "");
}

/// The children of every thread of this process.
fn all_children() -> String {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("children")).ok())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}
