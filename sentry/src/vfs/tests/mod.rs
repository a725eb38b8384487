//! End-to-end tests of the VFS over a temporary host directory as the
//! lower layer. The shared fixture is here; tests by topic below.

mod checkpoint;
mod escape;
mod files;
mod ipc;
mod listing;
mod overlay;
mod resolution;

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
