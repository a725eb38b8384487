//! Path resolution rules: symlinks, ELOOP, trailing slashes, lengths, dirfds, cwd.

use super::*;

#[test]
fn symlink_chains_resolve_and_loops_are_eloop() {
    let fx = fixture();
    fx.symlink("a.txt", "/data/l1");
    fx.symlink("l1", "/data/l2");
    fx.symlink("/data/l2", "/data/l3");
    assert_eq!(fx.read_all("/data/l3").unwrap(), b"lower a");
    fx.symlink("loop2", "/data/loop1");
    fx.symlink("loop1", "/data/loop2");
    assert_eq!(fx.read_all("/data/loop1").unwrap_err(), Errno::ELOOP);
}

#[test]
fn forty_symlinks_resolve_forty_one_are_eloop() {
    let fx = fixture();
    fx.symlink("/data/a.txt", "/data/s0");
    for i in 1..=40 {
        fx.symlink(&format!("s{}", i - 1), &format!("/data/s{i}"));
    }
    assert_eq!(fx.read_all("/data/s39").unwrap(), b"lower a");
    assert_eq!(fx.read_all("/data/s40").unwrap_err(), Errno::ELOOP);
}

#[test]
fn nofollow_flags_see_the_link_itself() {
    let fx = fixture();
    fx.symlink("a.txt", "/data/link");
    let nofollow = RO | libc::O_NOFOLLOW as u32;
    assert_eq!(
        fx.open("/data/link", nofollow).unwrap_err().code(),
        libc::ELOOP
    );
    let st = fx
        .vfs
        .stat(
            &fx.ctx,
            At::Cwd,
            b"/data/link",
            libc::AT_SYMLINK_NOFOLLOW as u32,
            P,
        )
        .unwrap();
    assert_eq!(st.mode & libc::S_IFMT, libc::S_IFLNK);
    let st = fx.vfs.stat(&fx.ctx, At::Cwd, b"/data/link", 0, P).unwrap();
    assert_eq!(st.size, 7);
    let p = fx
        .open("/data/link", nofollow | libc::O_PATH as u32)
        .unwrap();
    assert_eq!(
        fx.vfs.readlink(&fx.ctx, At::Fd(&p), b"", P).unwrap(),
        b"a.txt"
    );
}

#[test]
fn trailing_slash_and_length_rules() {
    let fx = fixture();
    assert_eq!(fx.open("/data/a.txt/", RO).unwrap_err(), Errno::ENOTDIR);
    assert_eq!(fx.open("/data/a.txt/x", RO).unwrap_err(), Errno::ENOTDIR);
    assert!(fx.open("/data/sub/", RO).is_ok());
    let long = format!("/data/{}", "n".repeat(256));
    assert_eq!(fx.open(&long, RO).unwrap_err(), Errno::ENAMETOOLONG);
    let deep = "/data".to_string() + &"/.".repeat(2100);
    assert_eq!(fx.open(&deep, RO).unwrap_err(), Errno::ENAMETOOLONG);
    assert_eq!(fx.open("", RO).unwrap_err().code(), libc::ENOENT);
}

#[test]
fn dirfd_relative_resolution_and_at_empty_path() {
    let fx = fixture();
    let d = fx.open("/data", RO | libc::O_DIRECTORY as u32).unwrap();
    let f = fx
        .vfs
        .open(&fx.ctx, At::Fd(&d), b"sub/c.txt", RO, 0, ROOT, P)
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(f.read(&mut buf).unwrap(), 7);
    let st = fx
        .vfs
        .stat(&fx.ctx, At::Fd(&f), b"", libc::AT_EMPTY_PATH as u32, P)
        .unwrap();
    assert_eq!(st.size, 7);
    // A regular file is not a dirfd.
    assert_eq!(
        fx.vfs
            .open(&fx.ctx, At::Fd(&f), b"x", RO, 0, ROOT, P)
            .unwrap_err()
            .code(),
        libc::ENOTDIR
    );
}

#[test]
fn getcwd_of_a_removed_directory_is_enoent() {
    let fx = fixture();
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/tmpd", 0o755, ROOT, P)
        .unwrap();
    let mut ctx = fx.ctx.clone();
    fx.vfs.chdir(&mut ctx, b"/tmpd", P).unwrap();
    assert_eq!(fx.vfs.getcwd(&ctx, P).unwrap(), b"/tmpd");
    fx.vfs.rmdir(&fx.ctx, At::Cwd, b"/tmpd", P).unwrap();
    assert_eq!(fx.vfs.getcwd(&ctx, P).unwrap_err().code(), libc::ENOENT);
    assert_eq!(
        fx.vfs
            .open(
                &ctx,
                At::Cwd,
                b"f",
                RW | libc::O_CREAT as u32,
                0o644,
                ROOT,
                P
            )
            .unwrap_err()
            .code(),
        libc::ENOENT
    );
}

#[test]
fn creat_through_a_dangling_symlink_creates_the_target() {
    let fx = fixture();
    fx.symlink("/data/target", "/data/dangling");
    fx.write_file("/data/dangling", b"via link", libc::O_CREAT as u32);
    assert_eq!(fx.read_all("/data/target").unwrap(), b"via link");
    let excl = libc::O_CREAT as u32 | libc::O_EXCL as u32 | RW;
    assert_eq!(fx.open("/data/dangling", excl).unwrap_err(), Errno::EEXIST);
}
