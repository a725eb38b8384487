//! Damaged images are refused before any guest code runs, each with its
//! own clear error and a non-zero exit (issue 4, DESIGN.md point 6).

mod checkpoint_util;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use checkpoint_util::*;

/// One good image of a small counter, made once for all tests.
fn template() -> &'static Path {
    static T: OnceLock<(Env, PathBuf)> = OnceLock::new();
    let (_, p) = T.get_or_init(|| {
        let env = Env::new();
        let g = guest("ckpt_counter", Link::Static);
        let mut sb = env.run("tmpl", &[path_str(&g), "4"]);
        sb.wait_for("tick 1 ", Duration::from_secs(60));
        let img = env.image("img");
        // Raw chunks: the restore's sendfile fast path checks them.
        env.checkpoint("tmpl", &img, &["--compression", "none"]);
        let _ = sb.finish(Duration::from_secs(20));
        (env, img)
    });
    p
}

/// A copy of the template image, damaged by `damage`; restores it and
/// returns (exit code, stdout, stderr).
fn restore_damaged(damage: impl FnOnce(&Path)) -> (Option<i32>, String, String) {
    let env = Env::new();
    let img = env.image("img");
    std::fs::create_dir(&img).expect("image dir");
    for f in ["manifest.bin", "state.bin", "memory.bin"] {
        std::fs::copy(template().join(f), img.join(f)).expect("copy image");
    }
    damage(&img);
    let o = env
        .cmd(&["restore", "--image", path_str(&img)])
        .output()
        .expect("run sbx restore");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).expect("read");
    b[offset] ^= 0xff;
    std::fs::write(path, b).expect("write");
}

#[test]
fn intact_copy_restores() {
    // The control: the copy procedure itself keeps the image valid.
    let env = Env::new();
    let img = env.image("img");
    std::fs::create_dir(&img).expect("image dir");
    for f in ["manifest.bin", "state.bin", "memory.bin"] {
        std::fs::copy(template().join(f), img.join(f)).expect("copy image");
    }
    let mut rs = env.restore(&img, "intact");
    let l = rs.next_line(Duration::from_secs(20));
    assert!(l.starts_with("tick "), "{l}");
}

#[test]
fn flipped_byte_in_state_section() {
    let (code, out, err) = restore_damaged(|d| flip(&d.join("state.bin"), 100));
    assert_eq!(code, Some(125));
    assert_eq!(out, "", "no guest output");
    assert!(err.contains("state section checksum mismatch"), "{err}");
}

#[test]
fn flipped_byte_in_memory_chunk() {
    let (code, out, err) = restore_damaged(|d| flip(&d.join("memory.bin"), 5000));
    assert_eq!(code, Some(125));
    assert_eq!(out, "");
    assert!(err.contains("memory chunk 0"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
}

/// A compressible image (a shell: its memory is mostly code and zeros),
/// written with zstd.
fn zstd_image(env: &Env) -> PathBuf {
    let mut sb = env.run(
        "zsh",
        &[
            "/usr/bin/busybox",
            "sh",
            "-c",
            "echo up; while true; do sleep 0.1; done",
        ],
    );
    sb.wait_for("up", Duration::from_secs(60));
    let img = env.image("zimg");
    env.checkpoint("zsh", &img, &["--compression", "zstd:3"]);
    let _ = sb.finish(Duration::from_secs(20));
    img
}

#[test]
fn flipped_byte_in_compressed_memory_chunk() {
    let env = Env::new();
    let img = zstd_image(&env);
    let mem = img.join("memory.bin");
    let len = std::fs::metadata(&mem).expect("stat").len() as usize;
    flip(&mem, len / 2);

    let o = env
        .cmd(&["restore", "--image", path_str(&img)])
        .output()
        .expect("restore");

    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125));
    assert!(o.stdout.is_empty());
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn compressed_image_restores() {
    let env = Env::new();
    let img = zstd_image(&env);

    let mut rs = env.restore(&img, "zstd-ok");
    // The restored sandbox registers its control socket once it runs.
    let mut killed = false;
    for _ in 0..200 {
        let o = env
            .cmd(&["kill", "zstd-ok", "KILL"])
            .output()
            .expect("kill");
        if o.status.success() {
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _) = rs.finish(Duration::from_secs(20));

    assert!(killed, "restored shell answers its control socket");
    assert_eq!(code, Some(128 + 9));
}

#[test]
fn truncated_memory_file() {
    let (code, out, err) = restore_damaged(|d| {
        let p = d.join("memory.bin");
        let len = std::fs::metadata(&p).expect("stat").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .expect("open");
        f.set_len(len - 10).expect("truncate");
    });
    assert_eq!(code, Some(125));
    assert_eq!(out, "");
    assert!(err.contains("memory.bin is truncated"), "{err}");
}

#[test]
fn missing_state_file() {
    let (code, out, err) =
        restore_damaged(|d| std::fs::remove_file(d.join("state.bin")).expect("rm"));
    assert_eq!(code, Some(125));
    assert_eq!(out, "");
    assert!(err.contains("state.bin does not exist"), "{err}");
}

#[test]
fn manifest_from_a_newer_format_version() {
    // Offset 8: the format version (u32 LE), see checkpoints/FORMAT.md.
    let (code, out, err) = restore_damaged(|d| {
        let p = d.join("manifest.bin");
        let mut b = std::fs::read(&p).expect("read");
        b[8] = 2;
        std::fs::write(&p, b).expect("write");
    });
    assert_eq!(code, Some(125));
    assert_eq!(out, "");
    assert!(err.contains("format version 2 is not supported"), "{err}");
}

#[test]
fn not_an_image() {
    let (code, out, err) = restore_damaged(|d| {
        std::fs::write(
            d.join("manifest.bin"),
            b"hello, this is not a checkpoint manifest",
        )
        .expect("write")
    });
    assert_eq!(code, Some(125));
    assert_eq!(out, "");
    assert!(err.contains("not an sbx checkpoint image"), "{err}");
}
