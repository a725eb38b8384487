//! Application threads: several contexts in one stub process.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{Guest, CODE, CODE_OFF, DATA_OFF, EXTRA, EXTRA_OFF, PAGE};
use platform_ptrace::{PlatformOptions, StubCreation};
use sentry::platform::{Context, Event, Prot, Registers, ThreadSeed};

/// Two programs in the code page.
///
/// At `CODE` (the first thread):
/// ```text
///  0: 48 8b 04 25 00 00 03 00  mov rax, [0x30000]
///  8: 48 89 04 25 00 00 02 00  mov [0x20000], rax
/// 10: cc                       int3
/// ```
/// At `CODE + 0x100` (the second thread):
/// ```text
///  0: 48 c7 04 25 08 00 02 00 55 00 00 00  mov qword [0x20008], 0x55
///  c: cc                                   int3
/// ```
fn programs() -> Vec<u8> {
    let mut code = vec![0xcc; 0x200];
    let first: &[u8] = &[
        0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x03, 0x00, //
        0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, //
        0xcc,
    ];
    let second: &[u8] = &[
        0x48, 0xc7, 0x04, 0x25, 0x08, 0x00, 0x02, 0x00, 0x55, 0x00, 0x00, 0x00, //
        0xcc,
    ];
    code[..first.len()].copy_from_slice(first);
    code[0x100..0x100 + second.len()].copy_from_slice(second);
    code
}

const SECOND: u64 = CODE + 0x100;

/// ```text
///  0: eb fe   jmp .
/// ```
const SPIN_AT: u64 = CODE + 0x180;

/// Runs `body` with the seed's context on a fresh host thread (the new
/// task's thread) and returns its result.
fn on_new_thread<T: Send + 'static>(
    seed: Box<dyn ThreadSeed>,
    body: impl FnOnce(&mut dyn Context) -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let mut ctx = seed.attach().unwrap();
        body(&mut *ctx)
    })
    .join()
    .unwrap()
}

fn task_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn second_thread_runs_in_the_same_address_space() {
    let mut g = Guest::new(&programs());
    let seed = g.ctx.new_thread().unwrap();

    let (event, tasks) = on_new_thread(seed, |ctx| {
        let mut regs = Registers {
            rip: SECOND,
            ..Registers::default()
        };
        let event = ctx.switch(&mut regs).unwrap();
        (event, regs.rip)
    });

    assert!(matches!(event, Event::Fault(f) if f.signo == libc::SIGTRAP));
    assert_eq!(tasks, SECOND + 0xd);
    assert_eq!(
        g.read_u64(DATA_OFF + 8),
        0x55,
        "written through the shared mapping"
    );
}

#[test]
fn mapping_made_by_one_thread_serves_the_other() {
    let mut g = Guest::new(&programs());
    g.write_u64(EXTRA_OFF, 0xabcd);
    let seed = g.ctx.new_thread().unwrap();

    on_new_thread(seed, |ctx| {
        ctx.map(EXTRA, PAGE, Prot::R, EXTRA_OFF).unwrap()
    });
    let event = g.ctx.switch(&mut g.regs).unwrap();

    assert!(
        matches!(event, Event::Fault(f) if f.signo == libc::SIGTRAP),
        "{event:?}"
    );
    assert_eq!(g.read_u64(DATA_OFF), 0xabcd);
}

#[test]
fn attached_thread_is_traced_by_its_own_host_thread() {
    let mut g = Guest::new(&programs());
    let pid = g.ctx.stub_pid();
    let seed = g.ctx.new_thread().unwrap();

    let (tid, host_tid, tracer, tasks) = on_new_thread(seed, move |ctx| {
        let mut regs = Registers {
            rip: SECOND,
            ..Registers::default()
        };
        ctx.switch(&mut regs).unwrap();
        // The stub tid of this context: the task that is not the leader.
        let tid: i32 = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .into_string()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .find(|&t| t != pid)
            .unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .unwrap()
            .trim()
            .to_string();
        (tid, nix::unistd::gettid().as_raw(), tracer, task_count(pid))
    });

    assert_ne!(tid, pid);
    assert_eq!(tracer, host_tid.to_string());
    assert_eq!(tasks, 2);
}

#[test]
fn zygote_stub_survives_its_first_context_and_dies_with_the_last() {
    survives_first_context_dies_with_last(StubCreation::Zygote);
}

#[test]
fn forked_stub_survives_its_first_context_and_dies_with_the_last() {
    survives_first_context_dies_with_last(StubCreation::Fork);
}

