//! File syscalls: adapters from the guest ABI onto the VFS (Linux
//! `fs/open.c`, `fs/read_write.c`, `fs/namei.c`, `fs/stat.c`,
//! `fs/fcntl.c`, `fs/ioctl.c`, `fs/pipe.c`).
//!
//! Blocking is done here, not in the VFS: a read or write that would block
//! on a blocking description sleeps on the file's wait queue through
//! [`TaskRunner::block_on`] (interruptible: `ERESTARTSYS`).

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::kernel::procfs::KernelProc;
use crate::kernel::thread_group::lock;
use crate::kernel::TaskRunner;
use crate::vfs::{At, Creds, FileDescription, FsContext, IoctlOutcome, ProcSource, UtimeSpec, Vfs};
use crate::waiter::{EVENT_IN, EVENT_OUT};

use super::arg_i32;

pub const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
const AT_REMOVEDIR: u32 = 0x200;
const AT_SYMLINK_FOLLOW: u32 = 0x400;
const AT_EACCESS: u32 = 0x200;
const AT_EMPTY_PATH: u32 = 0x1000;
/// Largest single read/write the sentry buffers (Linux caps at
/// `MAX_RW_COUNT` ≈ 2 GiB; a shorter transfer is a legal short count).
const MAX_RW: usize = 8 << 20;

fn file(t: &TaskRunner, fd: u64) -> SysResult<Arc<FileDescription>> {
    t.task.tg.fds().ok_or(Errno::EBADF)?.get(arg_i32(fd))
}

fn fs_ctx(t: &TaskRunner) -> FsContext {
    lock(&t.task.tg.fs).clone()
}

fn creds(t: &TaskRunner) -> Creds {
    let l = t.task.local();
    Creds {
        uid: l.creds.fsuid,
        gid: l.creds.fsgid,
    }
}

/// The dirfd of an `*at` call: `None` for AT_FDCWD or absolute paths.
fn dirfile(t: &TaskRunner, dirfd: u64, path: &[u8]) -> SysResult<Option<Arc<FileDescription>>> {
    if arg_i32(dirfd) == AT_FDCWD || path.first() == Some(&b'/') {
        return Ok(None);
    }
    Ok(Some(file(t, dirfd)?))
}

fn at(d: &Option<Arc<FileDescription>>) -> At<'_> {
    match d {
        Some(f) => At::Fd(f),
        None => At::Cwd,
    }
}

/// Runs `f` with the VFS, the fs context, the dirfd and `/proc` as seen by
/// the caller.
fn with_vfs<R>(
    t: &TaskRunner,
    dirfd: u64,
    path: &[u8],
    f: impl FnOnce(&crate::vfs::Vfs, &FsContext, At<'_>, &KernelProc<'_>) -> SysResult<R>,
) -> SysResult<R> {
    let d = dirfile(t, dirfd, path)?;
    let ctx = fs_ctx(t);
    let src = KernelProc {
        kernel: &t.kernel,
        current: t.pid(),
    };
    f(&t.kernel.vfs, &ctx, at(&d), &src)
}

fn nonempty(p: Vec<u8>) -> SysResult<Vec<u8>> {
    if p.is_empty() {
        Err(Errno::ENOENT.because("empty path"))
    } else {
        Ok(p)
    }
}

// ---- read / write ----

fn do_read(
    t: &mut TaskRunner,
    f: &Arc<FileDescription>,
    count: usize,
    off: Option<i64>,
) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; count.min(MAX_RW)];
    let nonblock = f.is_nonblocking();
    let op = |_: &mut TaskRunner| match off {
        Some(o) => f.pread(&mut buf, o),
        None => f.read(&mut buf),
    };
    let n = match f.wait_queue() {
        Some(q) if !nonblock => {
            let mut op = op;
            t.block_on(q, EVENT_IN, None, &mut op)?
        }
        _ => {
            let mut op = op;
            op(t)?
        }
    };
    buf.truncate(n);
    Ok(buf)
}

