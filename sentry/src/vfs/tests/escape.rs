//! Escape attempts: nothing reaches a host file outside the root.

use super::*;

#[test]
fn dotdot_never_leaves_the_sandbox_root() {
    let fx = fixture();
    assert_eq!(
        fx.read_all("/../../../etc/passwd").unwrap(),
        b"sandbox passwd"
    );
    assert_eq!(fx.read_all("../../etc/passwd").unwrap(), b"sandbox passwd");
    assert_eq!(
        fx.read_all("/../outside/secret").unwrap_err(),
        Errno::ENOENT
    );
}

#[test]
fn absolute_symlink_resolves_from_the_sandbox_root() {
    let fx = fixture();
    std::os::unix::fs::symlink("/etc/passwd", fx.lower.join("data/abs")).unwrap();
    std::os::unix::fs::symlink(fx.outside.join("secret"), fx.lower.join("data/host")).unwrap();
    assert_eq!(fx.read_all("/data/abs").unwrap(), b"sandbox passwd");
    // The host path of the secret does not exist inside the sandbox.
    assert_eq!(fx.read_all("/data/host").unwrap_err().code(), libc::ENOENT);
}

#[test]
fn relative_symlink_climbing_out_stays_inside() {
    let fx = fixture();
    std::os::unix::fs::symlink("../../../../../outside/secret", fx.lower.join("data/rel")).unwrap();
    std::os::unix::fs::symlink("../../../../../etc/passwd", fx.lower.join("data/rel2")).unwrap();
    assert_eq!(fx.read_all("/data/rel").unwrap_err().code(), libc::ENOENT);
    assert_eq!(fx.read_all("/data/rel2").unwrap(), b"sandbox passwd");
}

#[test]
fn proc_self_root_dotdot_is_the_sandbox_root() {
    let fx = fixture();
    assert_eq!(
        fx.read_all("/proc/self/root/../etc/passwd").unwrap(),
        b"sandbox passwd"
    );
    assert_eq!(
        fx.read_all("/proc/self/root/../../outside/secret")
            .unwrap_err()
            .code(),
        libc::ENOENT
    );
}

#[test]
fn chroot_confines_dotdot_and_absolute_paths() {
    let mut fx = fixture();
    let mut ctx = fx.ctx.clone();
    fx.vfs.chroot(&mut ctx, b"/data", P).unwrap();
    fx.ctx = ctx;
    assert_eq!(fx.read_all("/a.txt").unwrap(), b"lower a");
    assert_eq!(fx.read_all("/../../a.txt").unwrap(), b"lower a");
    assert_eq!(fx.read_all("/etc/passwd").unwrap_err().code(), libc::ENOENT);
}

#[test]
fn random_walks_through_hostile_symlinks_never_reach_the_host() {
    let fx = fixture();
    let l = &fx.lower;
    // Hostile links in the lower layer, relative and absolute, pointing
    // at the host paths of the sandbox root's parent and the secret.
    let outside = fx.outside.to_string_lossy().into_owned();
    for (name, target) in [
        ("data/up", "../../.."),
        ("data/abs", "/"),
        ("data/esc", "../../outside"),
        ("data/hostabs", outside.as_str()),
        ("data/me", "."),
        ("data/secretlink", "../outside/secret"),
    ] {
        std::os::unix::fs::symlink(target, l.join(name)).unwrap();
    }
    let comps = [
        "..",
        ".",
        "data",
        "sub",
        "up",
        "abs",
        "esc",
        "hostabs",
        "me",
        "secretlink",
        "secret",
        "outside",
        "etc",
        "passwd",
        "root",
        "proc",
        "self",
        "dev",
        "fd",
        "tmp",
    ];
    // xorshift64*: deterministic, no extra dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    };
    let mut opened = 0;
    for _ in 0..3000 {
        let len = 1 + next(8);
        let mut path = String::new();
        if next(2) == 0 {
            path.push('/');
        }
        for i in 0..len {
            if i > 0 {
                path.push('/');
            }
            path.push_str(comps[next(comps.len())]);
        }
        let Ok(f) = fx.open(&path, RO) else { continue };
        opened += 1;
        let mut buf = [0u8; 64];
        if let Ok(n) = f.read(&mut buf) {
            assert!(
                !buf[..n].starts_with(b"HOST SECRET"),
                "{path} reached the host secret"
            );
        }
    }
    assert!(
        opened > 100,
        "the walk should open many files, opened {opened}"
    );
}
