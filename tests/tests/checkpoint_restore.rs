//! Checkpoint a running sandbox, stop it, restore it: memory, counters,
//! pipelines and blocking syscalls continue where they were (issue 4).

mod checkpoint_util;

use std::time::{Duration, Instant};

use checkpoint_util::*;

const START: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);

/// `tick N sum S` → (N, S).
fn tick(line: &str) -> (u64, String) {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 4, "bad tick line {line:?}");
    (f[1].parse().expect("tick number"), f[3].to_owned())
}

#[test]
fn counter_and_64_mib_of_memory_continue_after_restore() {
    let env = Env::new();
    let g = guest("ckpt_counter", Link::Static);
    let mut sb = env.run("counter", &[path_str(&g), "64"]);
    sb.wait_for("ready 64", START);
    let (_, sum_before) = tick(&sb.wait_for("tick 3 ", STEP));
    let img = env.image("img");

    env.checkpoint("counter", &img, &["--compression", "none"]);
    let (code, _) = sb.finish(STEP);
    let last = sb
        .seen
        .iter()
        .rev()
        .find(|l| l.starts_with("tick"))
        .cloned();
    let (last_tick, _) = tick(&last.expect("a tick before the checkpoint"));
    let mut rs = env.restore(&img, "counter-restored");
    let (next_tick, sum_after) = tick(&rs.next_line(STEP));

    assert_eq!(code, Some(0), "sbx run exits 0 once checkpointed");
    assert_eq!(next_tick, last_tick + 1, "the counter continues");
    assert_eq!(sum_after, sum_before, "memory checksum unchanged");
}

#[test]
fn busybox_pipeline_loses_and_repeats_no_line() {
    let env = Env::new();
    // `cat -n` writing to a pipe buffers its output until it exits, so the
    // loop is finite and the lines are checked once it is done.
    let script = "i=0; while [ $i -lt 30 ]; do echo $i; i=$((i+1)); sleep 0.1; done | cat -n";
    let mut sb = env.run("pipe", &["/usr/bin/busybox", "sh", "-c", script]);
    std::thread::sleep(Duration::from_millis(1500));
    let img = env.image("img");

    env.checkpoint("pipe", &img, &[]);
    let _ = sb.finish(STEP);
    let mut rs = env.restore(&img, "pipe-restored");
    let (code, _) = rs.finish(Duration::from_secs(60));

    // `cat -n` numbers from 1 and the loop counts from 0: line k says k-1.
    let all: Vec<String> = sb.seen.iter().chain(rs.seen.iter()).cloned().collect();
    let want: Vec<String> = (0..30).map(|k| format!("{:6}\t{}", k + 1, k)).collect();
    assert_eq!(code, Some(0));
    assert_eq!(all, want);
}

/// Runs `ckpt_block MODE`, checkpoints it 1 s after it blocked, restores
/// it; returns the restored sandbox's `done` line and the seconds from
/// restore start to that line.
fn block_and_restore(mode: &str) -> (String, f64) {
    let env = Env::new();
    let g = guest("ckpt_block", Link::Static);
    let mut sb = env.run(mode, &[path_str(&g), mode]);
    sb.wait_for("blocked", START);
    std::thread::sleep(Duration::from_secs(1));
    let img = env.image("img");
    env.checkpoint(mode, &img, &[]);
    let (code, rest) = sb.finish(STEP);
    assert_eq!(code, Some(0));
    assert!(rest.is_empty(), "no output after the checkpoint: {rest:?}");
    let t = Instant::now();
    let mut rs = env.restore(&img, &format!("{mode}-restored"));
    let done = rs.wait_for("done", STEP);
    let secs = t.elapsed().as_secs_f64();
    let (code, _) = rs.finish(STEP);
    assert_eq!(code, Some(0), "restored guest exit status");
    (done, secs)
}

#[test]
fn nanosleep_sleeps_only_the_remaining_time_after_restore() {
    let (done, secs) = block_and_restore("sleep");
    let slept: i64 = done
        .rsplit("slept_ms=")
        .next()
        .and_then(|v| v.parse().ok())
        .expect("slept_ms");

    assert!(done.starts_with("done r=0 "), "{done}");
    // Checkpointed ~1 s into a 5 s sleep: ~4 s remain, not 5 and not 0.
    assert!((2.5..4.8).contains(&secs), "woke {secs:.2}s after restore");
    // Sandbox-monotonic time continued across the gap: 5 s in total.
    assert!((5000..6000).contains(&slept), "slept {slept} ms");
}

#[test]
fn pipe_read_resumes_after_restore() {
    let (done, _) = block_and_restore("pipe");
    assert_eq!(done, "done n=5 data=hello");
}

#[test]
fn wait4_resumes_after_restore() {
    let (done, _) = block_and_restore("wait");
    assert_eq!(done, "done same_pid=1 exit=7");
}

#[test]
fn sigsuspend_resumes_after_restore() {
    let (done, _) = block_and_restore("sigsuspend");
    assert_eq!(done, "done r=-1 got=1");
}

