//! Checkpoint/restore round trips of VFS state.

use super::*;

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
    assert_eq!(
        back.vfs.overlay().changed_lower_files(),
        vec![b"data/a.txt".to_vec()]
    );

    let f = back
        .vfs
        .open(&back.ctx, At::Cwd, b"/data/a.txt", RO, 0, ROOT, P)
        .unwrap();
    assert_eq!(f.read(&mut [0u8; 8]).unwrap_err().code(), libc::EIO);
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