/// Writes all of `data` (blocking descriptions keep going after short
/// writes, like Linux `pipe_write`); returns the count written, or the
/// error if nothing was.
fn do_write(
    t: &mut TaskRunner,
    f: &Arc<FileDescription>,
    data: &[u8],
    off: Option<i64>,
) -> SysResult<usize> {
    let nonblock = f.is_nonblocking();
    let mut done = 0usize;
    while done < data.len() || data.is_empty() {
        let chunk = &data[done..];
        let pos = off.map(|o| o + done as i64);
        let mut op = |_: &mut TaskRunner| match pos {
            Some(p) => f.pwrite(chunk, p),
            None => f.write(chunk),
        };
        let r = match f.wait_queue() {
            Some(q) if !nonblock => t.block_on(q, EVENT_OUT, None, &mut op),
            _ => op(t),
        };
        match r {
            Ok(n) => {
                done += n;
                if data.is_empty() || n == 0 {
                    break;
                }
            }
            Err(e) if done > 0 && e.code() != libc::EFAULT => {
                // Partial progress: report it; a pending signal is
                // delivered on return (Linux returns the short count).
                let _ = e;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The count a read into guest `[addr, addr+count)` may take from the
/// file: the writable prefix, so nothing is consumed that cannot be copied
/// out (Linux `pipe_read` leaves the rest in the pipe and returns the
/// partial count, or EFAULT if nothing was copied). EFAULT before reading
/// if not even one byte is writable.
fn read_count(t: &TaskRunner, addr: u64, count: usize) -> SysResult<usize> {
    let count = count.min(MAX_RW);
    let n = t.writable_prefix(addr, count);
    if n == 0 && count > 0 {
        return Err(Errno::EFAULT.because("read buffer not writable"));
    }
    Ok(n)
}

pub fn read(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let count = read_count(t, a[1], a[2] as usize)?;
    let data = do_read(t, &f, count, None)?;
    let n = t.copy_out_partial(a[1], &data)?;
    Ok(n as u64)
}

pub fn write(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let mut buf = vec![0u8; (a[2] as usize).min(MAX_RW)];
    let n = t.copy_in_partial(a[1], &mut buf)?;
    buf.truncate(n);
    Ok(do_write(t, &f, &buf, None)? as u64)
}

pub fn pread64(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let count = read_count(t, a[1], a[2] as usize)?;
    let data = do_read(t, &f, count, Some(a[3] as i64))?;
    Ok(t.copy_out_partial(a[1], &data)? as u64)
}

pub fn pwrite64(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut buf = vec![0u8; (a[2] as usize).min(MAX_RW)];
    let n = t.copy_in_partial(a[1], &mut buf)?;
    buf.truncate(n);
    Ok(do_write(t, &f, &buf, Some(a[3] as i64))? as u64)
}

pub fn readv(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let iovs = t.read_iovecs(a[1], a[2])?;
    let total: u64 = iovs.iter().map(|v| v.len).sum();
    let count = t.writable_prefix_iovecs(&iovs);
    if count == 0 && total > 0 {
        return Err(Errno::EFAULT.because("readv buffers not writable"));
    }
    let data = do_read(t, &f, count, None)?;
    Ok(t.copy_out_iovecs(&iovs, &data)? as u64)
}

pub fn writev(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let iovs = t.read_iovecs(a[1], a[2])?;
    let data = t.copy_in_iovecs(&iovs, MAX_RW)?;
    Ok(do_write(t, &f, &data, None)? as u64)
}

/// `sendfile(out, in, offset, count)`: through a sentry buffer.
pub fn sendfile(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let out = file(t, a[0])?;
    let inp = file(t, a[1])?;
    let off = if a[2] != 0 {
        Some(t.read_u64(a[2])? as i64)
    } else {
        None
    };
    let data = do_read(t, &inp, (a[3] as usize).min(1 << 20), off)?;
    let n = do_write(t, &out, &data, None)?;
    if let Some(o) = off {
        t.write_u64(a[2], (o + n as i64) as u64)?;
    } else if n < data.len() {
        // Give back what was read but not written.
        let _ = inp.lseek(-((data.len() - n) as i64), libc::SEEK_CUR);
    }
    Ok(n as u64)
}

pub fn lseek(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?.lseek(a[1] as i64, arg_i32(a[2]))
}

// ---- open / close ----

fn do_openat(
    t: &mut TaskRunner,
    dirfd: u64,
    path: Vec<u8>,
    flags: u32,
    mode: u32,
) -> SysResult<u64> {
    let path = nonempty(path)?;
    let c = creds(t);
    let f = with_vfs(t, dirfd, &path, |vfs, ctx, at, src| {
        vfs.open(ctx, at, &path, flags, mode, c, src)
    })?;
    // A FIFO end opened blocking waits for the other side (Linux
    // `fifo_open`); interrupted, the description is dropped and the open
    // restarts from scratch.
    if f.waiting_for_partner() {
        if let Some(q) = f.wait_queue() {
            let ff = f.clone();
            t.block_on(q, EVENT_IN | EVENT_OUT, None, |_| {
                if ff.waiting_for_partner() {
                    Err(Errno::EAGAIN)
                } else {
                    Ok(())
                }
            })?;
        }
    }
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    Ok(fds.install(f, flags & libc::O_CLOEXEC as u32 != 0, 0)? as u64)
}

pub fn open(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    do_openat(t, AT_FDCWD as u64, p, a[1] as u32, a[2] as u32)
}

pub fn openat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    do_openat(t, a[0], p, a[2] as u32, a[3] as u32)
}

pub fn creat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32;
    do_openat(t, AT_FDCWD as u64, p, flags, a[1] as u32)
}

pub fn close(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let f = fds.close(arg_i32(a[0]))?;
    // Linux `filp_close` → `locks_remove_posix`: closing any fd of a file
    // drops the process's record locks on it.
    f.release_posix_locks(t.pid());
    drop(f);
    Ok(0)
}

// ---- stat ----

fn stat_at(
    t: &mut TaskRunner,
    dirfd: u64,
    path: Vec<u8>,
    flags: u32,
) -> SysResult<crate::vfs::Stat> {
    if path.is_empty() && flags & AT_EMPTY_PATH != 0 && arg_i32(dirfd) != AT_FDCWD {
        let f = file(t, dirfd)?;
        let src = KernelProc {
            kernel: &t.kernel,
            current: t.pid(),
        };
        return f.fstat(&src);
    }
    if path.is_empty() && flags & AT_EMPTY_PATH == 0 {
        return Err(Errno::ENOENT);
    }
    with_vfs(t, dirfd, &path, |vfs, ctx, at, src| {
        vfs.stat(ctx, at, &path, flags, src)
    })
}

pub fn stat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    let st = stat_at(t, AT_FDCWD as u64, p, 0)?;
    t.copy_out(a[1], &st.to_bytes())?;
    Ok(0)
}

pub fn lstat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    let st = stat_at(t, AT_FDCWD as u64, p, AT_SYMLINK_NOFOLLOW)?;
    t.copy_out(a[1], &st.to_bytes())?;
    Ok(0)
}

