//! An `epoll_wait`/`epoll_pwait`/`epoll_pwait2` with a 1000 ms timeout,
//! stopped (SIGSTOP) 500 ms into the wait and continued 100 ms later,
//! restarts silently under sbx with only the time left (a restart block
//! holding the absolute deadline, like Linux `poll`'s `do_restart_poll`):
//! it returns 0 events ~1000 ms after it began, not ~1600 ms (the whole
//! timeout again after the continue). `epoll_pwait`'s restart keeps its
//! temporary mask, and a handler still gives EINTR. Guest:
//! `tests/guests/epoll_restart.c`. Not compared with native Linux, which
//! returns EINTR right after the continue (signal(7)).

mod checkpoint_util;

use std::collections::HashMap;
use std::time::Duration;

use checkpoint_util::{guest, path_str, Env, Link};
use tests::{run_sbx, Opts};

/// One `CASE key=value...` line of the guest as a map.
fn cases(out: &str) -> HashMap<String, HashMap<String, i64>> {
    out.lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().expect("case name").to_string();
            let kv = words
                .map(|w| {
                    let (k, v) = w.split_once('=').expect("key=value");
                    (k.to_string(), v.parse().expect("number"))
                })
                .collect();
            (name, kv)
        })
        .collect()
}

#[test]
fn stopped_epoll_waits_keep_their_remaining_timeout() {
    let exe = guest("epoll_restart", Link::Static);
    let run = run_sbx(&[exe.to_str().expect("utf-8 path")], &Opts::default());
    let out = run.stdout_str();
    let ctx = format!(
        "stdout:\n{out}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status, 0, "{ctx}");
    let c = cases(&out);
    for name in ["wait", "pwait", "pwait2"] {
        let k = c
            .get(name)
            .unwrap_or_else(|| panic!("no {name} line; {ctx}"));
        // The stop really came in the middle of the wait.
        assert!((400..900).contains(&k["stop_at"]), "{name}: {ctx}");
        assert_eq!((k["r"], k["errno"]), (0, 0), "{name} timed out: {ctx}");
        // ~1000 ms in all; the whole timeout again after the continue
        // would be >= stop_at + 100 + 1000 >= 1500 ms.
        assert!(
            (990..1350).contains(&k["ms"]),
            "{name} waited {} ms: {ctx}",
            k["ms"]
        );
    }
    // The SIGUSR1 sent after the continue stayed blocked by epoll_pwait's
    // mask through the restart, and ran its handler once after it.
    assert_eq!(c["pwait"]["usr1"], 1, "{ctx}");
    // A handler (SA_RESTART) that runs after the restart: EINTR when it
    // is sent (stop_at + 300 ms), before the timeout.
    let h = &c["handler"];
    assert_eq!((h["r"], h["errno"], h["usr1"]), (-1, 4, 1), "{ctx}");
    assert!(
        h["ms"] >= h["stop_at"] + 250 && h["ms"] < 1000,
        "handler case waited {} ms: {ctx}",
        h["ms"]
    );
}

/// The kernel pause of a checkpoint (`--leave-running`) 1 s into a
/// 3000 ms `epoll_wait` restarts it with the time left: it returns 0
/// events ~3000 ms after it began, not >= 4000 ms.
#[test]
fn checkpoint_pause_keeps_the_remaining_epoll_timeout() {
    let env = Env::new();
    let g = guest("epoll_restart", Link::Static);
    let mut sb = env.run("ep", &[path_str(&g), "ckpt"]);
    sb.wait_for("waiting", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    env.checkpoint("ep", &env.image("img"), &["--leave-running"]);
    let line = sb.wait_for("ckpt ", Duration::from_secs(20));
    let k = &cases(&line)["ckpt"];
    assert_eq!(k["r"], 0, "{line}");
    assert!((2990..3700).contains(&k["ms"]), "{line}");
}
