//! A vfork parent waiting for its child is a clean boundary: `sbx
//! checkpoint` in the vfork window (the child sleeping before `_exit`)
//! succeeds instead of timing out, and after a restore the parent still
//! waits for the child (the relation is saved kernel state) and then
//! goes on with the child's store to their shared memory visible, with
//! the same output as a run without checkpoint and as Linux. Guest:
//! `tests/guests/kfix_vfork.c`.

mod checkpoint_util;

use std::time::Duration;

use checkpoint_util::{guest, path_str, Env, Link};
use tests::{run_native, run_sbx, Opts};

/// The guest's output when the parent resumes only after its child
/// stored to the shared memory and exited with 7.
const EXPECTED: [&str; 2] = [
    "child sleeping",
    "parent resumed shared=1 status=7 waited=1",
];

#[test]
fn vfork_guest_output_matches_linux() {
    let exe = guest("kfix_vfork", Link::Static);
    let argv = [exe.to_str().expect("utf-8 path")];

    let sandboxed = run_sbx(&argv, &Opts::default());
    let native = run_native(&argv, &Opts::default());

    let want = EXPECTED.join("\n") + "\n";
    assert_eq!(native.stdout_str(), want, "native run");
    assert_eq!(
        sandboxed.stdout_str(),
        want,
        "sbx stderr:\n{}",
        String::from_utf8_lossy(&sandboxed.stderr)
    );
}

#[test]
fn checkpoint_of_a_vfork_parent_succeeds_and_the_wait_survives_restore() {
    let env = Env::new();
    let g = guest("kfix_vfork", Link::Static);
    let mut sb = env.run("vf", &[path_str(&g)]);
    sb.wait_for("child sleeping", Duration::from_secs(60));
    let img = env.image("img");

    // Panics if the pause times out on the parent.
    env.checkpoint("vf", &img, &[]);
    let (code, _) = sb.finish(Duration::from_secs(20));
    let mut rs = env.restore(&img, "vf-restored");
    let (restored_code, _) = rs.finish(Duration::from_secs(60));

    assert_eq!(code, Some(0), "sbx run exits 0 once checkpointed");
    assert_eq!(
        sb.seen,
        vec![EXPECTED[0].to_string()],
        "before the checkpoint"
    );
    assert_eq!(rs.seen, vec![EXPECTED[1].to_string()], "after the restore");
    assert_eq!(restored_code, Some(0));
}