pub fn fstat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let st = {
        let src = KernelProc {
            kernel: &t.kernel,
            current: t.pid(),
        };
        f.fstat(&src)?
    };
    t.copy_out(a[1], &st.to_bytes())?;
    Ok(0)
}

pub fn newfstatat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    let flags = a[3] as u32;
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | 0x800) != 0 {
        return Err(Errno::EINVAL);
    }
    let st = stat_at(t, a[0], p, flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))?;
    t.copy_out(a[2], &st.to_bytes())?;
    Ok(0)
}

/// `statx(dirfd, path, flags, mask, buf)`: every basic field is filled
/// whatever the mask asks.
pub fn statx(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    let flags = a[2] as u32;
    let st = stat_at(t, a[0], p, flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH))?;
    t.copy_out(a[4], &st.to_statx_bytes())?;
    Ok(0)
}

/// `struct statfs` of the overlay: fixed, plausible numbers (the overlay
/// is in memory; there are no real blocks to count).
fn statfs_bytes() -> [u8; 120] {
    let mut b = [0u8; 120];
    let put =
        |b: &mut [u8; 120], i: usize, v: u64| b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 0, 0x794c_7630); // f_type: OVERLAYFS_SUPER_MAGIC
    put(&mut b, 1, 4096); // f_bsize
    put(&mut b, 2, 1 << 24); // f_blocks
    put(&mut b, 3, 1 << 23); // f_bfree
    put(&mut b, 4, 1 << 23); // f_bavail
    put(&mut b, 5, 1 << 20); // f_files
    put(&mut b, 6, 1 << 19); // f_ffree
    put(&mut b, 8, 255); // f_namelen
    put(&mut b, 9, 4096); // f_frsize
    b
}

pub fn statfs(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = nonempty(t.read_path(a[0])?)?;
    stat_at(t, AT_FDCWD as u64, p, 0)?;
    t.copy_out(a[1], &statfs_bytes())?;
    Ok(0)
}

pub fn fstatfs(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?;
    t.copy_out(a[1], &statfs_bytes())?;
    Ok(0)
}

/// `faccessat2(dirfd, path, mode, flags)`: checked against the mode bits
/// with the real (or, with AT_EACCESS, effective) ids; root passes R/W and
/// passes X when any execute bit is set (Linux `generic_permission`).
fn do_access(
    t: &mut TaskRunner,
    dirfd: u64,
    path: Vec<u8>,
    mode: u32,
    flags: u32,
) -> SysResult<u64> {
    if mode & !7 != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let st = stat_at(
        t,
        dirfd,
        path,
        flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH),
    )?;
    if mode == 0 {
        return Ok(0);
    }
    let c = t.task.local().creds.clone();
    let (uid, gid) = if flags & AT_EACCESS != 0 {
        (c.euid, c.egid)
    } else {
        (c.ruid, c.rgid)
    };
    let is_dir = st.mode & libc::S_IFMT == libc::S_IFDIR;
    let ok = if uid == 0 {
        mode & 1 == 0 || is_dir || st.mode & 0o111 != 0
    } else {
        let bits = if st.uid == uid {
            (st.mode >> 6) & 7
        } else if st.gid == gid || c.groups.contains(&st.gid) {
            (st.mode >> 3) & 7
        } else {
            st.mode & 7
        };
        bits & mode == mode
    };
    if ok {
        Ok(0)
    } else {
        Err(Errno::EACCES)
    }
}

pub fn access(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    do_access(t, AT_FDCWD as u64, nonempty(p)?, a[1] as u32, 0)
}

pub fn faccessat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    do_access(t, a[0], nonempty(p)?, a[2] as u32, 0)
}

pub fn faccessat2(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    do_access(t, a[0], p, a[2] as u32, a[3] as u32)
}

// ---- directories ----