#[test]
fn poll_resumes_after_restore() {
    let (done, _) = block_and_restore("poll");
    // The writer closes its end right after writing, so POLLHUP may be
    // reported with POLLIN (as on Linux): only POLLIN must be set.
    let revents: i32 = done
        .strip_prefix("done r=1 revents=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unexpected: {done}"));
    assert_ne!(revents & 1, 0, "POLLIN not set: {done}");
}

#[test]
fn select_resumes_after_restore() {
    let (done, _) = block_and_restore("select");
    assert_eq!(done, "done r=1 ready=1");
}

#[test]
fn futex_wait_resumes_after_restore() {
    let (done, _) = block_and_restore("futex");
    assert_eq!(done, "done r=-1 timedout=1");
}

#[test]
fn interval_timer_keeps_firing_after_restore() {
    let env = Env::new();
    let g = guest("ckpt_alarm", Link::Static);
    let mut sb = env.run("alarm", &[path_str(&g)]);
    sb.wait_for("alarms 3", START);
    let img = env.image("img");
    env.checkpoint("alarm", &img, &[]);
    let _ = sb.finish(STEP);
    let last: u64 = sb
        .seen
        .last()
        .and_then(|l| l.strip_prefix("alarms "))
        .and_then(|v| v.parse().ok())
        .expect("alarm count");

    let mut rs = env.restore(&img, "alarm-restored");
    let next = rs.next_line(STEP);
    let later = rs.next_line(STEP);

    assert_eq!(
        next,
        format!("alarms {}", last + 1),
        "pause() rewound, timer still armed"
    );
    assert_eq!(later, format!("alarms {}", last + 2));
}

#[test]
fn read_from_stdin_moves_to_the_restoring_callers_stdin() {
    use std::io::Write;
    let env = Env::new();
    let script = "echo start; read x; echo got $x";
    let mut sb = env.run_stdin_pipe("stdin", &["/usr/bin/busybox", "sh", "-c", script]);
    sb.wait_for("start", START);
    std::thread::sleep(Duration::from_millis(300));
    let img = env.image("img");
    env.checkpoint("stdin", &img, &[]);
    let (code, rest) = sb.finish(STEP);

    let mut rs = env.restore_stdin_pipe(&img, "stdin-restored");
    let mut input = rs.child.stdin.take().expect("stdin pipe");
    input.write_all(b"hello\n").expect("write stdin");
    let got = rs.next_line(STEP);

    assert_eq!(code, Some(0));
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(got, "got hello");
}

#[test]
fn python3_continues_after_restore() {
    // A dynamic glibc program with mapped shared libraries and a large heap.
    let env = Env::new();
    let prog = "import time, json, hashlib\n\
                d = {str(i): i * i for i in range(100000)}\n\
                for n in range(1000):\n    \
                    print(n, hashlib.sha256(json.dumps(d).encode()).hexdigest()[:12], flush=True)\n    \
                    time.sleep(0.1)\n";
    let mut sb = env.run("py", &["/usr/bin/python3", "-u", "-c", prog]);
    let first = sb.wait_for("2 ", START);
    let img = env.image("img");
    env.checkpoint("py", &img, &[]);
    let _ = sb.finish(STEP);
    let last = sb.seen.last().cloned().expect("a line");
    let n: u64 = last
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("counter");

    let mut rs = env.restore(&img, "py-restored");
    let next = rs.next_line(STEP);

    let digest = first.split(' ').nth(1).expect("digest");
    assert_eq!(next, format!("{} {digest}", n + 1));
}

/// SIGINT and SIGTERM sent to `sbx restore` reach the restored sandbox,
/// whose handlers run, as with `sbx run` (instead of killing `sbx`).
#[test]
fn host_signals_are_forwarded_into_a_restored_sandbox() {
    let env = Env::new();
    let script = "trap 'echo got INT' INT; trap 'echo got TERM; exit 7' TERM; echo ready; \
                  while true; do sleep 0.05; done";
    let mut sb = env.run("traps", &["/usr/bin/busybox", "sh", "-c", script]);
    sb.wait_for("ready", START);
    let img = env.image("img");
    env.checkpoint("traps", &img, &[]);
    let _ = sb.finish(STEP);

    let mut rs = env.restore(&img, "traps-restored");
    // Restore has started once the control socket answers `list`.
    let deadline = Instant::now() + STEP;
    loop {
        let l = env.cmd(&["list", "--json"]).output().expect("sbx list");
        if String::from_utf8_lossy(&l.stdout).contains("traps-restored") {
            break;
        }
        assert!(Instant::now() < deadline, "restored sandbox never listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = rustix::process::Pid::from_raw(rs.child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::Int).expect("kill");
    assert_eq!(rs.next_line(STEP), "got INT");
    rustix::process::kill_process(pid, rustix::process::Signal::Term).expect("kill");
    assert_eq!(rs.next_line(STEP), "got TERM");
    let (code, _) = rs.finish(STEP);
    assert_eq!(code, Some(7), "the guest's TERM handler decided the status");
}