fn survives_first_context_dies_with_last(creation: StubCreation) {
    let options = PlatformOptions {
        creation,
        ..PlatformOptions::default()
    };
    let mut g = Guest::with_options(&programs(), options);
    let pid = g.ctx.stub_pid();
    let seed = g.ctx.new_thread().unwrap();
    let (to_thread, from_main) = mpsc::channel::<()>();
    let (to_main, from_thread) = mpsc::channel::<Event>();
    let worker = std::thread::spawn(move || {
        let mut ctx = seed.attach().unwrap();
        from_main.recv().unwrap(); // the first context is gone now
        let mut regs = Registers {
            rip: SECOND,
            ..Registers::default()
        };
        to_main.send(ctx.switch(&mut regs).unwrap()).unwrap();
        from_main.recv().unwrap();
        drop(ctx);
    });

    // Drop the leader's context while the second thread lives on.
    let common::Guest {
        file,
        platform,
        ctx,
        ..
    } = g;
    drop(ctx);
    to_thread.send(()).unwrap();
    let event = from_thread.recv_timeout(Duration::from_secs(5)).unwrap();
    let alive_with_one = Path::new(&format!("/proc/{pid}")).exists();
    to_thread.send(()).unwrap();
    worker.join().unwrap();

    assert!(
        matches!(event, Event::Fault(f) if f.signo == libc::SIGTRAP),
        "{event:?}"
    );
    assert!(alive_with_one);
    let mut buf = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, DATA_OFF + 8).unwrap();
    assert_eq!(u64::from_le_bytes(buf), 0x55);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "killed and reaped with the last context"
    );
    drop(platform);
}

#[test]
fn unattached_seed_leaves_the_process_to_its_context() {
    let mut g = Guest::new(&programs());
    let pid = g.ctx.stub_pid();
    g.write_u64(EXTRA_OFF, 1);
    g.ctx.map(EXTRA, PAGE, Prot::R, EXTRA_OFF).unwrap();

    drop(g.ctx.new_thread().unwrap());
    let event = g.ctx.switch(&mut g.regs).unwrap();
    drop(g);

    assert!(
        matches!(event, Event::Fault(f) if f.signo == libc::SIGTRAP),
        "{event:?}"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn second_thread_can_be_interrupted() {
    let code = {
        let mut c = programs();
        c[(SPIN_AT - CODE) as usize..][..2].copy_from_slice(&[0xeb, 0xfe]);
        c
    };
    let mut g = Guest::new(&code);
    let seed = g.ctx.new_thread().unwrap();

    let (event, rip) = on_new_thread(seed, |ctx| {
        let kicker = ctx.interrupter();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            kicker.interrupt();
        });
        let mut regs = Registers {
            rip: SPIN_AT,
            ..Registers::default()
        };
        let event = ctx.switch(&mut regs).unwrap();
        t.join().unwrap();
        (event, regs.rip)
    });
    // The first thread was not disturbed by its sibling's kick.
    let first = g.ctx.switch(&mut g.regs).unwrap();

    assert_eq!((event, rip), (Event::Interrupted, SPIN_AT));
    assert!(
        matches!(first, Event::Fault(f) if f.signo == libc::SIGSEGV && f.addr == EXTRA),
        "{first:?}"
    );
    let _ = CODE_OFF;
}

#[test]
fn many_threads_dropping_together_leave_nothing_behind() {
    const THREADS: usize = 8;
    let mut g = Guest::new(&programs());
    let pid = g.ctx.stub_pid();
    let seeds: Vec<_> = (0..THREADS).map(|_| g.ctx.new_thread().unwrap()).collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS + 1));

    let workers: Vec<_> = seeds
        .into_iter()
        .map(|seed| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut ctx = seed.attach().unwrap();
                let mut regs = Registers {
                    rip: SECOND,
                    ..Registers::default()
                };
                let event = ctx.switch(&mut regs).unwrap();
                barrier.wait();
                drop(ctx); // all at once, racing the main context's drop
                event
            })
        })
        .collect();
    let tasks = {
        // Every worker has run once when it reaches the barrier.
        barrier.wait();
        task_count(pid)
    };
    drop(g);
    let events: Vec<Event> = workers.into_iter().map(|w| w.join().unwrap()).collect();

    assert_eq!(tasks, THREADS + 1);
    assert!(events
        .iter()
        .all(|e| matches!(e, Event::Fault(f) if f.signo == libc::SIGTRAP)));
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process killed and reaped"
    );
}
