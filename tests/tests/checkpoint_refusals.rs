//! Refusals of `sbx checkpoint`/`sbx restore`/the control socket: another
//! uid cannot drive a sandbox it does not own, an image needing a CPU flag
//! the host lacks is refused before any guest code runs, and a checkpoint
//! that runs out of disk space fails cleanly and leaves the sandbox running.

mod checkpoint_util;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use checkpoint_util::*;

const START: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(30);
/// `nobody`: a uid other than the root the tests run as.
const NOBODY: u32 = 65534;

fn counter(env: &Env, id: &str, mib: &str) -> Sandbox {
    let g = guest("ckpt_counter", Link::Static);
    let mut sb = env.run(id, &[path_str(&g), mib]);
    sb.wait_for("tick 0 ", START);
    sb
}

/// A copy of the executable `src` that uid 65534 can run: the build tree
/// may sit under a directory nobody cannot enter (e.g. `/root`), so the
/// binary is copied into `dir/nobody-bin` (0755; `dir` itself made 0711).
fn exe_for_nobody(dir: &Path, src: &Path) -> PathBuf {
    let bin = dir.join("nobody-bin");
    std::fs::create_dir_all(&bin).expect("mkdir nobody-bin");
    for (p, m) in [(dir, 0o711), (bin.as_path(), 0o755)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
    }
    let dst = bin.join(src.file_name().expect("executable name"));
    if !dst.exists() {
        std::fs::copy(src, &dst).expect("copy executable for nobody");
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dst
}

/// `sbx ARGS` run as uid/gid 65534 (no supplementary groups: std drops
/// them when it sets the uid as root) with `SBX_STATE_DIR=state`, from a
/// copy of the binary under `dir` that nobody can execute.
fn as_nobody(dir: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(exe_for_nobody(dir, &sbx()))
        .env("SBX_STATE_DIR", state)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run sbx as nobody")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The tick number of a `tick N sum S` line.
fn tick_no(line: &str) -> u64 {
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a tick line: {line}"))
}

/// Waits for a tick the guest can only print if it kept running after
/// now: ticks are at least 100 ms apart and tick 0 was seen at `since`,
/// so by now at most `elapsed / 100 ms + 1` were printed.
fn assert_keeps_ticking(sb: &mut Sandbox, since: Instant) {
    let bound = since.elapsed().as_millis() as u64 / 100 + 1;
    let want = bound + 5;
    loop {
        let l = sb.wait_for("tick ", STEP);
        if tick_no(&l) >= want {
            return;
        }
    }
}

#[test]
fn other_uid_is_refused_by_the_private_state_directory() {
    let env = Env::new();
    let mut sb = counter(&env, "owned", "1");
    let t0 = Instant::now();
    let img = env.image("img");
    // Let nobody reach (not enter) the 0700 state directory, so that it is
    // sbx's ownership check that refuses, not the kernel's path lookup.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod");

    let list = as_nobody(env.dir.path(), &env.state_dir(), &["list"]);
    let kill = as_nobody(env.dir.path(), &env.state_dir(), &["kill", "owned", "KILL"]);
    let ckpt = as_nobody(
        env.dir.path(),
        &env.state_dir(),
        &["checkpoint", "owned", "--image", path_str(&img)],
    );

    for (what, o) in [("list", &list), ("kill", &kill), ("checkpoint", &ckpt)] {
        assert!(!o.status.success(), "{what} as nobody succeeded");
        assert!(
            stderr(o).contains("belongs to uid 0, not to you (uid 65534)"),
            "{what}: {}",
            stderr(o)
        );
        assert!(!String::from_utf8_lossy(&o.stdout).contains("owned"));
    }
    assert!(!img.exists(), "no image was written");
    assert_keeps_ticking(&mut sb, t0);
    assert!(sb.child.try_wait().expect("try_wait").is_none(), "alive");
    let root_list = env.cmd(&["list"]).output().expect("list");
    assert!(String::from_utf8_lossy(&root_list.stdout).contains("owned"));
}

#[test]
fn other_uid_reaching_the_socket_is_refused_by_peercred() {
    // The state directory (0700) normally stops another uid before it can
    // connect (previous test). To exercise the server's own SO_PEERCRED
    // check, open the path up on purpose (dirs 0711, socket 0666) and give
    // nobody a state directory of its own whose entries lead to the root
    // sandbox's socket: the connection then succeeds and only the server's
    // check stands between nobody and the sandbox.
    let env = Env::new();
    let mut sb = counter(&env, "peer", "1");
    let t0 = Instant::now();
    let state = env.state_dir();
    let set_mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    set_mode(env.dir.path(), 0o711);
    set_mode(&state, 0o711);
    set_mode(&state.join("peer.sock"), 0o666);
    let theirs: PathBuf = env.dir.path().join("nobody-state");
    std::fs::create_dir(&theirs).expect("mkdir");
    set_mode(&theirs, 0o700);
    std::os::unix::fs::symlink(state.join("peer.sock"), theirs.join("peer.sock")).expect("ln");
    std::fs::copy(state.join("peer.json"), theirs.join("peer.json")).expect("copy record");
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).expect("chown");
    std::os::unix::fs::lchown(theirs.join("peer.sock"), Some(NOBODY), Some(NOBODY)).expect("chown");
    std::os::unix::fs::chown(theirs.join("peer.json"), Some(NOBODY), Some(NOBODY)).expect("chown");
    let img = theirs.join("img");

    let probe = Command::new(exe_for_nobody(
        env.dir.path(),
        &std::env::current_exe().expect("test exe"),
    ))
    .args(["--exact", "peer_probe_helper", "--nocapture"])
    .env("SBX_PEER_PROBE", state.join("peer.sock"))
    .uid(NOBODY)
    .gid(NOBODY)
    .output()
    .expect("run the probe as nobody");
    let kill = as_nobody(env.dir.path(), &theirs, &["kill", "peer", "KILL"]);
    let ckpt = as_nobody(
        env.dir.path(),
        &theirs,
        &["checkpoint", "peer", "--image", path_str(&img)],
    );

    let probe_out = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe_out.contains("REPLY:")
            && probe_out.contains("permission denied: uid 65534 is not the sandbox owner"),
        "{probe_out} {}",
        stderr(&probe)
    );
    for (what, o) in [("kill", &kill), ("checkpoint", &ckpt)] {
        assert!(!o.status.success(), "{what} as nobody succeeded");
        // The server reads the request before refusing, so the client
        // always gets the refusal (never EPIPE on its own write).
        assert!(
            stderr(o).contains("permission denied: uid 65534 is not the sandbox owner"),
            "{what}: {}",
            stderr(o)
        );
    }
    assert!(!img.exists(), "no image was written");
    assert_keeps_ticking(&mut sb, t0);
    assert!(sb.child.try_wait().expect("try_wait").is_none(), "alive");
    // The owner still drives it (its state directory private again).
    set_mode(&state, 0o700);
    let info = env.cmd(&["kill", "peer", "TERM"]).output().expect("kill");
    assert!(info.status.success(), "{}", stderr(&info));
    assert_eq!(sb.finish(STEP).0, Some(128 + 15));
}

