//! `sbx restore --memory eager|lazy|on-demand`: whichever way memory is
//! copied in from the image, the restored guest computes what the same
//! program computes natively — through its own loads, through syscalls
//! reading its memory (a pipe), across fork's copy-on-write, after writes
//! — and a checkpoint taken before the copy finished saves all of it. A
//! `memory.bin` changed after the restore checked it is noticed.

mod checkpoint_util;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use checkpoint_util::*;

const START: Duration = Duration::from_secs(60);
const STEP: Duration = Duration::from_secs(30);
const MIB: &str = "24";

/// What is asked of the guest after the restore; each answers one line.
const CMDS: [&str; 6] = ["pipe", "fork", "write", "sum", "fork", "sum"];

/// The guest's answers to `sum` and then [`CMDS`], run natively.
fn native() -> Vec<String> {
    let g = guest("ckpt_lazy", Link::Static);
    let mut c = Command::new(&g)
        .arg(MIB)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the guest natively");
    let mut input = String::from("sum\n");
    for cmd in CMDS {
        input += cmd;
        input.push('\n');
    }
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write commands");
    let out = c.wait_with_output().expect("native guest");
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1) // ready
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1 + CMDS.len(), "native output {lines:?}");
    lines
}

/// Runs the guest, asks for its checksum, checkpoints it with
/// `compression` and `extra` flags; returns the image and the checksum
/// line.
fn checkpointed(env: &Env, id: &str, compression: &str, extra: &[&str]) -> (PathBuf, String) {
    let g = guest("ckpt_lazy", Link::Static);
    let mut sb = env.run_stdin_pipe(id, &[path_str(&g), MIB]);
    sb.wait_for("ready", START);
    sb.send("sum");
    let sum = sb.wait_for("sum ", STEP);
    let img = env.image(&format!("{id}-img"));
    let mut args = vec!["--compression", compression];
    args.extend_from_slice(extra);
    env.checkpoint(id, &img, &args);
    let (code, _) = sb.finish(STEP);
    assert_eq!(code, Some(0), "sbx run exits 0 once checkpointed");
    (img, sum)
}

/// Restores `img` with `--memory mode` and returns the answers to `sum`
/// and [`CMDS`] and the exit status after `exit`.
fn answers(env: &Env, img: &Path, id: &str, mode: &str) -> (Vec<String>, Option<i32>) {
    let mut rs = env.restore_with(img, id, &["--memory", mode]);
    let mut got = Vec::new();
    for cmd in std::iter::once("sum").chain(CMDS) {
        rs.send(cmd);
        got.push(rs.next_line(STEP));
    }
    rs.send("exit");
    let (code, _) = rs.finish(STEP);
    (got, code)
}

#[test]
fn every_memory_mode_and_image_kind_gives_the_native_results() {
    let want = native();
    let env = Env::new();
    let kinds: [(&str, &[&str]); 3] = [("none", &[]), ("none", &["--direct"]), ("zstd", &[])];
    for (i, (compression, extra)) in kinds.into_iter().enumerate() {
        let (img, sum) = checkpointed(&env, &format!("g{i}"), compression, extra);
        assert_eq!(sum, want[0], "checksum before the checkpoint");
        for mode in ["eager", "lazy", "on-demand"] {
            let (got, code) = answers(&env, &img, &format!("r{i}-{mode}"), mode);
            let what = format!("{compression} {extra:?} image, --memory {mode}");
            assert_eq!(got, want, "{what}");
            assert_eq!(code, Some(0), "{what}");
        }
    }
}

#[test]
fn a_checkpoint_before_the_memory_is_loaded_saves_all_of_it() {
    let want = native();
    let env = Env::new();
    let (img, _) = checkpointed(&env, "first", "none", &[]);
    // On demand and untouched: the buffer is still only in the image.
    let mut rs = env.restore_with(&img, "second", &["--memory", "on-demand"]);
    rs.send("ping");
    assert_eq!(rs.next_line(STEP), "pong");
    let img2 = env.image("img2");
    env.checkpoint("second", &img2, &["--compression", "zstd"]);
    let (code, _) = rs.finish(STEP);
    assert_eq!(code, Some(0));
    // Remove the first image: the second must stand on its own.
    std::fs::remove_dir_all(&img).expect("remove the first image");

    let (got, code) = answers(&env, &img2, "third", "eager");
    assert_eq!(got, want);
    assert_eq!(code, Some(0));
}

#[test]
fn memory_changed_after_the_check_is_not_given_to_the_guest() {
    let env = Env::new();
    let (img, _) = checkpointed(&env, "orig", "none", &[]);
    let mut rs = env.restore_with(&img, "lazy", &["--memory", "on-demand"]);
    rs.send("ping");
    assert_eq!(rs.next_line(STEP), "pong");
    // The buffer is most of memory.bin: flip a byte in its middle, in
    // place (same inode the restore holds open).
    let path = img.join("memory.bin");
    let len = std::fs::metadata(&path).expect("memory.bin").len();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open memory.bin");
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    b[0] ^= 0x10;
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
    drop(f);

    rs.send("sum");
    let (code, rest) = rs.finish(STEP);
    assert!(
        rest.iter().all(|l| !l.starts_with("sum")),
        "no checksum of unchecked memory: {rest:?}"
    );
    assert_eq!(
        code,
        Some(128 + 9),
        "the guest touching lost memory is killed"
    );
}

#[test]
fn an_unknown_memory_mode_is_refused() {
    let env = Env::new();
    let o = env
        .cmd(&[
            "restore",
            "--image",
            "/nonexistent",
            "--memory",
            "sometimes",
        ])
        .output()
        .expect("run sbx");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("eager, lazy or on-demand"), "{err}");
}