pub fn getdents64(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let data = {
        let src = KernelProc {
            kernel: &t.kernel,
            current: t.pid(),
        };
        f.getdents64((a[2] as usize).min(MAX_RW), &src)?
    };
    t.copy_out(a[1], &data)?;
    Ok(data.len() as u64)
}

pub fn getcwd(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let mut p = {
        let ctx = fs_ctx(t);
        let src = KernelProc {
            kernel: &t.kernel,
            current: t.pid(),
        };
        t.kernel.vfs.getcwd(&ctx, &src)?
    };
    p.push(0);
    if p.len() as u64 > a[1] {
        return Err(Errno::ERANGE);
    }
    t.copy_out(a[0], &p)?;
    Ok(p.len() as u64)
}

pub fn chdir(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = nonempty(t.read_path(a[0])?)?;
    let mut ctx = fs_ctx(t);
    {
        let src = KernelProc {
            kernel: &t.kernel,
            current: t.pid(),
        };
        t.kernel.vfs.chdir(&mut ctx, &p, &src)?;
    }
    *lock(&t.task.tg.fs) = ctx;
    Ok(0)
}

pub fn fchdir(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let mut ctx = fs_ctx(t);
    t.kernel.vfs.fchdir(&mut ctx, &f)?;
    *lock(&t.task.tg.fs) = ctx;
    Ok(0)
}

/// The signature shared by [`Vfs::mkdir`] and [`Vfs::mknod`].
type MakeFn = fn(&Vfs, &FsContext, At<'_>, &[u8], u32, Creds, &dyn ProcSource) -> SysResult<()>;

/// `mkdir`/`mknod` and their `*at` forms: creates `path` (relative to
/// `dirfd`) with `mode` and the caller's credentials through `make`.
fn do_make(
    t: &mut TaskRunner,
    dirfd: u64,
    path: Vec<u8>,
    mode: u32,
    make: MakeFn,
) -> SysResult<u64> {
    let path = nonempty(path)?;
    let c = creds(t);
    with_vfs(t, dirfd, &path, |vfs, ctx, at, src| {
        make(vfs, ctx, at, &path, mode, c, src)
    })?;
    Ok(0)
}

pub fn mkdir(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    do_make(t, AT_FDCWD as u64, p, a[1] as u32, Vfs::mkdir)
}

pub fn mkdirat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    do_make(t, a[0], p, a[2] as u32, Vfs::mkdir)
}

/// `mknod`: regular files, FIFOs and socket nodes (no device nodes).
pub fn mknod(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    do_make(t, AT_FDCWD as u64, p, a[1] as u32, Vfs::mknod)
}

pub fn mknodat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    do_make(t, a[0], p, a[2] as u32, Vfs::mknod)
}

pub fn rmdir(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = nonempty(t.read_path(a[0])?)?;
    with_vfs(t, AT_FDCWD as u64, &p, |vfs, ctx, at, src| {
        vfs.rmdir(ctx, at, &p, src)
    })?;
    Ok(0)
}

pub fn unlink(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = nonempty(t.read_path(a[0])?)?;
    with_vfs(t, AT_FDCWD as u64, &p, |vfs, ctx, at, src| {
        vfs.unlink(ctx, at, &p, src)
    })?;
    Ok(0)
}

pub fn unlinkat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = nonempty(t.read_path(a[1])?)?;
    let flags = a[2] as u32;
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    with_vfs(t, a[0], &p, |vfs, ctx, at, src| {
        if flags & AT_REMOVEDIR != 0 {
            vfs.rmdir(ctx, at, &p, src)
        } else {
            vfs.unlink(ctx, at, &p, src)
        }
    })?;
    Ok(0)
}

/// The signature shared by [`Vfs::rename`] and [`Vfs::link`].
type TwoPathFn =
    fn(&Vfs, &FsContext, At<'_>, &[u8], At<'_>, &[u8], u32, &dyn ProcSource) -> SysResult<()>;

/// `rename`/`link` and their `*at` forms: `old` (relative to `olddir`) and
/// `new` (non-empty, relative to `newdir`) handed to `op` with `flags`.
fn do_two_paths(
    t: &mut TaskRunner,
    olddir: u64,
    old: Vec<u8>,
    newdir: u64,
    new: Vec<u8>,
    flags: u32,
    op: TwoPathFn,
) -> SysResult<u64> {
    let new = nonempty(new)?;
    let od = dirfile(t, olddir, &old)?;
    let nd = dirfile(t, newdir, &new)?;
    let ctx = fs_ctx(t);
    let src = KernelProc {
        kernel: &t.kernel,
        current: t.pid(),
    };
    let vfs = &t.kernel.vfs;
    op(vfs, &ctx, at(&od), &old, at(&nd), &new, flags, &src)?;
    Ok(0)
}

pub fn rename(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let o = t.read_path(a[0])?;
    let n = t.read_path(a[1])?;
    let o = nonempty(o)?;
    do_two_paths(t, AT_FDCWD as u64, o, AT_FDCWD as u64, n, 0, Vfs::rename)
}