/// Not a test of its own: run by `other_uid_reaching_the_socket_is_refused_by_peercred`
/// as nobody (this test binary re-executed); connects to `$SBX_PEER_PROBE`
/// without sending anything and prints the reply frame. Without the
/// variable it does nothing.
#[test]
fn peer_probe_helper() {
    let Some(sock) = std::env::var_os("SBX_PEER_PROBE") else {
        return;
    };
    let mut s = UnixStream::connect(sock).expect("connect");
    // Any frame: the server reads it, then refuses on the peer's uid
    // before looking at its contents.
    let body = b"{}";
    s.write_all(&(body.len() as u32).to_be_bytes())
        .expect("send length");
    s.write_all(body).expect("send body");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("reply length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("reply body");
    println!("REPLY:{}", String::from_utf8_lossy(&body));
}

/// A real image of a small counter, checkpointed into `env`.
fn small_image(env: &Env, id: &str) -> PathBuf {
    let mut sb = counter(env, id, "1");
    let img = env.image("img");
    env.checkpoint(id, &img, &[]);
    let _ = sb.finish(STEP);
    img
}

/// Rewrites `img`'s manifest through the `checkpoints` API (fresh CRC).
fn rewrite_manifest(img: &Path, change: impl FnOnce(&mut checkpoints::image::Manifest)) {
    let path = img.join("manifest.bin");
    let bytes = std::fs::read(&path).expect("read manifest");
    let mut m = checkpoints::image::Manifest::decode(&bytes).expect("decode manifest");
    change(&mut m);
    std::fs::write(&path, m.encode()).expect("write manifest");
}

#[test]
fn image_needing_a_missing_cpu_flag_is_refused_before_guest_code() {
    const FLAG: &str = "sbx_test_nonexistent_flag";
    let env = Env::new();
    let img = small_image(&env, "cpu");
    let control = env.image("control");
    std::fs::create_dir(&control).expect("mkdir");
    for f in ["manifest.bin", "state.bin", "memory.bin"] {
        std::fs::copy(img.join(f), control.join(f)).expect("copy image");
    }
    // The control goes through the same decode/encode with no change.
    rewrite_manifest(&control, |_| {});
    rewrite_manifest(&img, |m| {
        let flags = &mut m.head.meta.cpu.flags;
        flags.push(FLAG.to_owned());
        flags.sort();
    });

    let o = env
        .cmd(&["restore", "--image", path_str(&img), "--id", "cpu2"])
        .output()
        .expect("restore");
    let mut ok = env.restore(&control, "cpu3");
    let first = ok.next_line(STEP);

    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "", "no guest output");
    assert!(stderr(&o).contains(FLAG), "{}", stderr(&o));
    assert!(first.starts_with("tick "), "control restores: {first}");
}

/// A tmpfs mounted for the test, lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn checkpoint_into_a_full_disk_fails_and_the_sandbox_keeps_running() {
    let env = Env::new();
    let full = env.dir.path().join("full");
    std::fs::create_dir(&full).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs", path_str(&full)])
        .output();
    let _guard = match mounted {
        Ok(o) if o.status.success() => Tmpfs(full.clone()),
        other => {
            eprintln!("SKIPPED: cannot mount a tmpfs here: {other:?}");
            return;
        }
    };
    let mut sb = counter(&env, "full", "64");
    let t0 = Instant::now();
    let img = full.join("img");

    let o = env
        .cmd(&[
            "checkpoint",
            "full",
            "--image",
            path_str(&img),
            "--compression",
            "none",
        ])
        .output()
        .expect("checkpoint");
    let left: Vec<_> = std::fs::read_dir(&full)
        .expect("read tmpfs")
        .map(|e| e.expect("entry").file_name())
        .collect();

    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("the sandbox is still running"));
    let err = stderr(&o).to_lowercase();
    assert!(
        err.contains("no space") || err.contains("enospc"),
        "{}",
        stderr(&o)
    );
    assert!(left.is_empty(), "leftovers in the full disk: {left:?}");
    assert_keeps_ticking(&mut sb, t0);
    assert!(sb.child.try_wait().expect("try_wait").is_none(), "alive");
    let good = env.image("good");
    env.checkpoint("full", &good, &["--compression", "none", "--leave-running"]);
    assert!(good.join("manifest.bin").is_file());
    assert_keeps_ticking(&mut sb, t0);
}
