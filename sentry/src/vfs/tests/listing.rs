//! Directory listings and the synthetic mounts (/dev, /dev/shm, /proc, statfs).

use super::*;

#[test]
fn merged_listing_continued_across_small_buffers_is_exact() {
    let fx = fixture();
    for i in 0..40 {
        std::fs::write(fx.lower.join(format!("data/lower{i:02}")), b"x").unwrap();
    }
    for i in 0..10 {
        fx.write_file(&format!("/data/upper{i}"), b"y", libc::O_CREAT as u32);
    }
    for i in 0..5 {
        fx.vfs
            .unlink(&fx.ctx, At::Cwd, format!("/data/lower{i:02}").as_bytes(), P)
            .unwrap();
    }
    // Shadow a lower name with an upper file: listed once.
    fx.write_file("/data/lower10", b"z", libc::O_TRUNC as u32);
    let mut got = fx.names("/data", 64);
    got.sort();
    let mut want: Vec<String> = [".", "..", "a.txt", "b.txt", "sub"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    want.extend((5..40).map(|i| format!("lower{i:02}")));
    want.extend((0..10).map(|i| format!("upper{i}")));
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn getdents_rejects_a_buffer_too_small_for_one_entry() {
    let fx = fixture();
    let f = fx.open("/data", RO).unwrap();
    assert_eq!(f.getdents64(10, P).unwrap_err().code(), libc::EINVAL);
    assert_eq!(
        fx.open("/data/a.txt", RO)
            .unwrap()
            .getdents64(4096, P)
            .unwrap_err(),
        Errno::ENOTDIR
    );
}

#[test]
fn dev_and_proc_are_listed_and_resolved() {
    let fx = fixture();
    let dev = fx.names("/dev", 4096);
    assert!(dev.contains(&"null".to_string()) && dev.contains(&"urandom".to_string()));
    let f = fx.open("/dev/null", RW).unwrap();
    assert_eq!(f.write(b"gone").unwrap(), 4);
    assert_eq!(
        fx.read_all("/dev/../etc/passwd").unwrap(),
        b"sandbox passwd"
    );
    assert_eq!(fx.read_all("/proc/self/cmdline").unwrap(), b"prog\0-x\0");
    assert_eq!(
        fx.read_all("/proc/7/status").unwrap(),
        b"Name:\tprog\nPid:\t7\n"
    );
    assert_eq!(
        fx.vfs.readlink(&fx.ctx, At::Cwd, b"/proc/self", P).unwrap(),
        b"7"
    );
    assert_eq!(
        fx.vfs
            .readlink(&fx.ctx, At::Cwd, b"/proc/self/exe", P)
            .unwrap(),
        b"/bin/prog"
    );
    assert_eq!(fx.open("/proc/8/status", RO).unwrap_err(), Errno::ENOENT);
    assert!(fx.names("/proc/self/fd", 4096).contains(&"0".to_string()));
    assert_eq!(
        fx.open("/proc/self/status", RW).unwrap_err().code(),
        libc::EACCES
    );
}

#[test]
fn root_listing_shows_the_mounts_even_without_host_dirs() {
    let fx = fixture();
    let names = fx.names("/", 4096);
    assert_eq!(names.iter().filter(|n| *n == "dev").count(), 1);
    assert_eq!(names.iter().filter(|n| *n == "proc").count(), 1);
    assert!(!fx.lower.join("dev").exists());
}

#[test]
fn proc_mounts_link_and_global_files() {
    let fx = fixture();
    let mounts = fx.read_all("/proc/mounts").unwrap();
    assert!(mounts.starts_with(b"overlay / overlay"));
    assert_eq!(
        fx.vfs
            .readlink(&fx.ctx, At::Cwd, b"/proc/mounts", P)
            .unwrap(),
        b"self/mounts"
    );
    assert!(!fx.read_all("/proc/uptime").unwrap().is_empty());
    assert!(fx.names("/proc", 4096).contains(&"filesystems".to_string()));
}

#[test]
fn dev_shm_is_a_writable_in_memory_directory() {
    let fx = fixture();
    fx.write_file("/dev/shm/sem.x", b"shared", libc::O_CREAT as u32);
    assert_eq!(fx.read_all("/dev/shm/sem.x").unwrap(), b"shared");
    assert_eq!(fx.read_all("/dev/shm/../null").unwrap(), b"");
    assert!(fx.names("/dev", 4096).contains(&"shm".to_string()));
    assert_eq!(fx.names("/dev/shm", 4096), vec![".", "..", "sem.x"]);
    let mut ctx = fx.ctx.clone();
    fx.vfs.chdir(&mut ctx, b"/dev/shm", P).unwrap();
    assert_eq!(fx.vfs.getcwd(&ctx, P).unwrap(), b"/dev/shm");
    assert_eq!(
        fx.vfs
            .rmdir(&fx.ctx, At::Cwd, b"/dev/shm", P)
            .unwrap_err()
            .code(),
        libc::EACCES
    );
    assert!(!fx.lower.join("dev").exists());
}

#[test]
fn statfs_reports_each_mounts_magic() {
    use crate::vfs::statfs::{OVERLAYFS_SUPER_MAGIC, PIPEFS_MAGIC, PROC_SUPER_MAGIC, TMPFS_MAGIC};
    let fx = fixture();
    let magic = |p: &str| {
        let b = fx.vfs.statfs(&fx.ctx, p.as_bytes(), P).unwrap();
        u64::from_le_bytes(b[0..8].try_into().unwrap())
    };
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/dev/shm/x", 0o755, ROOT, P)
        .unwrap();
    assert_eq!(magic("/etc/passwd"), OVERLAYFS_SUPER_MAGIC);
    assert_eq!(magic("/proc/self"), PROC_SUPER_MAGIC);
    assert_eq!(magic("/dev/null"), TMPFS_MAGIC);
    assert_eq!(magic("/dev/shm/x"), TMPFS_MAGIC);
    let (r, _w) = FileDescription::new_pipe(0);
    let b = fx.vfs.fstatfs(&r);
    assert_eq!(
        u64::from_le_bytes(b[0..8].try_into().unwrap()),
        PIPEFS_MAGIC
    );
}
