//! `MAP_SHARED` mappings of overlay files: the same pages for every
//! mapping, `read(2)`/`write(2)` and mappings agree, across `fork` and
//! across checkpoint/restore; sqlite's WAL mode (which maps its `-shm`
//! file shared and writable) works.

mod checkpoint_util;

use std::time::Duration;

use checkpoint_util::*;
use tests::{run_native, run_sbx, Opts};

#[test]
fn shared_file_mappings_match_native_byte_for_byte() {
    let exe = guest("shared_mmap", Link::Static);
    let argv = [path_str(&exe)];
    let native = run_native(&argv, &Opts::default());
    let sbx = run_sbx(&argv, &Opts::default());
    assert_eq!(native.stdout_str().lines().last(), Some("OK"));
    assert_eq!(
        sbx.stdout_str(),
        native.stdout_str(),
        "sbx stderr: {}",
        String::from_utf8_lossy(&sbx.stderr)
    );
    assert_eq!(sbx.status, 0);
}

#[test]
fn shared_file_mappings_match_native_dynamic() {
    let exe = guest("shared_mmap", Link::Dynamic);
    let argv = [path_str(&exe)];
    let native = run_native(&argv, &Opts::default());
    let sbx = run_sbx(&argv, &Opts::default());
    assert_eq!(sbx.stdout_str(), native.stdout_str());
    assert_eq!(sbx.status, 0);
}

/// sqlite3 in WAL mode maps `w.db-shm` `MAP_SHARED` read-write; without
/// shared file mappings it fails with "disk I/O error".
#[test]
fn sqlite_wal_mode_works_like_native() {
    const SQLITE: &str = "/usr/bin/sqlite3";
    if !std::path::Path::new(SQLITE).exists() {
        eprintln!("skipped: {SQLITE} is not installed (Debian package sqlite3)");
        return;
    }
    // The sandbox first: its files stay in its overlay, so the native run
    // then starts from the same empty directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let script = format!(
        "cd {} && {SQLITE} w.db \"pragma journal_mode=wal; create table t(x); \
         insert into t values(1),(2); select sum(x) from t;\"",
        path_str(dir.path())
    );
    let argv = ["/bin/sh", "-c", script.as_str()];
    let sbx = run_sbx(&argv, &Opts::default());
    let native = run_native(&argv, &Opts::default());
    assert_eq!(
        sbx.stdout_str(),
        "wal\n3\n",
        "sbx stderr: {}",
        String::from_utf8_lossy(&sbx.stderr)
    );
    assert_eq!(native.stdout_str(), "wal\n3\n");
    assert_eq!(sbx.status, 0);
}

/// `round N ok` → N (panics on a `BAD` round).
fn round(line: &str) -> u64 {
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 3, "bad round line {line:?}");
    assert_eq!(f[2], "ok", "the shared page and the file disagree: {line}");
    f[1].parse().expect("round number")
}

/// Runs the ping-pong guest, checkpoints it after round 3, restores it
/// with `--memory MODE` and checks that the next five rounds follow on
/// and are all `ok` (the parent's page, the child's page and the file
/// are one page again).
fn ping_pong_across_restore(mode: &str) {
    let env = Env::new();
    let g = guest("shared_mmap", Link::Static);
    let mut sb = env.run("shm", &[path_str(&g), "ckpt"]);
    sb.wait_for("ready", Duration::from_secs(60));
    round(&sb.wait_for("round 3 ", Duration::from_secs(20)));
    let img = env.image("img");

    env.checkpoint("shm", &img, &[]);
    let (code, _) = sb.finish(Duration::from_secs(20));
    let last = sb
        .seen
        .iter()
        .rev()
        .find(|l| l.starts_with("round"))
        .map(|l| round(l))
        .expect("a round before the checkpoint");
    let mut rs = env.restore_with(&img, "shm-restored", &["--memory", mode]);
    let after: Vec<u64> = (0..5)
        .map(|_| round(&rs.next_line(Duration::from_secs(20))))
        .collect();

    assert_eq!(code, Some(0), "sbx run exits 0 once checkpointed");
    assert_eq!(after, (last + 1..last + 6).collect::<Vec<u64>>());
}

#[test]
fn parent_and_child_still_share_a_file_mapping_after_restore() {
    ping_pong_across_restore("eager");
}

/// Pages of the shared file load on first access: through the fault path
/// for the stubs and through `pread` for the file.
#[test]
fn shared_file_pages_load_on_demand_after_restore() {
    ping_pong_across_restore("on-demand");
}
