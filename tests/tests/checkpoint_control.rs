//! The control socket and the `list`/`kill` commands (issue 4): names,
//! stale sockets, permissions, malformed messages.

mod checkpoint_util;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use checkpoint_util::*;

const START: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(20);

fn sleeper(env: &Env, id: &str) -> Sandbox {
    let g = guest("ckpt_counter", Link::Static);
    let mut sb = env.run(id, &[path_str(&g), "1"]);
    sb.wait_for("tick 0 ", START);
    sb
}

/// Sends one length-prefixed frame and reads the reply frame.
fn raw_call(env: &Env, id: &str, frame: &[u8]) -> String {
    let mut s = UnixStream::connect(env.state_dir().join(format!("{id}.sock"))).expect("connect");
    s.write_all(frame).expect("send");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("reply length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("reply body");
    String::from_utf8(body).expect("utf-8 reply")
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn state_dir_and_socket_are_private() {
    let env = Env::new();
    let _sb = sleeper(&env, "priv");

    let dir_mode = std::fs::metadata(env.state_dir())
        .expect("dir")
        .permissions()
        .mode();
    let sock = env.state_dir().join("priv.sock");
    let sock_mode = std::fs::metadata(sock).expect("sock").permissions().mode();

    assert_eq!(dir_mode & 0o777, 0o700);
    assert_eq!(sock_mode & 0o777, 0o600);
}

#[test]
fn list_shows_running_sandboxes_and_kill_ends_one() {
    let env = Env::new();
    let mut a = sleeper(&env, "alpha");
    let _b = sleeper(&env, "beta");

    let table = env.cmd(&["list"]).output().expect("list");
    let kill = env.cmd(&["kill", "alpha", "KILL"]).output().expect("kill");
    let (code, _) = a.finish(STEP);
    let json = env.cmd(&["list", "--json"]).output().expect("list --json");

    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("alpha") && table.contains("beta"), "{table}");
    // CREATED is a UTC time (RFC 3339), not raw epoch seconds.
    let row = table
        .lines()
        .find(|l| l.starts_with("alpha"))
        .expect("alpha row");
    let created = row.split_whitespace().nth(2).expect("CREATED column");
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{row}"
    );
    assert!(
        kill.status.success(),
        "{}",
        String::from_utf8_lossy(&kill.stderr)
    );
    assert_eq!(code, Some(128 + 9), "init died of SIGKILL");
    let json = String::from_utf8_lossy(&json.stdout);
    assert!(!json.contains("alpha"), "{json}");
    assert!(json.contains("\"id\":\"beta\""), "{json}");
}

#[test]
fn kill_default_signal_is_sigterm() {
    let env = Env::new();
    let mut sb = sleeper(&env, "term");

    let o = env.cmd(&["kill", "term"]).output().expect("kill");
    let (code, _) = sb.finish(STEP);

    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(code, Some(128 + 15));
}

#[test]
fn duplicate_live_name_is_refused() {
    let env = Env::new();
    let _sb = sleeper(&env, "dup");

    let o = env
        .cmd(&["run", "--id", "dup", "--", "/bin/true"])
        .output()
        .expect("run");

    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn stale_socket_of_a_dead_sandbox_is_cleaned() {
    let env = Env::new();
    let mut sb = sleeper(&env, "ghost");
    let pid = sb.child.id().to_string();
    // SIGKILL the sbx process itself: it cannot remove its socket.
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill -9");
    let _ = sb.finish(STEP);
    let stale = env.state_dir().join("ghost.sock").exists();

    let listed = env.cmd(&["list", "--json"]).output().expect("list");
    let rerun = env
        .cmd(&["run", "--id", "ghost", "--", "/bin/true"])
        .output()
        .expect("run");

    assert!(stale, "the dead sandbox left its socket");
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "[]");
    assert!(
        rerun.status.success(),
        "{}",
        String::from_utf8_lossy(&rerun.stderr)
    );
}

#[test]
fn malformed_and_oversized_requests_get_error_replies() {
    let env = Env::new();
    let mut sb = sleeper(&env, "fuzz");

    let garbage = raw_call(&env, "fuzz", &framed(b"{not json"));
    let unknown = raw_call(
        &env,
        "fuzz",
        &framed(br#"{"version":1,"request":{"op":"format_disk"}}"#),
    );
    let version = raw_call(
        &env,
        "fuzz",
        &framed(br#"{"version":99,"request":{"op":"info"}}"#),
    );
    let huge = raw_call(&env, "fuzz", &u32::MAX.to_be_bytes());
    let info = raw_call(
        &env,
        "fuzz",
        &framed(br#"{"version":1,"request":{"op":"info"}}"#),
    );
    let still = sb.wait_for("tick 3 ", STEP);

    assert!(
        garbage.contains("\"kind\":\"error\"") && garbage.contains("malformed"),
        "{garbage}"
    );
    assert!(unknown.contains("\"kind\":\"error\""), "{unknown}");
    assert!(version.contains("version 99 not supported"), "{version}");
    assert!(huge.contains("exceeds the limit"), "{huge}");
    assert!(info.contains("\"id\":\"fuzz\""), "{info}");
    assert!(still.starts_with("tick 3"));
}

#[test]
fn checkpoint_of_unknown_sandbox_fails_clearly() {
    let env = Env::new();
    let img = env.image("img");

    let o = env
        .cmd(&["checkpoint", "nobody", "--image", path_str(&img)])
        .output()
        .expect("checkpoint");

    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no running sandbox named \"nobody\""),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_finished_sandbox_removes_its_socket() {
    let env = Env::new();

    let o = env
        .cmd(&["run", "--id", "brief", "--", "/bin/true"])
        .output()
        .expect("run");

    assert!(o.status.success());
    assert!(!env.state_dir().join("brief.sock").exists());
    assert!(!env.state_dir().join("brief.json").exists());
}
