//! A checkpoint's kernel pause in the middle of a timed `sigtimedwait`
//! restarts it silently with only the time left (a restart block holding
//! the absolute sandbox-monotonic deadline): the guest must not see the
//! pause. A stop and continue, on the other hand, end it with EINTR as on
//! Linux (`kfix_stop.rs`). Guest: `tests/guests/kfix_pause.c`.

mod checkpoint_util;

use std::time::Duration;

use checkpoint_util::{guest, path_str, Env, Link};

/// `(r, errno, ms)` of the guest's `sigtimedwait r=R errno=E ms=MS` line.
fn result(line: &str) -> (i64, i64, i64) {
    let v: Vec<i64> = line
        .split_whitespace()
        .skip(1)
        .map(|kv| {
            let (_, v) = kv.split_once('=').expect("key=value");
            v.parse().expect("number")
        })
        .collect();
    assert_eq!(v.len(), 3, "bad line {line:?}");
    (v[0], v[1], v[2])
}

/// The pause 1 s into a 3000 ms wait: EAGAIN ~3000 ms after it began;
/// the whole timeout again would be >= 4000 ms.
#[test]
fn checkpoint_pause_keeps_the_remaining_sigtimedwait_timeout() {
    let env = Env::new();
    let g = guest("kfix_pause", Link::Static);
    let mut sb = env.run("sw", &[path_str(&g)]);
    sb.wait_for("waiting", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));

    env.checkpoint("sw", &env.image("img"), &["--leave-running"]);
    let line = sb.wait_for("sigtimedwait ", Duration::from_secs(20));

    let (r, errno, ms) = result(&line);
    assert_eq!((r, errno), (-1, 11), "{line}");
    assert!((2990..3700).contains(&ms), "{line}");
}
