//! File descriptions: access modes, offsets, flags, mapped files, locks, FIFOs.

use super::*;

#[test]
fn access_mode_is_enforced() {
    let fx = fixture();
    let f = fx.open("/data/a.txt", RO).unwrap();
    assert_eq!(f.write(b"x").unwrap_err().code(), libc::EBADF);
    let w = fx.open("/data/a.txt", libc::O_WRONLY as u32).unwrap();
    assert_eq!(w.read(&mut [0u8; 1]).unwrap_err().code(), libc::EBADF);
    assert_eq!(fx.open("/data", RW).unwrap_err(), Errno::EISDIR);
    assert_eq!(
        fx.open("/data", RO | libc::O_TRUNC as u32).unwrap_err(),
        Errno::EISDIR
    );
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
