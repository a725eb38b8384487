//! Stubs hold nothing of the sentry and die with it (DESIGN.md point 3).

mod common;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Guest, CODE, DATA, PAGE};
use platform_ptrace::{STUB_BASE, STUB_SIZE};

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

#[test]
fn stub_maps_only_its_page_and_the_memory_file() {
    let g = Guest::new(SPIN_PROG);

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
fn stub_keeps_only_the_memory_file_fd() {
    let g = Guest::new(SPIN_PROG);
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
fn dropping_the_context_kills_and_reaps_the_stub() {
    let g = Guest::new(SPIN_PROG);
    let pid = g.ctx.stub_pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    drop(g);

    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// Helper run in a child process by `stub_dies_with_the_sentry`: creates a
/// context, prints its stub's pid and exits without dropping anything.
#[test]
fn child_helper_create_stub_and_exit() {
    if std::env::var_os("SBX_PLATFORM_TEST_CHILD").is_none() {
        return;
    }
    let g = Guest::new(SPIN_PROG);
    println!("STUB_PID={}", g.ctx.stub_pid());
    std::process::exit(0);
}

#[test]
fn stub_dies_with_the_sentry() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_helper_create_stub_and_exit",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SBX_PLATFORM_TEST_CHILD", "1")
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