pub fn renameat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let o = t.read_path(a[1])?;
    let n = t.read_path(a[3])?;
    do_two_paths(t, a[0], nonempty(o)?, a[2], n, 0, Vfs::rename)
}

pub fn renameat2(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let o = t.read_path(a[1])?;
    let n = t.read_path(a[3])?;
    do_two_paths(t, a[0], nonempty(o)?, a[2], n, a[4] as u32, Vfs::rename)
}

pub fn link(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let o = nonempty(t.read_path(a[0])?)?;
    let n = t.read_path(a[1])?;
    do_two_paths(t, AT_FDCWD as u64, o, AT_FDCWD as u64, n, 0, Vfs::link)
}

pub fn linkat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let o = t.read_path(a[1])?;
    let n = t.read_path(a[3])?;
    let flags = a[4] as u32;
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    do_two_paths(t, a[0], o, a[2], n, flags, Vfs::link)
}

fn do_symlink(t: &mut TaskRunner, target: Vec<u8>, dirfd: u64, path: Vec<u8>) -> SysResult<u64> {
    let target = nonempty(target)?;
    let path = nonempty(path)?;
    let c = creds(t);
    with_vfs(t, dirfd, &path, |vfs, ctx, at, src| {
        vfs.symlink(ctx, &target, at, &path, c, src)
    })?;
    Ok(0)
}

pub fn symlink(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let target = t.read_path(a[0])?;
    let p = t.read_path(a[1])?;
    do_symlink(t, target, AT_FDCWD as u64, p)
}

pub fn symlinkat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let target = t.read_path(a[0])?;
    let p = t.read_path(a[2])?;
    do_symlink(t, target, a[1], p)
}

fn do_readlink(
    t: &mut TaskRunner,
    dirfd: u64,
    path: Vec<u8>,
    buf: u64,
    size: u64,
) -> SysResult<u64> {
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let target = with_vfs(t, dirfd, &path, |vfs, ctx, at, src| {
        vfs.readlink(ctx, at, &path, src)
    })?;
    let n = target.len().min(size as usize);
    t.copy_out(buf, &target[..n])?;
    Ok(n as u64)
}

pub fn readlink(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = nonempty(t.read_path(a[0])?)?;
    do_readlink(t, AT_FDCWD as u64, p, a[1], a[2])
}

pub fn readlinkat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    do_readlink(t, a[0], p, a[2], a[3])
}

// ---- attributes ----

fn do_chmod(
    t: &mut TaskRunner,
    dirfd: u64,
    path: Vec<u8>,
    mode: u32,
    follow: bool,
) -> SysResult<u64> {
    let path = nonempty(path)?;
    with_vfs(t, dirfd, &path, |vfs, ctx, at, src| {
        vfs.chmod(ctx, at, &path, mode & 0o7777, follow, src)
    })?;
    Ok(0)
}

pub fn chmod(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    do_chmod(t, AT_FDCWD as u64, p, a[1] as u32, true)
}

pub fn fchmodat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    do_chmod(t, a[0], p, a[2] as u32, true)
}

pub fn fchmod(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    t.kernel.vfs.fchmod(&f, a[1] as u32 & 0o7777)?;
    Ok(0)
}

fn id_arg(v: u64) -> Option<u32> {
    match v as u32 {
        u32::MAX => None,
        x => Some(x),
    }
}

fn do_chown(
    t: &mut TaskRunner,
    dirfd: u64,
    path: Vec<u8>,
    uid: u64,
    gid: u64,
    follow: bool,
) -> SysResult<u64> {
    let path = nonempty(path)?;
    let (u, g) = (id_arg(uid), id_arg(gid));
    with_vfs(t, dirfd, &path, |vfs, ctx, at, src| {
        vfs.chown(ctx, at, &path, u, g, follow, src)
    })?;
    Ok(0)
}

pub fn chown(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    do_chown(t, AT_FDCWD as u64, p, a[1], a[2], true)
}

pub fn lchown(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[0])?;
    do_chown(t, AT_FDCWD as u64, p, a[1], a[2], false)
}

pub fn fchownat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = t.read_path(a[1])?;
    let flags = a[4] as u32;
    if p.is_empty() && flags & AT_EMPTY_PATH != 0 {
        file(t, a[0])?;
        return Ok(0);
    }
    do_chown(t, a[0], p, a[2], a[3], flags & AT_SYMLINK_NOFOLLOW == 0)
}

/// `fchown`: accepted for any open fd (ownership of open files is not
/// tracked separately from their path).
pub fn fchown(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?;
    Ok(0)
}

pub fn truncate(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = nonempty(t.read_path(a[0])?)?;
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    with_vfs(t, AT_FDCWD as u64, &p, |vfs, ctx, _at, src| {
        vfs.truncate(ctx, &p, a[1] as i64, src)
    })?;
    Ok(0)
}

pub fn ftruncate(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    file(t, a[0])?.ftruncate(a[1] as i64)?;
    Ok(0)
}

