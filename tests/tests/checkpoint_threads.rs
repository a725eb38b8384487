//! Checkpoint and restore of multi-threaded processes: every thread of a
//! process continues where it was (counters, a futex waiter, a reader
//! blocked on a pipe), sharing one restored address space.

mod checkpoint_util;

use std::collections::BTreeMap;
use std::time::Duration;

use checkpoint_util::*;

const START: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);
/// `LIMIT` of `ckpt_threads.c`.
const LIMIT: u64 = 50;

/// `c T N` → (T, N).
fn count(line: &str) -> Option<(u64, u64)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.as_slice() {
        ["c", t, n] => Some((t.parse().ok()?, n.parse().ok()?)),
        _ => None,
    }
}

#[test]
fn threads_counters_futex_waiter_and_pipe_reader_continue_after_restore() {
    let env = Env::new();
    let g = guest("ckpt_threads", Link::Static);
    let mut sb = env.run("threads", &[path_str(&g)]);
    sb.wait_for("ready", START);
    sb.wait_for("c 0 5", STEP);
    let img = env.image("img");
    env.checkpoint("threads", &img, &[]);
    let (code, _) = sb.finish(STEP);
    assert_eq!(code, Some(0), "sbx run exits 0 once checkpointed");

    let mut before: BTreeMap<u64, u64> = BTreeMap::new();
    for l in &sb.seen {
        if let Some((t, n)) = count(l) {
            let last = before.entry(t).or_insert(0);
            assert_eq!(
                n,
                *last + 1,
                "thread {t} counts by one before: {:?}",
                sb.seen
            );
            *last = n;
        }
    }
    assert_eq!(before.len(), 4, "every counter ran: {:?}", sb.seen);
    assert!(
        before.values().all(|&n| n < LIMIT),
        "checkpointed mid-run: {before:?}"
    );
    assert!(
        !sb.seen
            .iter()
            .any(|l| l.starts_with("futex ") || l.starts_with("read ")),
        "the waiter and the reader were still blocked: {:?}",
        sb.seen
    );

    let mut rs = env.restore(&img, "threads-restored");
    let (code, _) = rs.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "restored: {:?}", rs.seen);
    let mut after = before.clone();
    for l in &rs.seen {
        if let Some((t, n)) = count(l) {
            let last = after.get_mut(&t).expect("a known counter thread");
            assert_eq!(n, *last + 1, "thread {t} continues by one: {:?}", rs.seen);
            *last = n;
        }
    }
    assert!(
        after.values().all(|&n| n == LIMIT),
        "every counter finished after restore: {after:?}"
    );
    assert!(
        rs.seen.iter().any(|l| l == "futex woke go=1"),
        "{:?}",
        rs.seen
    );
    assert!(
        rs.seen.iter().any(|l| l == "read hello n=5"),
        "{:?}",
        rs.seen
    );
    assert_eq!(
        rs.seen.last().map(String::as_str),
        Some("sentinel end sum=200"),
        "{:?}",
        rs.seen
    );
}

#[test]
fn python3_thread_counter_continues_after_restore() {
    let env = Env::new();
    let prog = "import threading, time\n\
                def loop():\n    \
                    for n in range(1000):\n        \
                        print('t', n, flush=True)\n        \
                        time.sleep(0.1)\n\
                t = threading.Thread(target=loop)\n\
                t.start()\n\
                t.join()\n\
                print('sentinel end', flush=True)\n";
    let mut sb = env.run("pyth", &["/usr/bin/python3", "-u", "-c", prog]);
    sb.wait_for("t 3", START);
    let img = env.image("img");
    env.checkpoint("pyth", &img, &[]);
    let _ = sb.finish(STEP);
    let last = sb.seen.last().cloned().expect("a line");
    let n: u64 = last
        .strip_prefix("t ")
        .and_then(|v| v.parse().ok())
        .expect("counter");

    let mut rs = env.restore(&img, "pyth-restored");
    let next = rs.next_line(STEP);
    let after = rs.next_line(STEP);
    assert_eq!(next, format!("t {}", n + 1));
    assert_eq!(after, format!("t {}", n + 2));
}
