//! End-to-end tests of the VFS over a temporary host directory as the
//! lower layer.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::*;
use crate::errno::Errno;

/// A fake kernel: one process, pid 7, with cwd `/` and an `exe`.
struct OneProcess;

impl ProcSource for OneProcess {
    fn current_pid(&self) -> i32 {
        7
    }
    fn pids(&self) -> Vec<i32> {
        vec![7]
    }
    fn exe_path(&self, _: i32) -> Option<Vec<u8>> {
        Some(b"/bin/prog".to_vec())
    }
    fn cwd_path(&self, _: i32) -> Option<Vec<u8>> {
        Some(b"/".to_vec())
    }
    fn fd_targets(&self, _: i32) -> Option<Vec<(i32, Vec<u8>)>> {
        Some(vec![(0, b"/dev/null".to_vec())])
    }
    fn maps_text(&self, _: i32) -> Option<Vec<u8>> {
        Some(b"00400000-00401000 r-xp 00000000 00:00 0 /bin/prog\n".to_vec())
    }
    fn status_text(&self, _: i32) -> Option<Vec<u8>> {
        Some(b"Name:\tprog\nPid:\t7\n".to_vec())
    }
    fn stat_text(&self, _: i32) -> Option<Vec<u8>> {
        Some(b"7 (prog) R 0\n".to_vec())
    }
    fn cmdline(&self, _: i32) -> Option<Vec<u8>> {
        Some(b"prog\0-x\0".to_vec())
    }
}

const P: &OneProcess = &OneProcess;
const RO: u32 = libc::O_RDONLY as u32;
const RW: u32 = libc::O_RDWR as u32;
const ROOT: Creds = Creds { uid: 0, gid: 0 };

struct Fixture {
    /// Holds the lower layer; `outside` is a sibling the sandbox must
    /// never reach.
    _tmp: tempfile::TempDir,
    lower: std::path::PathBuf,
    outside: std::path::PathBuf,
    vfs: Vfs,
    ctx: FsContext,
}