pub fn fsync(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?.fsync()?;
    Ok(0)
}

pub fn fdatasync(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    fsync(t, a)
}

/// `sync`/`syncfs`: the overlay lives in memory; nothing to flush.
pub fn sync(_t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(0)
}

pub fn syncfs(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?;
    Ok(0)
}

/// `fadvise64`: advice only; validated and accepted.
pub fn fadvise64(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?;
    if a[3] > 5 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// `flock(fd, op)`: without `LOCK_NB` a conflict sleeps on the file's
/// lock queue (interruptible: `ERESTARTSYS`). Linux `fs/locks.c`.
pub fn flock(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let op = arg_i32(a[1]);
    match f.lock_queue() {
        Some(q) if op & libc::LOCK_NB == 0 => {
            t.block_on(q, crate::waiter::EVENT_ALL, None, |_| f.flock(op))?
        }
        _ => f.flock(op)?,
    }
    Ok(0)
}

/// `F_GETLK`/`F_SETLK`/`F_SETLKW` and their OFD forms on `f` with the
/// `struct flock` at `arg`.
fn record_lock(t: &mut TaskRunner, f: &Arc<FileDescription>, cmd: i32, arg: u64) -> SysResult<u64> {
    use crate::vfs::lock::{FlockRecord, LockOwner, FLOCK_SIZE};
    let rec = FlockRecord::from_bytes(&t.read_array::<FLOCK_SIZE>(arg)?);
    let ofd = matches!(
        cmd,
        libc::F_OFD_GETLK | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
    );
    if ofd && rec.l_pid != 0 {
        return Err(Errno::EINVAL.because("OFD lock with l_pid set"));
    }
    let owner = if ofd {
        LockOwner::Description(f.id())
    } else {
        LockOwner::Process(t.pid())
    };
    match cmd {
        libc::F_GETLK | libc::F_OFD_GETLK => {
            let out = f.getlk(owner, &rec)?;
            t.copy_out(arg, &out.to_bytes())?;
        }
        libc::F_SETLKW | libc::F_OFD_SETLKW => match f.lock_queue() {
            Some(q) => t.block_on(q, crate::waiter::EVENT_ALL, None, |_| f.setlk(owner, &rec))?,
            None => f.setlk(owner, &rec)?,
        },
        _ => f.setlk(owner, &rec)?,
    }
    Ok(0)
}

fn utime_spec(b: &[u8; 16]) -> SysResult<UtimeSpec> {
    const UTIME_NOW: i64 = (1 << 30) - 1;
    const UTIME_OMIT: i64 = (1 << 30) - 2;
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[0..8]);
    let sec = i64::from_le_bytes(x);
    x.copy_from_slice(&b[8..16]);
    let nsec = i64::from_le_bytes(x);
    match nsec {
        UTIME_NOW => Ok(UtimeSpec::Now),
        UTIME_OMIT => Ok(UtimeSpec::Omit),
        n if (0..1_000_000_000).contains(&n) => {
            Ok(UtimeSpec::Set(crate::vfs::Timespec { sec, nsec: n }))
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn utimensat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let path = if a[1] != 0 {
        t.read_path(a[1])?
    } else {
        Vec::new()
    };
    let (at_, mt) = if a[2] != 0 {
        let b = t.read_array::<32>(a[2])?;
        let mut x = [0u8; 16];
        x.copy_from_slice(&b[0..16]);
        let at_ = utime_spec(&x)?;
        x.copy_from_slice(&b[16..32]);
        (at_, utime_spec(&x)?)
    } else {
        (UtimeSpec::Now, UtimeSpec::Now)
    };
    let flags = a[3] as u32;
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    if path.is_empty() {
        let f = file(t, a[0])?;
        let ctx = fs_ctx(t);
        let src = KernelProc {
            kernel: &t.kernel,
            current: t.pid(),
        };
        t.kernel
            .vfs
            .utimens(&ctx, At::Fd(&f), b"", at_, mt, follow, &src)?;
        return Ok(0);
    }
    with_vfs(t, a[0], &path, |vfs, ctx, at, src| {
        vfs.utimens(ctx, at, &path, at_, mt, follow, src)
    })?;
    Ok(0)
}

pub fn umask(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let mut fs = lock(&t.task.tg.fs);
    let old = fs.umask;
    fs.umask = a[0] as u32 & 0o777;
    Ok(old as u64)
}

// ---- fds ----

pub fn dup(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    Ok(fds.dup(arg_i32(a[0]))? as u64)
}

pub fn dup2(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let (fd, replaced) = fds.dup3(arg_i32(a[0]), arg_i32(a[1]), false, false)?;
    if let Some(r) = replaced {
        r.release_posix_locks(t.pid());
    }
    Ok(fd as u64)
}

pub fn dup3(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let flags = a[2] as u32;
    if flags & !(libc::O_CLOEXEC as u32) != 0 {
        return Err(Errno::EINVAL);
    }
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let (fd, replaced) = fds.dup3(arg_i32(a[0]), arg_i32(a[1]), flags != 0, true)?;
    if let Some(r) = replaced {
        r.release_posix_locks(t.pid());
    }
    Ok(fd as u64)
}

pub fn fcntl(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let fd = arg_i32(a[0]);
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let f = fds.get(fd)?;
    let arg = a[2];
    match arg_i32(a[1]) {
        libc::F_DUPFD => Ok(fds.dup_min(fd, arg_i32(arg), false)? as u64),
        libc::F_DUPFD_CLOEXEC => Ok(fds.dup_min(fd, arg_i32(arg), true)? as u64),
        libc::F_GETFD => Ok(fds.cloexec(fd)? as u64),
        libc::F_SETFD => {
            fds.set_cloexec(fd, arg & 1 != 0)?;
            Ok(0)
        }
        libc::F_GETFL => Ok(f.status_flags() as u64),
        libc::F_SETFL => {
            f.set_status_flags(arg as u32);
            Ok(0)
        }
        cmd @ (libc::F_GETLK
        | libc::F_OFD_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW) => record_lock(t, &f, cmd, arg),
        libc::F_GETOWN => Ok(0),
        libc::F_SETOWN => Ok(0),
        libc::F_GETPIPE_SZ => Ok(f.pipe_size()? as u64),
        libc::F_SETPIPE_SZ => Ok(f.set_pipe_size(arg as usize)? as u64),
        _ => Err(Errno::EINVAL.because("unsupported fcntl command")),
    }
}

/// `ioctl(fd, cmd, arg)`: the file's own ioctls (terminal passthrough,
/// FIONREAD, FIONBIO), plus job control answered from sandbox state.
pub fn ioctl(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let f = file(t, a[0])?;
    let cmd = a[1] as u32;
    let arg = a[2];
    let mut input = vec![0u8; crate::vfs::ioctl_input_len(cmd)];
    t.copy_in(arg, &mut input)?;
    match f.ioctl(cmd, &input)? {
        IoctlOutcome::Done { ret, out } => {
            t.copy_out(arg, &out)?;
            Ok(ret as u64)
        }
        IoctlOutcome::JobControl => job_control_ioctl(t, cmd, arg),
    }
}

fn job_control_ioctl(t: &mut TaskRunner, cmd: u32, arg: u64) -> SysResult<u64> {
    match u64::from(cmd) {
        libc::TIOCGPGRP => {
            let pg = t.kernel.tasks().foreground_pgrp;
            t.write_u32(arg, pg as u32)?;
            Ok(0)
        }
        libc::TIOCSPGRP => {
            let pg = t.read_u32(arg)? as i32;
            if pg < 0 {
                return Err(Errno::EINVAL);
            }
            let mut ts = t.kernel.tasks();
            let my_sid = ts.procs.get(&t.pid()).map(|p| p.sid).ok_or(Errno::ESRCH)?;
            if !ts
                .procs
                .values()
                .any(|p| p.pgid == pg && p.sid == my_sid && p.zombie.is_none())
            {
                return Err(Errno::EPERM.because("no such process group in the session"));
            }
            ts.foreground_pgrp = pg;
            Ok(0)
        }
        libc::TIOCGSID => {
            let ts = t.kernel.tasks();
            let sid = ts.procs.get(&1).map(|p| p.sid).unwrap_or(1);
            drop(ts);
            t.write_u32(arg, sid as u32)?;
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

fn do_pipe(t: &mut TaskRunner, addr: u64, flags: u32) -> SysResult<u64> {
    let allowed = (libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) as u32;
    if flags & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let (r, w) = FileDescription::new_pipe(flags & !(libc::O_CLOEXEC as u32));
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let (fr, fw) = fds.install_pair(r, w, flags & libc::O_CLOEXEC as u32 != 0)?;
    let mut b = [0u8; 8];
    b[0..4].copy_from_slice(&fr.to_le_bytes());
    b[4..8].copy_from_slice(&fw.to_le_bytes());
    if let Err(e) = t.copy_out(addr, &b) {
        let _ = fds.close(fr);
        let _ = fds.close(fw);
        return Err(e);
    }
    Ok(0)
}

pub fn pipe(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    do_pipe(t, a[0], 0)
}

pub fn pipe2(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    do_pipe(t, a[0], a[1] as u32)
}

// ---- extended attributes ----
//
// The overlay stores no extended attributes: reads find none (ENODATA,
// as for a file without that attribute; `ls` and `cp` treat it as "no
// ACLs/labels"), lists are empty, and writes fail with EOPNOTSUPP like a
// filesystem without xattr support.

fn xattr_target(t: &mut TaskRunner, path_addr: u64, follow: bool) -> SysResult<()> {
    let p = nonempty(t.read_path(path_addr)?)?;
    let flags = if follow { 0 } else { AT_SYMLINK_NOFOLLOW };
    stat_at(t, AT_FDCWD as u64, p, flags).map(|_| ())
}

fn xattr_name(t: &mut TaskRunner, addr: u64) -> SysResult<()> {
    let n = t.read_cstring(addr, 256).map_err(|e| {
        if e.code() == libc::ENAMETOOLONG {
            Errno::ERANGE
        } else {
            e
        }
    })?;
    if n.is_empty() {
        return Err(Errno::ERANGE);
    }
    Ok(())
}

pub fn getxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    xattr_target(t, a[0], true)?;
    xattr_name(t, a[1])?;
    Err(Errno::ENODATA)
}

pub fn lgetxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    xattr_target(t, a[0], false)?;
    xattr_name(t, a[1])?;
    Err(Errno::ENODATA)
}

pub fn fgetxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?;
    xattr_name(t, a[1])?;
    Err(Errno::ENODATA)
}

pub fn listxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    xattr_target(t, a[0], true)?;
    Ok(0)
}

pub fn llistxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    xattr_target(t, a[0], false)?;
    Ok(0)
}

