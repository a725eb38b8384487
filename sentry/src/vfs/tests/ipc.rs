//! `/proc/<pid>/fd` magic links and Unix sockets bound in the overlay.

use super::*;

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
