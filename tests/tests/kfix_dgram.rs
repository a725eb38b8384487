//! A Unix datagram sender blocked on a full receiver is woken by the
//! receiver's dequeue (the inbox's room list, Linux `peer_wait`), with no
//! polling: for the two ends of a `socketpair(AF_UNIX, SOCK_DGRAM)`, for a
//! socket `connect`ed to a bound server that is not connected back (which
//! used to sleep forever), and for `sendto` by address. `poll(POLLOUT)` on
//! a full socket wakes on dequeue the same way. Every datagram arrives
//! once and in order. Guest: `tests/guests/kfix_dgram.c`, run natively
//! and under sbx with the same output expected. A sender blocked at a
//! checkpoint is rewound, blocks again after the restore and is woken by
//! the receiver's drain there.

mod checkpoint_util;

use std::time::Duration;

use checkpoint_util::{path_str, Env};
use tests::{guest, run_native, run_sbx, Link, Opts};

/// What the guest prints when every case behaves like Linux: the sender
/// was blocked (>= 300 ms), resumed within 1 s of the first dequeue,
/// the poll cases saw POLLOUT, and every datagram arrived in order.
const EXPECTED: &str = "\
pair-send blocked=1 prompt=1 r=-1 out=0 filled=1 all=1 order=ok
pair-poll blocked=1 prompt=1 r=1 out=1 filled=1 all=1 order=ok
connected-send blocked=1 prompt=1 r=-1 out=0 filled=1 all=1 order=ok
connected-poll blocked=1 prompt=1 r=1 out=1 filled=1 all=1 order=ok
sendto-send blocked=1 prompt=1 r=-1 out=0 filled=1 all=1 order=ok
worker exit 0
";

#[test]
fn blocked_datagram_senders_wake_on_dequeue_like_linux() {
    let exe = guest("kfix_dgram", Link::Static);
    let argv = [exe.to_str().expect("utf-8 path")];

    let sandboxed = run_sbx(&argv, &Opts::default());
    let native = run_native(&argv, &Opts::default());

    let ctx = format!(
        "sbx stderr:\n{}",
        String::from_utf8_lossy(&sandboxed.stderr)
    );
    assert_eq!(native.stdout_str(), EXPECTED, "native run");
    assert_eq!(sandboxed.stdout_str(), EXPECTED, "{ctx}");
    assert_eq!(sandboxed.status, 0, "{ctx}");
}

#[test]
fn sender_blocked_at_a_checkpoint_is_woken_after_restore() {
    let env = Env::new();
    let g = guest("kfix_dgram", Link::Static);
    let mut sb = env.run("dg", &[path_str(&g), "ckpt"]);
    sb.wait_for("sender blocked", Duration::from_secs(60));
    let img = env.image("img");

    // The receiver drains 2.5 s (sandbox time) after that line.
    env.checkpoint("dg", &img, &[]);
    let (code, _) = sb.finish(Duration::from_secs(20));
    let mut rs = env.restore(&img, "dg-restored");
    let (restored_code, _) = rs.finish(Duration::from_secs(60));

    assert_eq!(code, Some(0), "sbx run exits 0 once checkpointed");
    assert_eq!(sb.seen, vec!["sender blocked".to_string()]);
    assert_eq!(
        rs.seen,
        vec![
            "ckpt filled=1 all=1 order=ok".to_string(),
            "worker exit 0".to_string()
        ]
    );
    assert_eq!(restored_code, Some(0));
}