pub fn flistxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?;
    Ok(0)
}

pub fn setxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    xattr_target(t, a[0], true)?;
    Err(Errno::EOPNOTSUPP.because("no extended attributes in the overlay"))
}

pub fn lsetxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    xattr_target(t, a[0], false)?;
    Err(Errno::EOPNOTSUPP.because("no extended attributes in the overlay"))
}

pub fn fsetxattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?;
    Err(Errno::EOPNOTSUPP.because("no extended attributes in the overlay"))
}

pub fn removexattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    xattr_target(t, a[0], true)?;
    Err(Errno::EOPNOTSUPP.because("no extended attributes in the overlay"))
}

pub fn lremovexattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    xattr_target(t, a[0], false)?;
    Err(Errno::EOPNOTSUPP.because("no extended attributes in the overlay"))
}

pub fn fremovexattr(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    file(t, a[0])?;
    Err(Errno::EOPNOTSUPP.because("no extended attributes in the overlay"))
}

/// `close_range(first, last, flags)` (Linux `fs/file.c`):
/// `CLOSE_RANGE_CLOEXEC` marks instead of closing; `CLOSE_RANGE_UNSHARE`
/// is accepted (the table is per process; threads share it, as after an
/// unshare of a single-threaded caller).
pub fn close_range(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    const CLOSE_RANGE_UNSHARE: u64 = 1 << 1;
    const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
    let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2]);
    if flags & !(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) != 0 || first > last {
        return Err(Errno::EINVAL);
    }
    let fds = t.task.tg.fds().ok_or(Errno::EBADF)?;
    let mut closed = Vec::new();
    for fd in fds.fds() {
        let u = fd as u32;
        if u < first || u > last {
            continue;
        }
        if flags & CLOSE_RANGE_CLOEXEC != 0 {
            fds.set_cloexec(fd, true)?;
        } else if let Ok(f) = fds.close(fd) {
            f.release_posix_locks(t.pid());
            closed.push(f);
        }
    }
    drop(closed);
    Ok(0)
}

