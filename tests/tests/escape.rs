//! Escape attempts: with `--root DIR` nothing outside DIR is readable,
//! whatever the path tricks; writes stay in the overlay.

use tests::{run_sbx, Opts};

const SECRET: &str = "TOP-SECRET-OUTSIDE-ROOT";

/// `<tmp>/secret` (outside) and `<tmp>/root` with busybox in it.
fn layout() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("secret"), SECRET).expect("write secret");
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::copy("/usr/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
    std::fs::write(root.join("etc/passwd"), "inside:x:0:0::/:/bin/sh\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).expect("symlink");
    std::os::unix::fs::symlink("../../secret", root.join("rel-link")).expect("symlink");
    std::os::unix::fs::symlink("/", root.join("root-link")).expect("symlink");
    d
}

fn sh(d: &tempfile::TempDir, script: &str) -> tests::Run {
    let opts = Opts {
        root: Some(d.path().join("root")),
        env: vec![("PATH".into(), "/bin".into())],
        ..Default::default()
    };
    run_sbx(&["/bin/busybox", "sh", "-c", script], &opts)
}

#[test]
fn dotdot_cannot_leave_the_root() {
    let d = layout();
    let r = sh(&d, "cat ../secret /../secret /../../../secret ../../../../secret; cd /; cd ..; cd ..; ls; cat secret");
    assert!(
        !r.stdout_str().contains(SECRET),
        "leaked: {}",
        r.stdout_str()
    );
    assert!(
        r.stdout_str().contains("bin"),
        "ls at / shows the sandbox root: {}",
        r.stdout_str()
    );
}

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    let d = layout();
    let r = sh(
        &d,
        "cat /abs-link; cat /rel-link; cat /root-link/../secret; cat /root-link/etc/passwd",
    );
    assert!(
        !r.stdout_str().contains(SECRET),
        "leaked: {}",
        r.stdout_str()
    );
    assert_eq!(
        r.stdout_str(),
        "inside:x:0:0::/:/bin/sh\ninside:x:0:0::/:/bin/sh\n",
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn proc_self_root_stays_in_the_sandbox() {
    let d = layout();
    let r = sh(&d, "cat /proc/self/root/../secret; cat /proc/self/root/etc/passwd; cat /proc/1/root/../../secret; readlink /proc/self/root");
    assert!(
        !r.stdout_str().contains(SECRET),
        "leaked: {}",
        r.stdout_str()
    );
    assert!(
        r.stdout_str().contains("inside:x:0:0"),
        "stdout: {}",
        r.stdout_str()
    );
}

#[test]
fn writes_stay_in_the_overlay() {
    let d = layout();
    let r = sh(
        &d,
        "echo pwned > /etc/passwd; echo x > /newfile; cat /etc/passwd; rm /bin/busybox",
    );
    assert_eq!(r.stdout_str(), "pwned\n");
    let root = d.path().join("root");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/passwd")).expect("read"),
        "inside:x:0:0::/:/bin/sh\n"
    );
    assert!(!root.join("newfile").exists());
    assert!(root.join("bin/busybox").exists());
}