/// Lower layer:
///   etc/passwd       "sandbox passwd"
///   data/a.txt       "lower a"
///   data/b.txt       "lower b"
///   data/sub/c.txt   "lower c"
///   bin/prog         "#!prog" (0755)
/// and, beside the root, `outside/secret` = "HOST SECRET".
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    for d in ["etc", "data/sub", "bin"] {
        std::fs::create_dir_all(lower.join(d)).unwrap();
    }
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(lower.join("etc/passwd"), b"sandbox passwd").unwrap();
    std::fs::write(lower.join("data/a.txt"), b"lower a").unwrap();
    std::fs::write(lower.join("data/b.txt"), b"lower b").unwrap();
    std::fs::write(lower.join("data/sub/c.txt"), b"lower c").unwrap();
    std::fs::write(lower.join("bin/prog"), b"#!prog").unwrap();
    std::fs::set_permissions(
        lower.join("bin/prog"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(outside.join("secret"), b"HOST SECRET").unwrap();
    let vfs = Vfs::new(&lower).unwrap();
    let ctx = vfs.new_context();
    Fixture {
        _tmp: tmp,
        lower,
        outside,
        vfs,
        ctx,
    }
}

impl Fixture {
    fn open(&self, path: &str, flags: u32) -> Result<std::sync::Arc<FileDescription>, Errno> {
        self.vfs
            .open(&self.ctx, At::Cwd, path.as_bytes(), flags, 0o644, ROOT, P)
    }

    fn read_all(&self, path: &str) -> Result<Vec<u8>, Errno> {
        let f = self.open(path, RO)?;
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    fn write_file(&self, path: &str, data: &[u8], flags: u32) {
        let f = self.open(path, libc::O_WRONLY as u32 | flags).unwrap();
        assert_eq!(f.write(data).unwrap(), data.len());
    }

    fn symlink(&self, target: &str, path: &str) {
        self.vfs
            .symlink(
                &self.ctx,
                target.as_bytes(),
                At::Cwd,
                path.as_bytes(),
                ROOT,
                P,
            )
            .unwrap();
    }

    /// All names of a directory listed with a `buf`-byte getdents buffer.
    fn names(&self, path: &str, buf: usize) -> Vec<String> {
        let f = self.open(path, RO | libc::O_DIRECTORY as u32).unwrap();
        let mut names = Vec::new();
        loop {
            let bytes = f.getdents64(buf, P).unwrap();
            if bytes.is_empty() {
                break;
            }
            let mut i = 0;
            while i < bytes.len() {
                let reclen = u16::from_le_bytes([bytes[i + 16], bytes[i + 17]]) as usize;
                let name = &bytes[i + 19..i + reclen];
                let end = name.iter().position(|&c| c == 0).unwrap();
                names.push(String::from_utf8(name[..end].to_vec()).unwrap());
                i += reclen;
            }
        }
        names
    }
}

fn host_snapshot(p: &Path) -> (Vec<u8>, i64, i64) {
    let md = std::fs::metadata(p).unwrap();
    (std::fs::read(p).unwrap(), md.mtime(), md.mtime_nsec())
}

// ---- escapes -------------------------------------------------------------

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

// ---- symlinks and resolution rules ---------------------------------------

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

// ---- the overlay never writes the host ------------------------------------

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

// ---- copy-up --------------------------------------------------------------

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

// ---- unlink, whiteouts, rmdir, rename --------------------------------------

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

// ---- directory listings ---------------------------------------------------

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

// ---- file descriptions ----------------------------------------------------

#[test]
fn access_mode_is_enforced() {
    let fx = fixture();
    let f = fx.open("/data/a.txt", RO).unwrap();
    assert_eq!(f.write(b"x").unwrap_err().code(), libc::EBADF);
    let w = fx.open("/data/a.txt", libc::O_WRONLY as u32).unwrap();
    assert_eq!(w.read(&mut [0u8; 1]).unwrap_err().code(), libc::EBADF);
    assert_eq!(fx.open("/data", RW).unwrap_err(), Errno::EISDIR);
    let p = fx.open("/data/a.txt", libc::O_PATH as u32).unwrap();
    assert_eq!(p.read(&mut [0u8; 1]).unwrap_err().code(), libc::EBADF);
}

#[test]
fn lseek_whences() {
    let fx = fixture();
    let f = fx.open("/data/a.txt", RO).unwrap();
    assert_eq!(f.lseek(-2, libc::SEEK_END).unwrap(), 5);
    let mut b = [0u8; 2];
    f.read(&mut b).unwrap();
    assert_eq!(&b, b" a");
    assert_eq!(f.lseek(-1, libc::SEEK_CUR).unwrap(), 6);
    assert_eq!(
        f.lseek(-10, libc::SEEK_CUR).unwrap_err().code(),
        libc::EINVAL
    );
    assert_eq!(f.lseek(3, libc::SEEK_HOLE).unwrap(), 7);
    assert_eq!(f.lseek(7, libc::SEEK_DATA).unwrap_err(), Errno::ENXIO);
}

#[test]
fn status_flags_setfl_changes_only_settable_bits() {
    let fx = fixture();
    let f = fx.open("/data/a.txt", RO).unwrap();
    f.set_status_flags((libc::O_NONBLOCK | libc::O_RDWR | libc::O_APPEND) as u32);
    let fl = f.status_flags();
    assert_eq!(fl & libc::O_ACCMODE as u32, libc::O_RDONLY as u32);
    assert_ne!(fl & libc::O_NONBLOCK as u32, 0);
    assert_ne!(fl & libc::O_APPEND as u32, 0);
}

#[test]
fn mapped_file_of_an_overlay_file_follows_copy_up() {
    let fx = fixture();
    let (m, st, path) = fx.vfs.open_exec(&fx.ctx, b"/bin/prog", P).unwrap();
    assert_eq!(path, b"/bin/prog");
    assert_eq!(m.path_name(), "/bin/prog");
    assert_eq!(st.size, 6);
    let mut buf = [0u8; 6];
    assert_eq!(m.read_at(0, &mut buf).unwrap(), 6);
    assert_eq!(&buf, b"#!prog");
    assert_eq!(
        fx.vfs
            .open_exec(&fx.ctx, b"/data/a.txt", P)
            .unwrap_err()
            .code(),
        libc::EACCES
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

// ---- checkpoint / restore ---------------------------------------------------

/// What a kernel would save of the VFS: the namespace, a process's fs
/// context and its fd table.
#[derive(checkpoints::Stateify)]
struct Snapshot {
    vfs: std::sync::Arc<Vfs>,
    ctx: FsContext,
    fds: FdTable,
}

fn round_trip(s: &Snapshot) -> Snapshot {
    let saved = checkpoints::state::save(s).unwrap();
    checkpoints::state::load::<Snapshot>(&saved).unwrap()
}

#[test]
fn checkpoint_round_trip_keeps_overlay_state_cwd_and_offsets() {
    let mut fx = fixture();
    fx.write_file("/data/a.txt", b"LOW", 0);
    fx.write_file("/data/up.txt", b"upper data", libc::O_CREAT as u32);
    fx.vfs.unlink(&fx.ctx, At::Cwd, b"/data/b.txt", P).unwrap();
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/new", 0o755, ROOT, P)
        .unwrap();
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/new/deep", 0o700, ROOT, P)
        .unwrap();
    let mut ctx = fx.ctx.clone();
    fx.vfs.chdir(&mut ctx, b"/new/deep", P).unwrap();
    ctx.umask = 0o077;
    let fds = FdTable::new();
    let f = fx.open("/data/up.txt", RO).unwrap();
    f.lseek(6, libc::SEEK_SET).unwrap();
    fds.install(f, true, 0).unwrap();
    let vfs = std::sync::Arc::new(std::mem::replace(&mut fx.vfs, Vfs::new(&fx.lower).unwrap()));

    let back = round_trip(&Snapshot { vfs, ctx, fds });

    let f = back.fds.get(0).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(f.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"data");
    assert!(back.fds.cloexec(0).unwrap());
    assert_eq!(back.ctx.umask, 0o077);
    assert_eq!(back.vfs.getcwd(&back.ctx, P).unwrap(), b"/new/deep");
    let read = |p: &str| {
        let f = back
            .vfs
            .open(&back.ctx, At::Cwd, p.as_bytes(), RO, 0, ROOT, P)?;
        let mut v = vec![0u8; 64];
        let n = f.read(&mut v)?;
        v.truncate(n);
        Ok::<_, Errno>(v)
    };
    assert_eq!(read("../../data/a.txt").unwrap(), b"LOWer a");
    assert_eq!(read("/data/up.txt").unwrap(), b"upper data");
    assert_eq!(read("/data/b.txt").unwrap_err(), Errno::ENOENT);
    assert_eq!(read("/etc/passwd").unwrap(), b"sandbox passwd");
    assert_eq!(
        std::fs::read(fx.lower.join("data/a.txt")).unwrap(),
        b"lower a"
    );
}

#[test]
fn pipe_contents_and_ends_survive_checkpoint() {
    let fx = fixture();
    let fds = FdTable::new();
    let (r, w) = FileDescription::new_pipe(0);
    let (rfd, wfd) = fds.install_pair(r, w, false).unwrap();
    fds.dup(wfd).unwrap();
    fds.get(wfd).unwrap().write(b"in flight").unwrap();
    let snap = Snapshot {
        vfs: std::sync::Arc::new(fx.vfs),
        ctx: fx.ctx,
        fds,
    };

    let back = round_trip(&snap);
    drop(snap);

    let r = back.fds.get(rfd).unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(r.read(&mut buf).unwrap(), 9);
    assert_eq!(&buf[..9], b"in flight");
    // Two fds share the one write description: EOF only after both close.
    drop(back.fds.close(wfd).unwrap());
    assert_eq!(r.read(&mut buf).unwrap_err().code(), libc::EAGAIN);
    drop(back.fds.close(wfd + 1).unwrap());
    assert_eq!(r.read(&mut buf).unwrap(), 0);
}

#[test]
fn lower_file_changed_after_checkpoint_is_refused() {
    let fx = fixture();
    fx.vfs.stat(&fx.ctx, At::Cwd, b"/data/a.txt", 0, P).unwrap();
    let snap = Snapshot {
        vfs: std::sync::Arc::new(fx.vfs),
        ctx: fx.ctx,
        fds: FdTable::new(),
    };
    let saved = checkpoints::state::save(&snap).unwrap();
    std::fs::write(fx.lower.join("data/a.txt"), b"changed on the host").unwrap();

    let back = checkpoints::state::load::<Snapshot>(&saved).unwrap();

    let f = back
        .vfs
        .open(&back.ctx, At::Cwd, b"/data/a.txt", RO, 0, ROOT, P)
        .unwrap();
    assert_eq!(f.read(&mut [0u8; 8]).unwrap_err().code(), libc::EIO);
}

/// A fake kernel whose process 7 has the fds of `self.0`.
struct WithFds(FdTable);

impl ProcSource for WithFds {
    fn current_pid(&self) -> i32 {
        7
    }
    fn pids(&self) -> Vec<i32> {
        vec![7]
    }
    fn exe_path(&self, _: i32) -> Option<Vec<u8>> {
        None
    }
    fn cwd_path(&self, _: i32) -> Option<Vec<u8>> {
        None
    }
    fn fd_targets(&self, _: i32) -> Option<Vec<(i32, Vec<u8>)>> {
        Some(self.0.proc_fd_targets())
    }
    fn maps_text(&self, _: i32) -> Option<Vec<u8>> {
        None
    }
    fn status_text(&self, _: i32) -> Option<Vec<u8>> {
        None
    }
    fn stat_text(&self, _: i32) -> Option<Vec<u8>> {
        None
    }
    fn cmdline(&self, _: i32) -> Option<Vec<u8>> {
        None
    }
    fn fd_file(&self, _: i32, fd: i32) -> Option<std::sync::Arc<FileDescription>> {
        self.0.get(fd).ok()
    }
}

#[test]
fn dev_stdin_of_a_pipe_reopens_the_pipe_itself() {
    let fx = fixture();
    let src = WithFds(FdTable::new());
    let (r, w) = FileDescription::new_pipe(0);
    let (rfd, _) = src.0.install_pair(r, w.clone(), false).unwrap();
    assert_eq!(rfd, 0);
    w.write(b"piped").unwrap();
    let target = fx
        .vfs
        .readlink(&fx.ctx, At::Cwd, b"/proc/self/fd/0", &src)
        .unwrap();
    assert!(target.starts_with(b"pipe:["));

    let f = fx
        .vfs
        .open(&fx.ctx, At::Cwd, b"/dev/stdin", RO, 0, ROOT, &src)
        .unwrap();

    let mut buf = [0u8; 8];
    assert_eq!(f.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"piped");
    assert_eq!(f.fstat(&src).unwrap().mode & libc::S_IFMT, libc::S_IFIFO);
}

#[test]
fn proc_fd_link_of_a_regular_file_reaches_the_file() {
    let fx = fixture();
    let src = WithFds(FdTable::new());
    let f = fx.open("/data/a.txt", RO).unwrap();
    src.0.install(f, false, 0).unwrap();
    assert_eq!(
        fx.vfs
            .readlink(&fx.ctx, At::Cwd, b"/dev/fd/0", &src)
            .unwrap(),
        b"/data/a.txt"
    );
    // Rename the file: the magic link still reaches it (its text would not).
    fx.vfs
        .rename(
            &fx.ctx,
            At::Cwd,
            b"/data/a.txt",
            At::Cwd,
            b"/data/z.txt",
            0,
            &src,
        )
        .unwrap();
    let again = fx
        .vfs
        .open(&fx.ctx, At::Cwd, b"/proc/7/fd/0", RO, 0, ROOT, &src)
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(again.read(&mut buf).unwrap(), 7);
    assert_eq!(&buf[..7], b"lower a");
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
fn epoll_interest_and_eventfd_counter_survive_checkpoint() {
    let fx = fixture();
    let fds = FdTable::new();
    let (r, w) = FileDescription::new_pipe(0);
    let (rfd, wfd) = fds.install_pair(r.clone(), w, false).unwrap();
    let ep = FileDescription::new_epoll();
    ep.epoll()
        .unwrap()
        .ctl(libc::EPOLL_CTL_ADD, rfd, &r, libc::EPOLLIN as u32, 77)
        .unwrap();
    drop(r);
    let epfd = fds.install(ep, true, 0).unwrap();
    let efd = fds
        .install(FileDescription::new_eventfd(5, 0), false, 0)
        .unwrap();
    let snap = Snapshot {
        vfs: std::sync::Arc::new(fx.vfs),
        ctx: fx.ctx,
        fds,
    };

    let back = round_trip(&snap);
    drop(snap);

    let ep = back.fds.get(epfd).unwrap();
    let ep = ep.epoll().unwrap();
    assert!(ep.collect(8).is_empty());
    back.fds.get(wfd).unwrap().write(b"x").unwrap();
    assert_eq!(
        ep.collect(8),
        vec![EpollEvent {
            events: libc::EPOLLIN as u32,
            data: 77
        }]
    );
    let mut b = [0u8; 8];
    back.fds.get(efd).unwrap().read(&mut b).unwrap();
    assert_eq!(u64::from_le_bytes(b), 5);
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
fn dev_shm_contents_and_parents_survive_checkpoint() {
    let fx = fixture();
    fx.vfs
        .mkdir(&fx.ctx, At::Cwd, b"/dev/shm/d", 0o755, ROOT, P)
        .unwrap();
    fx.write_file("/dev/shm/d/f", b"shm data", libc::O_CREAT as u32);
    let mut ctx = fx.ctx.clone();
    fx.vfs.chdir(&mut ctx, b"/dev/shm/d", P).unwrap();
    let snap = Snapshot {
        vfs: std::sync::Arc::new(fx.vfs),
        ctx,
        fds: FdTable::new(),
    };

    let back = round_trip(&snap);

    assert_eq!(back.vfs.getcwd(&back.ctx, P).unwrap(), b"/dev/shm/d");
    let f = back
        .vfs
        .open(&back.ctx, At::Cwd, b"f", RO, 0, ROOT, P)
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(f.read(&mut buf).unwrap(), 8);
    assert_eq!(&buf[..8], b"shm data");
}

#[test]
fn unix_socket_bound_to_a_path_is_a_socket_node_reachable_by_connect() {
    use crate::vfs::unix::{SockType, UnixAddr};
    let fx = fixture();
    let server = FileDescription::new_unix_socket(SockType::Stream, 0);
    let addr = UnixAddr::Path(b"/data/sock".to_vec());
    fx.vfs
        .unix_bind(&fx.ctx, server.socket().unwrap(), addr.clone(), ROOT, P)
        .unwrap();
    server.socket().unwrap().listen(4).unwrap();
    let st = fx
        .vfs
        .stat(
            &fx.ctx,
            At::Cwd,
            b"/data/sock",
            libc::AT_SYMLINK_NOFOLLOW as u32,
            P,
        )
        .unwrap();
    assert_eq!(st.mode & libc::S_IFMT, libc::S_IFSOCK);
    assert_eq!(fx.open("/data/sock", RW).unwrap_err().code(), libc::ENXIO);
    let again = FileDescription::new_unix_socket(SockType::Stream, 0);
    assert_eq!(
        fx.vfs
            .unix_bind(&fx.ctx, again.socket().unwrap(), addr.clone(), ROOT, P)
            .unwrap_err(),
        Errno::EADDRINUSE
    );
    assert!(!fx.lower.join("data/sock").exists());

    let client = FileDescription::new_unix_socket(SockType::Stream, 0);
    fx.vfs
        .unix_connect(&fx.ctx, client.socket().unwrap(), &addr, P)
        .unwrap();
    let conn = server.socket().unwrap().accept().unwrap();
    conn.write(b"welcome").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(client.read(&mut buf).unwrap(), 7);
    let relative = UnixAddr::Path(b"data/nosock".to_vec());
    assert_eq!(
        fx.vfs
            .unix_connect(&fx.ctx, again.socket().unwrap(), &relative, P)
            .unwrap_err()
            .code(),
        libc::ENOENT
    );
    let not_sock = UnixAddr::Path(b"/data/a.txt".to_vec());
    assert_eq!(
        fx.vfs
            .unix_connect(&fx.ctx, again.socket().unwrap(), &not_sock, P)
            .unwrap_err()
            .code(),
        libc::ECONNREFUSED
    );
}

#[test]
fn connected_sockets_and_a_listener_survive_checkpoint() {
    use crate::vfs::unix::{SockType, UnixAddr};
    let fx = fixture();
    let fds = FdTable::new();
    let (a, b) = FileDescription::new_unix_pair(SockType::Stream, 0);
    a.write(b"queued").unwrap();
    let (afd, bfd) = fds.install_pair(a, b, false).unwrap();
    let server = FileDescription::new_unix_socket(SockType::Stream, 0);
    let addr = UnixAddr::Path(b"/srv.sock".to_vec());
    fx.vfs
        .unix_bind(&fx.ctx, server.socket().unwrap(), addr.clone(), ROOT, P)
        .unwrap();
    server.socket().unwrap().listen(4).unwrap();
    fds.install(server, false, 0).unwrap();
    let snap = Snapshot {
        vfs: std::sync::Arc::new(fx.vfs),
        ctx: fx.ctx,
        fds,
    };

    let back = round_trip(&snap);
    drop(snap);

    let b = back.fds.get(bfd).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(b.read(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"queued");
    drop(back.fds.close(afd).unwrap());
    assert_eq!(b.read(&mut buf).unwrap(), 0);
    let client = FileDescription::new_unix_socket(SockType::Stream, 0);
    back.vfs
        .unix_connect(&back.ctx, client.socket().unwrap(), &addr, P)
        .unwrap();
}

// ---- advisory locks ---------------------------------------------------------

#[test]
fn flock_conflicts_between_descriptions_and_dies_with_the_last_reference() {
    let fx = fixture();
    let a = fx.open("/data/a.txt", RW).unwrap();
    let b = fx.open("/data/a.txt", RO).unwrap();
    a.flock(libc::LOCK_EX).unwrap();
    assert_eq!(
        b.flock(libc::LOCK_SH | libc::LOCK_NB).unwrap_err().code(),
        libc::EAGAIN
    );
    let dup = a.clone();
    drop(a);
    // A dup (same description) still holds the lock.
    assert_eq!(b.flock(libc::LOCK_SH).unwrap_err().code(), libc::EAGAIN);
    let w = crate::waiter::Waiter::new();
    let _r =
        crate::waiter::Registration::new(b.lock_queue().unwrap(), &w, crate::waiter::EVENT_ALL);
    drop(dup);
    assert_eq!(
        w.wait(Some(std::time::Instant::now())),
        crate::waiter::WaitOutcome::Woken
    );
    b.flock(libc::LOCK_SH).unwrap();
}

#[test]
fn posix_record_locks_report_the_conflicting_owner() {
    use crate::vfs::lock::{FlockRecord, LockOwner};
    let fx = fixture();
    let f1 = fx.open("/data/a.txt", RW).unwrap();
    let f2 = fx.open("/data/a.txt", RW).unwrap();
    let rec = |t: i32, start: i64, len: i64| FlockRecord {
        l_type: t as i16,
        l_whence: libc::SEEK_SET as i16,
        l_start: start,
        l_len: len,
        l_pid: 0,
    };
    f1.setlk(LockOwner::Process(100), &rec(libc::F_WRLCK, 0, 10))
        .unwrap();
    let err = f2
        .setlk(LockOwner::Process(200), &rec(libc::F_RDLCK, 5, 1))
        .unwrap_err();
    assert_eq!(err.code(), libc::EAGAIN);
    let got = f2
        .getlk(LockOwner::Process(200), &rec(libc::F_RDLCK, 0, 0))
        .unwrap();
    assert_eq!(
        (got.l_type, got.l_start, got.l_len, got.l_pid),
        (libc::F_WRLCK as i16, 0, 10, 100)
    );
    // The same process through another description is the same owner.
    f2.setlk(LockOwner::Process(100), &rec(libc::F_RDLCK, 5, 1))
        .unwrap();
    // Closing any fd of the file releases the process's locks.
    f2.release_posix_locks(100);
    let free = f2
        .getlk(LockOwner::Process(200), &rec(libc::F_WRLCK, 0, 0))
        .unwrap();
    assert_eq!(free.l_type, libc::F_UNLCK as i16);
    let ro = fx.open("/data/a.txt", RO).unwrap();
    assert_eq!(
        ro.setlk(LockOwner::Process(1), &rec(libc::F_WRLCK, 0, 1))
            .unwrap_err(),
        Errno::EBADF
    );
}

// ---- named pipes ------------------------------------------------------------

#[test]
fn fifo_open_waits_for_a_partner_and_carries_data() {
    let fx = fixture();
    fx.vfs
        .mknod(
            &fx.ctx,
            At::Cwd,
            b"/data/fifo",
            libc::S_IFIFO | 0o600,
            ROOT,
            P,
        )
        .unwrap();
    let wo_nb = (libc::O_WRONLY | libc::O_NONBLOCK) as u32;
    assert_eq!(
        fx.open("/data/fifo", wo_nb).unwrap_err().code(),
        libc::ENXIO
    );
    let r = fx.open("/data/fifo", RO).unwrap();
    assert!(r.waiting_for_partner());
    let w = fx.open("/data/fifo", libc::O_WRONLY as u32).unwrap();
    assert!(!r.waiting_for_partner());
    assert!(!w.waiting_for_partner());
    w.write(b"through the fifo").unwrap();
    let mut buf = [0u8; 32];
    assert_eq!(r.read(&mut buf).unwrap(), 16);
    drop(w);
    assert_eq!(r.read(&mut buf).unwrap(), 0);
    let st = r.fstat(P).unwrap();
    assert_eq!(st.mode & libc::S_IFMT, libc::S_IFIFO);
    assert_eq!(
        st.ino,
        fx.vfs
            .stat(&fx.ctx, At::Cwd, b"/data/fifo", 0, P)
            .unwrap()
            .ino
    );
    assert!(!fx.lower.join("data/fifo").exists());
}

#[test]
fn nonblocking_fifo_reader_without_writer_reads_eof_and_rdwr_never_waits() {
    let fx = fixture();
    fx.vfs
        .mknod(&fx.ctx, At::Cwd, b"/f", libc::S_IFIFO | 0o600, ROOT, P)
        .unwrap();
    let r = fx
        .open("/f", (libc::O_RDONLY | libc::O_NONBLOCK) as u32)
        .unwrap();
    assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
    let rw = fx.open("/f", RW).unwrap();
    assert!(!rw.waiting_for_partner());
    rw.write(b"self").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(rw.read(&mut buf).unwrap(), 4);
    assert_eq!(
        fx.vfs
            .mknod(&fx.ctx, At::Cwd, b"/dev0", libc::S_IFCHR | 0o600, ROOT, P)
            .unwrap_err(),
        Errno::EPERM.because("device nodes are not supported")
    );
}

// ---- randomized escape attempts ---------------------------------------------

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