/// `chroot(path)`: needs privilege (CAP_SYS_CHROOT, modelled as euid 0).
pub fn chroot(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let p = nonempty(t.read_path(a[0])?)?;
    if !t.task.local().creds.privileged() {
        return Err(Errno::EPERM);
    }
    let mut ctx = fs_ctx(t);
    {
        let src = KernelProc {
            kernel: &t.kernel,
            current: t.pid(),
        };
        t.kernel.vfs.chroot(&mut ctx, &p, &src)?;
    }
    *lock(&t.task.tg.fs) = ctx;
    Ok(0)
}

/// `copy_file_range(fd_in, off_in, fd_out, off_out, len, flags)`: through
/// a sentry buffer (at most 1 MiB per call, a legal short count).
pub fn copy_file_range(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[5] != 0 {
        return Err(Errno::EINVAL);
    }
    let inp = file(t, a[0])?;
    let out = file(t, a[2])?;
    if !inp.is_readable() || !out.is_writable() {
        return Err(Errno::EBADF);
    }
    if out.status_flags() & libc::O_APPEND as u32 != 0 {
        return Err(Errno::EBADF);
    }
    let off_in = if a[1] != 0 {
        Some(t.read_u64(a[1])? as i64)
    } else {
        None
    };
    let off_out = if a[3] != 0 {
        Some(t.read_u64(a[3])? as i64)
    } else {
        None
    };
    if off_in.is_some_and(|o| o < 0) || off_out.is_some_and(|o| o < 0) {
        return Err(Errno::EINVAL);
    }
    let data = do_read(t, &inp, (a[4] as usize).min(1 << 20), off_in)?;
    let n = do_write(t, &out, &data, off_out)?;
    if let Some(o) = off_in {
        t.write_u64(a[1], (o + n as i64) as u64)?;
    } else if n < data.len() {
        let _ = inp.lseek(-((data.len() - n) as i64), libc::SEEK_CUR);
    }
    if let Some(o) = off_out {
        t.write_u64(a[3], (o + n as i64) as u64)?;
    }
    Ok(n as u64)
}
