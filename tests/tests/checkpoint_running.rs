//! `--leave-running`, concurrent restores of one image, and a failed
//! checkpoint that leaves the sandbox running (issue 4).

mod checkpoint_util;

use std::time::Duration;

use checkpoint_util::*;

const START: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);

fn tick_no(line: &str) -> u64 {
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad tick line {line:?}"))
}

#[test]
fn leave_running_and_two_concurrent_restores_run_independently() {
    let env = Env::new();
    let g = guest("ckpt_counter", Link::Static);
    let mut orig = env.run("orig", &[path_str(&g), "8"]);
    orig.wait_for("tick 2 ", START);
    let img = env.image("img");

    let out = env.checkpoint("orig", &img, &["--leave-running", "--json"]);
    let at = tick_no(orig.seen.last().expect("a tick"));
    let mut a = env.restore(&img, "copy-a");
    let mut b = env.restore(&img, "copy-b");
    let a1 = tick_no(&a.next_line(STEP));
    let b1 = tick_no(&b.next_line(STEP));
    let o_later = tick_no(&orig.wait_for(&format!("tick {} ", at + 5), STEP));
    let a_later = tick_no(&a.wait_for(&format!("tick {} ", a1 + 5), STEP));
    drop(a);
    let b_later = tick_no(&b.wait_for(&format!("tick {} ", b1 + 5), STEP));
    let list = env.cmd(&["list", "--json"]).output().expect("sbx list");

    let json = String::from_utf8_lossy(&out.stdout);
    assert!(json.contains("\"left_running\":true"), "{json}");
    assert!(json.contains("\"memory_bytes\":"), "{json}");
    assert!(
        a1 <= at + 2 && b1 <= at + 2,
        "restores continue near {at}: {a1} {b1}"
    );
    assert_eq!(o_later, at + 5, "the original keeps running");
    assert_eq!(a_later, a1 + 5);
    assert_eq!(b_later, b1 + 5, "b runs on after a was killed");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("\"id\":\"orig\""), "{listed}");
    assert!(listed.contains("\"id\":\"copy-b\""), "{listed}");
    assert!(
        !listed.contains("\"id\":\"copy-a\""),
        "dead sandbox listed: {listed}"
    );
}

#[test]
fn failed_checkpoint_reports_why_and_leaves_the_sandbox_running() {
    let env = Env::new();
    let g = guest("ckpt_counter", Link::Static);
    let mut sb = env.run("victim", &[path_str(&g), "4"]);
    sb.wait_for("tick 1 ", START);
    let bad = env.dir.path().join("no-such-dir").join("img");

    let o = env
        .cmd(&["checkpoint", "victim", "--image", path_str(&bad)])
        .output()
        .expect("run sbx checkpoint");
    let at = tick_no(sb.seen.last().expect("a tick"));
    let later = tick_no(&sb.wait_for(&format!("tick {} ", at + 3), STEP));

    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("still running"), "{err}");
    assert!(err.contains("no-such-dir"), "names the image: {err}");
    assert_eq!(later, at + 3);
    assert!(!bad.exists());
}
