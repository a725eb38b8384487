//! Stubs hold nothing of the sentry and die with it (DESIGN.md point 3).

mod common;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Guest, CODE, DATA, PAGE};
use platform_ptrace::{PlatformOptions, StubCreation, STUB_BASE, STUB_SIZE};

/// ```text
///  0: eb fe   jmp .
/// ```
const SPIN_PROG: &[u8] = &[0xeb, 0xfe];

/// Address ranges `(start, end)` of `/proc/<pid>/maps`.
fn mappings(pid: i32) -> Vec<(u64, u64, String)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .map(|line| {
            let range = line.split_whitespace().next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            (
                u64::from_str_radix(a, 16).unwrap(),
                u64::from_str_radix(b, 16).unwrap(),
                line.to_string(),
            )
        })
        .collect()
}

/// Whether `pid` is gone or a zombie (dead, waiting to be reaped by
/// whoever adopted it).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z'),
    }
}

fn guest(creation: StubCreation) -> Guest {
    let options = PlatformOptions {
        creation,
        ..PlatformOptions::default()
    };
    Guest::with_options(SPIN_PROG, options)
}

#[test]
fn zygote_stub_maps_only_its_page_and_the_memory_file() {
    assert_only_stub_page_and_memory_file(guest(StubCreation::Zygote));
}

#[test]
fn forked_stub_maps_only_its_page_and_the_memory_file() {
    assert_only_stub_page_and_memory_file(guest(StubCreation::Fork));
}

fn assert_only_stub_page_and_memory_file(g: Guest) {
    let maps = mappings(g.ctx.stub_pid());

    let ranges: Vec<(u64, u64)> = maps.iter().map(|(a, b, _)| (*a, *b)).collect();
    assert_eq!(
        ranges,
        vec![
            (CODE, CODE + PAGE),
            (DATA, DATA + PAGE),
            (STUB_BASE, STUB_BASE + STUB_SIZE),
            // The legacy vsyscall page is not a mapping and cannot be
            // removed; it is listed in every process.
            (0xffff_ffff_ff60_0000, 0xffff_ffff_ff60_1000),
        ],
        "{maps:#?}"
    );
    assert!(maps[0].2.contains("memfd:platform-test"), "{}", maps[0].2);
    assert!(maps[2].2.contains("r-xp"), "{}", maps[2].2);
}

#[test]
fn zygote_stub_keeps_only_the_memory_file_fd() {
    assert_only_memory_file_fd(guest(StubCreation::Zygote));
}

#[test]
fn forked_stub_keeps_only_the_memory_file_fd() {
    assert_only_memory_file_fd(guest(StubCreation::Fork));
}

fn assert_only_memory_file_fd(g: Guest) {
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", g.ctx.stub_pid()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();

    let target = std::fs::read_link(format!("/proc/{}/fd/{}", g.ctx.stub_pid(), fds[0])).unwrap();

    assert_eq!(fds.len(), 1, "{fds:?}");
    assert!(
        target.to_string_lossy().starts_with("/memfd:platform-test"),
        "{target:?}"
    );
    // The stub's fd is the platform's fd number, not the test's own fd.
    assert_ne!(fds[0], g.file.as_raw_fd().to_string());
}

#[test]
fn dropping_the_context_kills_and_reaps_a_zygote_stub() {
    assert_drop_kills_and_reaps(guest(StubCreation::Zygote));
}

#[test]
fn dropping_the_context_kills_and_reaps_a_forked_stub() {
    assert_drop_kills_and_reaps(guest(StubCreation::Fork));
}

fn assert_drop_kills_and_reaps(g: Guest) {
    let pid = g.ctx.stub_pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    drop(g);

    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// Helper run in a child process by `stub_dies_with_the_sentry`: creates a
/// context, prints its stub's pid and exits without dropping anything.
#[test]
fn child_helper_create_stub_and_exit() {
    let creation = match std::env::var("SBX_PLATFORM_TEST_CHILD").as_deref() {
        Ok("fork") => StubCreation::Fork,
        Ok("zygote") => StubCreation::Zygote,
        _ => return,
    };
    let g = guest(creation);
    println!("STUB_PID={}", g.ctx.stub_pid());
    std::process::exit(0);
}

#[test]
fn zygote_stub_dies_with_the_sentry() {
    assert_dies_with_sentry("zygote");
}

#[test]
fn forked_stub_dies_with_the_sentry() {
    assert_dies_with_sentry("fork");
}

fn assert_dies_with_sentry(creation: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_helper_create_stub_and_exit",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SBX_PLATFORM_TEST_CHILD", creation)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: i32 = stdout
        .lines()
        .find_map(|l| l.split("STUB_PID=").nth(1))
        .unwrap_or_else(|| panic!("no pid in child output: {stdout}"))
        .parse()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_dead(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }

    assert!(is_dead(pid), "stub {pid} outlived its sentry");
}

#[test]
fn zygote_stub_is_a_child_of_the_sentry() {
    let g = guest(StubCreation::Zygote);

    let status = std::fs::read_to_string(format!("/proc/{}/status", g.ctx.stub_pid())).unwrap();

    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim();
    let tracer = status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .unwrap()
        .trim();
    assert_eq!(ppid, std::process::id().to_string());
    // The tracer is this (test) thread, not the zygote thread.
    assert_eq!(tracer, nix::unistd::gettid().to_string());
}

#[test]
fn a_killed_zygote_is_replaced() {
    let g = guest(StubCreation::Zygote);
    let zygote = g.platform.zygote_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(zygote),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();

    let ctx = g.platform.new_ptrace_context();

    assert!(ctx.is_ok(), "{:?}", ctx.err());
    assert_ne!(g.platform.zygote_pid(), Some(zygote));
    assert!(is_dead(zygote));
}

#[test]
fn zygote_holds_nothing_of_the_sentry_either() {
    let g = guest(StubCreation::Zygote);
    let zygote = g.platform.zygote_pid().unwrap();

    let maps = mappings(zygote);
    let fds = std::fs::read_dir(format!("/proc/{zygote}/fd"))
        .unwrap()
        .count();

    let ranges: Vec<(u64, u64)> = maps.iter().map(|(a, b, _)| (*a, *b)).collect();
    assert_eq!(
        ranges,
        vec![
            (STUB_BASE, STUB_BASE + STUB_SIZE),
            (0xffff_ffff_ff60_0000, 0xffff_ffff_ff60_1000)
        ],
        "{maps:#?}"
    );
    assert_eq!(fds, 1);
}
