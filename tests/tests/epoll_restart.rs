//! A checkpoint's kernel pause in the middle of a timed `epoll_wait`
//! restarts it silently with only the time left (a restart block holding
//! the absolute sandbox-monotonic deadline, like Linux `poll`'s
//! `do_restart_poll`): the guest must not see the pause. A stop and
//! continue, on the other hand, end it with EINTR as on Linux
//! (`kfix_stop.rs`). Guest: `tests/guests/epoll_restart.c`.

mod checkpoint_util;

use std::collections::HashMap;
use std::time::Duration;

use checkpoint_util::{guest, path_str, Env, Link};

/// The `key=value` fields of the guest's `ckpt r=R ms=MS` line.
fn fields(line: &str) -> HashMap<&str, i64> {
    line.split_whitespace()
        .skip(1)
        .map(|w| {
            let (k, v) = w.split_once('=').expect("key=value");
            (k, v.parse().expect("number"))
        })
        .collect()
}

/// The kernel pause of a checkpoint (`--leave-running`) 1 s into a
/// 3000 ms `epoll_wait` restarts it with the time left: it returns 0
/// events ~3000 ms after it began, not >= 4000 ms.
#[test]
fn checkpoint_pause_keeps_the_remaining_epoll_timeout() {
    let env = Env::new();
    let g = guest("epoll_restart", Link::Static);
    let mut sb = env.run("ep", &[path_str(&g)]);
    sb.wait_for("waiting", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    env.checkpoint("ep", &env.image("img"), &["--leave-running"]);
    let line = sb.wait_for("ckpt ", Duration::from_secs(20));
    let k = fields(&line);
    assert_eq!(k["r"], 0, "{line}");
    assert!((2990..3700).contains(&k["ms"]), "{line}");
}
