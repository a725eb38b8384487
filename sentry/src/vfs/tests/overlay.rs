//! The overlay: copy-up, whiteouts, rmdir, rename, links; the host is never written.

use super::*;

#[test]
fn writes_to_lower_files_never_reach_the_host() {
    let fx = fixture();
    let host = fx.lower.join("data/a.txt");
    let before = host_snapshot(&host);
    fx.write_file("/data/a.txt", b"XY", 0);
    fx.vfs
        .chmod(&fx.ctx, At::Cwd, b"/data/a.txt", 0o600, true, P)
        .unwrap();
    fx.vfs.truncate(&fx.ctx, b"/data/b.txt", 2, P).unwrap();
    fx.vfs
        .unlink(&fx.ctx, At::Cwd, b"/data/sub/c.txt", P)
        .unwrap();
    fx.vfs
        .rename(
            &fx.ctx,
            At::Cwd,
            b"/etc/passwd",
            At::Cwd,
            b"/etc/moved",
            0,
            P,
        )
        .unwrap();
    assert_eq!(fx.read_all("/data/a.txt").unwrap(), b"XYwer a");
    assert_eq!(host_snapshot(&host), before);
    assert_eq!(std::fs::metadata(&host).unwrap().mode() & 0o777, 0o644);
    assert_eq!(
        std::fs::read(fx.lower.join("data/b.txt")).unwrap(),
        b"lower b"
    );
    assert_eq!(
        std::fs::read(fx.lower.join("data/sub/c.txt")).unwrap(),
        b"lower c"
    );
    assert_eq!(
        std::fs::read(fx.lower.join("etc/passwd")).unwrap(),
        b"sandbox passwd"
    );
    assert!(!fx.lower.join("etc/moved").exists());
}

#[test]
fn created_files_live_only_in_the_overlay() {
    let fx = fixture();
    fx.write_file("/data/new.txt", b"fresh", libc::O_CREAT as u32);
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/data/newdir", 0o755, ROOT, P)
        .unwrap();
    assert_eq!(fx.read_all("/data/new.txt").unwrap(), b"fresh");
    assert!(!fx.lower.join("data/new.txt").exists());
    assert!(!fx.lower.join("data/newdir").exists());
}

#[test]
fn copy_up_keeps_untouched_bytes_and_identity() {
    let fx = fixture();
    let ino = std::fs::metadata(fx.lower.join("data/a.txt"))
        .unwrap()
        .ino();
    let f = fx.open("/data/a.txt", RW).unwrap();
    assert_eq!(f.lseek(6, libc::SEEK_SET).unwrap(), 6);
    f.write(b"A!").unwrap();
    let st = f.fstat(P).unwrap();
    assert_eq!(st.size, 8);
    assert_eq!(st.ino, ino);
    assert_eq!(fx.read_all("/data/a.txt").unwrap(), b"lower A!");
}

#[test]
fn o_trunc_and_o_append_on_a_lower_file() {
    let fx = fixture();
    fx.write_file("/data/a.txt", b"new", libc::O_TRUNC as u32);
    assert_eq!(fx.read_all("/data/a.txt").unwrap(), b"new");
    fx.write_file("/data/b.txt", b"+more", libc::O_APPEND as u32);
    assert_eq!(fx.read_all("/data/b.txt").unwrap(), b"lower b+more");
}

#[test]
fn hard_link_to_a_lower_file_shares_copied_up_data() {
    let fx = fixture();
    fx.vfs
        .link(&fx.ctx, At::Cwd, b"/data/a.txt", At::Cwd, b"/data/hl", 0, P)
        .unwrap();
    fx.write_file("/data/hl", b"L", 0);
    assert_eq!(fx.read_all("/data/a.txt").unwrap(), b"Lower a");
    let st = fx.vfs.stat(&fx.ctx, At::Cwd, b"/data/a.txt", 0, P).unwrap();
    assert_eq!(st.nlink, 2);
    let st2 = fx.vfs.stat(&fx.ctx, At::Cwd, b"/data/hl", 0, P).unwrap();
    assert_eq!(st.ino, st2.ino);
    fx.vfs.unlink(&fx.ctx, At::Cwd, b"/data/a.txt", P).unwrap();
    assert_eq!(fx.read_all("/data/hl").unwrap(), b"Lower a");
    assert_eq!(
        fx.vfs
            .stat(&fx.ctx, At::Cwd, b"/data/hl", 0, P)
            .unwrap()
            .nlink,
        1
    );
}

#[test]
fn unlinked_lower_file_is_whited_out_and_can_be_recreated() {
    let fx = fixture();
    fx.vfs.unlink(&fx.ctx, At::Cwd, b"/data/a.txt", P).unwrap();
    assert_eq!(fx.open("/data/a.txt", RO).unwrap_err(), Errno::ENOENT);
    assert!(!fx.names("/data", 4096).contains(&"a.txt".to_string()));
    fx.write_file(
        "/data/a.txt",
        b"again",
        libc::O_CREAT as u32 | libc::O_EXCL as u32,
    );
    assert_eq!(fx.read_all("/data/a.txt").unwrap(), b"again");
}

#[test]
fn rmdir_counts_lower_entries_and_whiteouts() {
    let fx = fixture();
    let rmdir = |p: &str| fx.vfs.rmdir(&fx.ctx, At::Cwd, p.as_bytes(), P);
    assert_eq!(rmdir("/data/sub").unwrap_err(), Errno::ENOTEMPTY);
    fx.vfs
        .unlink(&fx.ctx, At::Cwd, b"/data/sub/c.txt", P)
        .unwrap();
    rmdir("/data/sub").unwrap();
    assert_eq!(fx.open("/data/sub", RO).unwrap_err(), Errno::ENOENT);
    // A new directory of the same name is opaque: the lower c.txt is gone.
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/data/sub", 0o755, ROOT, P)
        .unwrap();
    assert_eq!(fx.names("/data/sub", 4096), vec![".", ".."]);
    assert_eq!(fx.open("/data/sub/c.txt", RO).unwrap_err(), Errno::ENOENT);
    assert!(fx.lower.join("data/sub/c.txt").exists());
    assert_eq!(rmdir("/data/a.txt").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(rmdir("/proc").unwrap_err(), Errno::EBUSY);
}

#[test]
fn rename_moves_files_and_directories_across_layers() {
    let fx = fixture();
    let rename = |a: &str, b: &str| {
        fx.vfs
            .rename(&fx.ctx, At::Cwd, a.as_bytes(), At::Cwd, b.as_bytes(), 0, P)
    };
    // Lower file over another lower file.
    rename("/data/a.txt", "/data/b.txt").unwrap();
    assert_eq!(fx.read_all("/data/b.txt").unwrap(), b"lower a");
    assert_eq!(fx.open("/data/a.txt", RO).unwrap_err(), Errno::ENOENT);
    // Lower directory to a new upper directory.
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/new", 0o755, ROOT, P)
        .unwrap();
    rename("/data/sub", "/new/moved").unwrap();
    assert_eq!(fx.read_all("/new/moved/c.txt").unwrap(), b"lower c");
    assert_eq!(fx.open("/data/sub/c.txt", RO).unwrap_err(), Errno::ENOENT);
    let mut ctx = fx.ctx.clone();
    fx.vfs.chdir(&mut ctx, b"/new/moved", P).unwrap();
    assert_eq!(fx.vfs.getcwd(&ctx, P).unwrap(), b"/new/moved");
    // Into itself, over a non-empty directory, file over directory.
    assert_eq!(
        rename("/new", "/new/moved/x").unwrap_err().code(),
        libc::EINVAL
    );
    assert_eq!(rename("/bin", "/new").unwrap_err(), Errno::ENOTEMPTY);
    assert_eq!(rename("/data/b.txt", "/new").unwrap_err(), Errno::EISDIR);
    assert_eq!(
        fx.vfs
            .rename(
                &fx.ctx,
                At::Cwd,
                b"/data/b.txt",
                At::Cwd,
                b"/etc/passwd",
                libc::RENAME_NOREPLACE,
                P
            )
            .unwrap_err(),
        Errno::EEXIST
    );
    assert_eq!(rename("/data/b.txt", "/dev/x").unwrap_err(), Errno::EXDEV);
}

#[test]
fn umask_applies_to_created_files() {
    let fx = fixture();
    fx.write_file("/data/m", b"", libc::O_CREAT as u32);
    let st = fx.vfs.stat(&fx.ctx, At::Cwd, b"/data/m", 0, P).unwrap();
    assert_eq!(st.mode, libc::S_IFREG | 0o644);
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/data/d", 0o777, ROOT, P)
        .unwrap();
    let st = fx.vfs.stat(&fx.ctx, At::Cwd, b"/data/d", 0, P).unwrap();
    assert_eq!(st.mode, libc::S_IFDIR | 0o755);
    assert_ne!(st.dev, std::fs::metadata(&fx.lower).unwrap().dev());
}

#[test]
fn renamed_lower_file_keeps_reading_lower_data_without_copy_up() {
    let fx = fixture();
    fx.vfs
        .rename(
            &fx.ctx,
            At::Cwd,
            b"/data/a.txt",
            At::Cwd,
            b"/etc/a-moved",
            0,
            P,
        )
        .unwrap();
    let loc = fx
        .vfs
        .lookup(&fx.ctx, At::Cwd, b"/etc/a-moved", true, P)
        .unwrap();
    assert!(!loc.overlay_node().unwrap().is_copied_up());
    assert_eq!(fx.read_all("/etc/a-moved").unwrap(), b"lower a");
    let data = fx.names("/data", 4096);
    assert!(!data.contains(&"a.txt".to_string()));
    assert!(fx.names("/etc", 4096).contains(&"a-moved".to_string()));
}

#[test]
fn overlay_budget_gives_enospc_and_is_returned_by_unlink() {
    let fx = fixture();
    let budget = fx.vfs.overlay().budget();
    budget.set_limit(budget.used() + 10_000);
    let f = fx.open("/data/big", RW | libc::O_CREAT as u32).unwrap();
    assert_eq!(f.write(&[1u8; 8_000]).unwrap(), 8_000);
    assert_eq!(f.write(&[1u8; 4_000]).unwrap_err().code(), libc::ENOSPC);
    assert_eq!(f.ftruncate(1 << 20).unwrap_err().code(), libc::ENOSPC);
    // Copy-up of a lower file is charged too.
    let before = budget.used();
    fx.write_file("/data/a.txt", b"L", 0);
    assert_eq!(budget.used(), before + 7);
    drop(f);
    fx.vfs.unlink(&fx.ctx, At::Cwd, b"/data/big", P).unwrap();
    assert_eq!(budget.used(), before + 7 - 8_000);
    let free = |b: [u8; 120]| u64::from_le_bytes(b[24..32].try_into().unwrap());
    let st = fx.vfs.statfs(&fx.ctx, b"/", P).unwrap();
    assert_eq!(free(st), (budget.limit() - budget.used()) / 4096);
}
