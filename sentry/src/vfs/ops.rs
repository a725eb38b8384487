//! Namespace operations of [`Vfs`]: the bodies of `openat`, `stat`,
//! `mkdirat`, `unlinkat`, `renameat2`, `linkat`, `symlinkat`,
//! `readlinkat`, `fchmodat`, `truncate`, `utimensat`, `chdir`, `getcwd`.
//! Linux: fs/namei.c, fs/open.c, fs/stat.c.

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::vfs::dev::{DevKind, DevNode};
use crate::vfs::file::{FileDescription, FileKind};
use crate::vfs::host::HostFile;
use crate::vfs::location::Location;
use crate::vfs::mapped::MappedFile;
use crate::vfs::overlay::{NewNode, Node};
use crate::vfs::path::{join_path, ParentAndName, Resolver};
use crate::vfs::proc::ProcSource;
use crate::vfs::stat::{FileType, Stat, Timespec};
use crate::vfs::{FsContext, Vfs};

/// Where a relative path starts (the `dirfd` of the `*at` calls).
#[derive(Clone, Copy, Debug)]
pub enum At<'a> {
    /// `AT_FDCWD`.
    Cwd,
    /// An open file description (must be a directory for relative paths).
    Fd(&'a FileDescription),
}

/// The caller's filesystem credentials, for new files' owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
}

/// One time of `utimensat(2)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UtimeSpec {
    /// `UTIME_NOW`.
    Now,
    /// `UTIME_OMIT`.
    Omit,
    Set(Timespec),
}

impl UtimeSpec {
    fn resolve(self, now: Timespec) -> Option<Timespec> {
        match self {
            UtimeSpec::Now => Some(now),
            UtimeSpec::Omit => None,
            UtimeSpec::Set(t) => Some(t),
        }
    }
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// The overlay directory node behind `loc`, or the errno Linux gives for
/// changing a read-only synthetic filesystem.
fn overlay_dir(loc: &Location) -> SysResult<&Arc<Node>> {
    match loc {
        Location::Overlay(n) if n.file_type() == FileType::Directory => Ok(n),
        Location::Overlay(_) => Err(Errno::ENOTDIR),
        _ => Err(Errno::EACCES.because("synthetic filesystem is read-only")),
    }
}

fn overlay_node(loc: &Location) -> SysResult<&Arc<Node>> {
    match loc {
        Location::Overlay(n) => Ok(n),
        _ => Err(Errno::EPERM.because("synthetic filesystem is read-only")),
    }
}

impl Vfs {
    /// The parent directory and final name of a node about to be created
    /// at `path`: `EEXIST` when the name is `.`/`..` or a mount point
    /// (Linux `filename_create`). The trailing-slash rule is the caller's.
    fn resolve_new(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        src: &dyn ProcSource,
    ) -> SysResult<ParentAndName> {
        let start = self.start(ctx, at, path)?;
        let pn = Resolver::new(self, &ctx.root, src).resolve_parent(&start, path)?;
        if is_dot(&pn.name) || self.is_mount_point(&pn.dir, &pn.name) {
            return Err(Errno::EEXIST);
        }
        Ok(pn)
    }

    fn start(&self, ctx: &FsContext, at: At<'_>, path: &[u8]) -> SysResult<Location> {
        if path.first() == Some(&b'/') {
            return Ok(ctx.root.clone());
        }
        match at {
            At::Cwd => Ok(ctx.cwd.clone()),
            At::Fd(f) => match f.location() {
                Some(l) if l.is_dir() => Ok(l),
                _ => Err(Errno::ENOTDIR.because("dirfd is not a directory")),
            },
        }
    }

    /// Whether `name` in `dir` is a mount point (`/dev`, `/proc`).
    fn is_mount_point(&self, dir: &Location, name: &[u8]) -> bool {
        matches!(dir, Location::Overlay(n) if Arc::ptr_eq(n, self.overlay().root()))
            && (name == b"dev" || name == b"proc")
    }

    /// Resolves `path` to a location (`follow`: follow a final symlink).
    pub fn lookup(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        follow: bool,
        src: &dyn ProcSource,
    ) -> SysResult<Location> {
        let start = self.start(ctx, at, path)?;
        Resolver::new(self, &ctx.root, src).resolve(&start, path, follow)
    }

    /// `openat(2)`. `mode` is used with `O_CREAT` (the umask applied here).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        flags: u32,
        mode: u32,
        creds: Creds,
        src: &dyn ProcSource,
    ) -> SysResult<Arc<FileDescription>> {
        let o = |f: i32| flags & f as u32 != 0;
        if flags & libc::O_TMPFILE as u32 == libc::O_TMPFILE as u32 {
            return Err(Errno::EOPNOTSUPP.because("O_TMPFILE"));
        }
        let o_path = o(libc::O_PATH);
        let creat = o(libc::O_CREAT) && !o_path;
        let excl = creat && o(libc::O_EXCL);
        let follow = !o(libc::O_NOFOLLOW) && !excl;
        let mut start = self.start(ctx, at, path)?;
        let mut r = Resolver::new(self, &ctx.root, src);
        let mut cur_path = path.to_vec();
        let mut created = false;
        // Resolve the parent, then the last component by hand, so a final
        // symlink is followed with O_CREAT semantics (a dangling link
        // creates its target) and the description learns its path.
        let (pn, loc): (ParentAndName, Location) = loop {
            let pn = r.resolve_parent(&start, &cur_path)?;
            if is_dot(&pn.name) {
                if creat {
                    return Err(Errno::EISDIR);
                }
                let loc = if pn.name == b"." {
                    pn.dir.clone()
                } else {
                    r.parent(&pn.dir)
                };
                break (pn, loc);
            }
            match r.child(&pn.dir, &pn.name) {
                Ok(loc) => {
                    if excl {
                        return Err(Errno::EEXIST);
                    }
                    if loc.file_type() == FileType::Symlink && (follow || pn.trailing_slash) {
                        r.count_link()?;
                        if let Some(open) = r.magic_link(&loc) {
                            if excl {
                                return Err(Errno::EEXIST);
                            }
                            break (pn, open);
                        }
                        cur_path = loc.readlink(src)?;
                        if cur_path.is_empty() {
                            return Err(Errno::ENOENT.because("empty symlink"));
                        }
                        if pn.trailing_slash {
                            cur_path.push(b'/');
                        }
                        start = pn.dir;
                        continue;
                    }
                    break (pn, loc);
                }
                Err(e) if e.code() == libc::ENOENT && creat => {
                    if pn.trailing_slash {
                        return Err(Errno::EISDIR);
                    }
                    let dir = overlay_dir(&pn.dir)?;
                    let perm = mode & !ctx.umask & 0o7777;
                    let node = self.overlay().create(
                        dir,
                        &pn.name,
                        NewNode::Regular,
                        perm,
                        creds.uid,
                        creds.gid,
                    )?;
                    created = true;
                    break (pn, Location::Overlay(node));
                }
                Err(e) => return Err(e),
            }
        };
        let ftype = loc.file_type();
        if pn.trailing_slash && ftype != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if o(libc::O_DIRECTORY) && ftype != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        let display = if ftype == FileType::Directory {
            r.path_of_dir(&loc).unwrap_or_else(|_| path.to_vec())
        } else if is_dot(&pn.name) {
            path.to_vec()
        } else {
            r.path_of_dir(&pn.dir)
                .map(|d| join_path(&d, &pn.name))
                .unwrap_or_else(|_| path.to_vec())
        };
        if let Location::File(f) = &loc {
            if o_path {
                return Ok(FileDescription::new(
                    FileKind::Path(loc.clone()),
                    flags & libc::O_PATH as u32,
                    f.proc_target(),
                ));
            }
            return f.reopen(flags);
        }
        if o_path {
            let keep = (libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW) as u32;
            return Ok(FileDescription::new(
                FileKind::Path(loc),
                flags & keep,
                display,
            ));
        }
        let acc = flags & libc::O_ACCMODE as u32;
        let writable = acc == libc::O_WRONLY as u32 || acc == libc::O_RDWR as u32;
        let kind = match (ftype, &loc) {
            (FileType::Symlink, _) => return Err(Errno::ELOOP.because("O_NOFOLLOW on a symlink")),
            (FileType::Directory, _) => {
                // Linux `build_open_flags`: O_TRUNC implies MAY_WRITE.
                if writable || creat || o(libc::O_TRUNC) {
                    return Err(Errno::EISDIR);
                }
                let parent_ino = r.parent(&loc).stat(src).ino;
                FileKind::Directory { loc, parent_ino }
            }
            (FileType::Regular, Location::Overlay(node)) => {
                if writable {
                    node.copy_up()?;
                }
                if o(libc::O_TRUNC) && !created && writable {
                    node.truncate(0)?;
                }
                FileKind::Regular(node.clone())
            }
            (FileType::Regular, Location::Proc(p)) => {
                if writable {
                    return Err(Errno::EACCES.because("proc files are read-only"));
                }
                FileKind::Proc {
                    node: *p,
                    data: p.generate(src)?,
                }
            }
            (FileType::CharDevice, Location::Dev(DevNode::Device(DevKind::Tty))) => {
                FileKind::Host(HostFile::tty(flags)?)
            }
            (FileType::CharDevice, Location::Dev(DevNode::Device(k))) => FileKind::Device(*k),
            (FileType::Socket, _) => return Err(Errno::ENXIO.because("open of a socket")),
            (FileType::Fifo, Location::Overlay(node)) => {
                let Some(pipe) = node.fifo_pipe() else {
                    return Err(Errno::EIO.because("FIFO without a pipe"));
                };
                let nonblock = o(libc::O_NONBLOCK);
                let (reads, writes) = match acc {
                    x if x == libc::O_RDONLY as u32 => (true, false),
                    x if x == libc::O_WRONLY as u32 => {
                        if nonblock && !pipe.has_readers() {
                            return Err(Errno::ENXIO.because("FIFO has no reader"));
                        }
                        (false, true)
                    }
                    _ => (true, true),
                };
                FileKind::Pipe(pipe.open_fifo_end(reads, writes, node.clone()))
            }
            _ => return Err(Errno::EACCES.because("host special files are not exposed")),
        };
        Ok(FileDescription::new(kind, flags, display))
    }

    /// Opens `path` for `execve`: a regular file with an execute bit.
    /// Returns its contents handle, its stat and its sandbox path.
    pub fn open_exec(
        &self,
        ctx: &FsContext,
        path: &[u8],
        src: &dyn ProcSource,
    ) -> SysResult<(MappedFile, Stat, Vec<u8>)> {
        let f = self.open(
            ctx,
            At::Cwd,
            path,
            libc::O_RDONLY as u32,
            0,
            Creds::default(),
            src,
        )?;
        let st = f.fstat(src)?;
        if st.file_type() != Some(FileType::Regular) {
            return Err(Errno::EACCES.because("exec of a non-regular file"));
        }
        if st.mode & 0o111 == 0 {
            return Err(Errno::EACCES.because("no execute permission"));
        }
        Ok((f.mapped_file()?, st, f.path().to_vec()))
    }

    /// `fstatat(2)` / `statx(2)`: `flags` may hold `AT_SYMLINK_NOFOLLOW`
    /// and `AT_EMPTY_PATH`.
    pub fn stat(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        flags: u32,
        src: &dyn ProcSource,
    ) -> SysResult<Stat> {
        if path.is_empty() && flags & libc::AT_EMPTY_PATH as u32 != 0 {
            return match at {
                At::Fd(f) => f.fstat(src),
                At::Cwd => Ok(ctx.cwd.stat(src)),
            };
        }
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW as u32 == 0;
        Ok(self.lookup(ctx, at, path, follow, src)?.stat(src))
    }

    /// `mkdirat(2)`.
    pub fn mkdir(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        mode: u32,
        creds: Creds,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let pn = self.resolve_new(ctx, at, path, src)?;
        let dir = overlay_dir(&pn.dir)?;
        let perm = mode & !ctx.umask & 0o1777;
        self.overlay()
            .create(
                dir,
                &pn.name,
                NewNode::Directory,
                perm,
                creds.uid,
                creds.gid,
            )
            .map(|_| ())
    }

    /// `mknodat(2)`: regular files, FIFOs and socket nodes (device nodes
    /// are `EPERM`: the sandbox has only its own `/dev`).
    pub fn mknod(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        mode: u32,
        creds: Creds,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let what = match mode & libc::S_IFMT {
            0 | libc::S_IFREG => NewNode::Regular,
            libc::S_IFIFO => NewNode::Fifo,
            libc::S_IFSOCK => NewNode::Socket,
            libc::S_IFCHR | libc::S_IFBLK => {
                return Err(Errno::EPERM.because("device nodes are not supported"))
            }
            _ => return Err(Errno::EINVAL.because("bad mknod type")),
        };
        let pn = self.resolve_new(ctx, at, path, src)?;
        if pn.trailing_slash {
            return Err(Errno::ENOENT.because("trailing slash on a new node"));
        }
        let dir = overlay_dir(&pn.dir)?;
        let perm = mode & !ctx.umask & 0o7777;
        self.overlay()
            .create(dir, &pn.name, what, perm, creds.uid, creds.gid)
            .map(|_| ())
    }

    /// `symlinkat(2)`: creates `path` pointing to `target`.
    pub fn symlink(
        &self,
        ctx: &FsContext,
        target: &[u8],
        at: At<'_>,
        path: &[u8],
        creds: Creds,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        if target.is_empty() {
            return Err(Errno::ENOENT.because("empty symlink target"));
        }
        if target.len() >= crate::vfs::path::PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let pn = self.resolve_new(ctx, at, path, src)?;
        if pn.trailing_slash {
            return Err(Errno::ENOENT.because("trailing slash on a new symlink"));
        }
        let dir = overlay_dir(&pn.dir)?;
        self.overlay()
            .create(
                dir,
                &pn.name,
                NewNode::Symlink(target.to_vec()),
                0o777,
                creds.uid,
                creds.gid,
            )
            .map(|_| ())
    }

    /// `readlinkat(2)`: the whole target (the caller truncates to its
    /// buffer).
    pub fn readlink(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        src: &dyn ProcSource,
    ) -> SysResult<Vec<u8>> {
        let loc = if path.is_empty() {
            match at {
                At::Fd(f) => f.location().ok_or(Errno::EINVAL)?,
                At::Cwd => return Err(Errno::ENOENT.because("empty path")),
            }
        } else {
            self.lookup(ctx, at, path, false, src)?
        };
        if loc.file_type() != FileType::Symlink {
            return Err(Errno::EINVAL.because("not a symlink"));
        }
        loc.readlink(src)
    }

    /// `unlinkat(2)` without `AT_REMOVEDIR`.
    pub fn unlink(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let start = self.start(ctx, at, path)?;
        let r = &mut Resolver::new(self, &ctx.root, src);
        let pn = r.resolve_parent(&start, path)?;
        if is_dot(&pn.name) {
            return Err(Errno::EISDIR);
        }
        if self.is_mount_point(&pn.dir, &pn.name) {
            return Err(Errno::EBUSY);
        }
        let child = r.child(&pn.dir, &pn.name)?;
        if pn.trailing_slash {
            return Err(if child.is_dir() {
                Errno::EISDIR
            } else {
                Errno::ENOTDIR
            });
        }
        let dir = overlay_dir(&pn.dir)?;
        self.overlay().unlink(dir, &pn.name)
    }

    /// `unlinkat(2)` with `AT_REMOVEDIR` / `rmdir(2)`.
    pub fn rmdir(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let start = self.start(ctx, at, path)?;
        let pn = Resolver::new(self, &ctx.root, src).resolve_parent(&start, path)?;
        if pn.name == b"." {
            return Err(Errno::EINVAL.because("rmdir of ."));
        }
        if pn.name == b".." {
            return Err(Errno::ENOTEMPTY);
        }
        if self.is_mount_point(&pn.dir, &pn.name) {
            return Err(Errno::EBUSY);
        }
        let dir = overlay_dir(&pn.dir)?;
        self.overlay().rmdir(dir, &pn.name)
    }

    /// `renameat2(2)`; `flags` may be 0 or `RENAME_NOREPLACE`.
    #[allow(clippy::too_many_arguments)]
    pub fn rename(
        &self,
        ctx: &FsContext,
        old_at: At<'_>,
        old_path: &[u8],
        new_at: At<'_>,
        new_path: &[u8],
        flags: u32,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(Errno::EINVAL.because("unsupported renameat2 flags"));
        }
        let old_start = self.start(ctx, old_at, old_path)?;
        let new_start = self.start(ctx, new_at, new_path)?;
        let mut r = Resolver::new(self, &ctx.root, src);
        let old = r.resolve_parent(&old_start, old_path)?;
        let new = r.resolve_parent(&new_start, new_path)?;
        if is_dot(&old.name) || is_dot(&new.name) {
            return Err(Errno::EBUSY);
        }
        if self.is_mount_point(&old.dir, &old.name) || self.is_mount_point(&new.dir, &new.name) {
            return Err(Errno::EBUSY);
        }
        let (Location::Overlay(od), Location::Overlay(nd)) = (&old.dir, &new.dir) else {
            return match (&old.dir, &new.dir) {
                (Location::Overlay(_), _) | (_, Location::Overlay(_)) => Err(Errno::EXDEV),
                _ => Err(Errno::EACCES.because("synthetic filesystem is read-only")),
            };
        };
        let src_node = od.lookup(&old.name)?;
        if (old.trailing_slash || new.trailing_slash) && src_node.file_type() != FileType::Directory
        {
            return Err(Errno::ENOTDIR);
        }
        self.overlay().rename(
            od,
            &old.name,
            nd,
            &new.name,
            flags & libc::RENAME_NOREPLACE != 0,
        )
    }

    /// `linkat(2)`; `flags` may hold `AT_SYMLINK_FOLLOW` and `AT_EMPTY_PATH`.
    #[allow(clippy::too_many_arguments)]
    pub fn link(
        &self,
        ctx: &FsContext,
        old_at: At<'_>,
        old_path: &[u8],
        new_at: At<'_>,
        new_path: &[u8],
        flags: u32,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let target = if old_path.is_empty() && flags & libc::AT_EMPTY_PATH as u32 != 0 {
            match old_at {
                At::Fd(f) => f.location().ok_or(Errno::ENOENT)?,
                At::Cwd => return Err(Errno::ENOENT),
            }
        } else {
            let follow = flags & libc::AT_SYMLINK_FOLLOW as u32 != 0;
            self.lookup(ctx, old_at, old_path, follow, src)?
        };
        let pn = self.resolve_new(ctx, new_at, new_path, src)?;
        if pn.trailing_slash {
            return Err(Errno::ENOENT.because("trailing slash on a new link"));
        }
        let (Location::Overlay(t), Location::Overlay(d)) = (&target, &pn.dir) else {
            return Err(Errno::EXDEV);
        };
        self.overlay().link(t, d, &pn.name)
    }

    /// `fchmodat(2)` (`follow`: follow a final symlink).
    pub fn chmod(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        mode: u32,
        follow: bool,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let loc = self.lookup(ctx, at, path, follow, src)?;
        overlay_node(&loc)?.chmod(mode)
    }

    /// `fchmod(2)`.
    pub fn fchmod(&self, f: &FileDescription, mode: u32) -> SysResult<()> {
        let loc = f
            .location()
            .ok_or(Errno::EPERM.because("fchmod of a pipe or host file"))?;
        overlay_node(&loc)?.chmod(mode)
    }

    /// `fchownat(2)`; `None` (-1) leaves an id unchanged.
    #[allow(clippy::too_many_arguments)]
    pub fn chown(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        uid: Option<u32>,
        gid: Option<u32>,
        follow: bool,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let loc = if path.is_empty() {
            match at {
                At::Fd(f) => f.location().ok_or(Errno::EPERM)?,
                At::Cwd => ctx.cwd.clone(),
            }
        } else {
            self.lookup(ctx, at, path, follow, src)?
        };
        overlay_node(&loc)?.chown(uid, gid)
    }

    /// `truncate(2)`.
    pub fn truncate(
        &self,
        ctx: &FsContext,
        path: &[u8],
        len: i64,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        if len < 0 {
            return Err(Errno::EINVAL.because("negative length"));
        }
        let loc = self.lookup(ctx, At::Cwd, path, true, src)?;
        match &loc {
            Location::Overlay(n) => n.truncate(len as u64),
            _ if loc.is_dir() => Err(Errno::EISDIR),
            _ => Err(Errno::EACCES.because("synthetic filesystem is read-only")),
        }
    }

    /// `utimensat(2)`; an empty `path` means the file `at` (futimens).
    #[allow(clippy::too_many_arguments)]
    pub fn utimens(
        &self,
        ctx: &FsContext,
        at: At<'_>,
        path: &[u8],
        atime: UtimeSpec,
        mtime: UtimeSpec,
        follow: bool,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let loc = if path.is_empty() {
            match at {
                At::Fd(f) => f.location().ok_or(Errno::EPERM)?,
                At::Cwd => return Err(Errno::ENOENT),
            }
        } else {
            self.lookup(ctx, at, path, follow, src)?
        };
        if atime == UtimeSpec::Omit && mtime == UtimeSpec::Omit {
            return Ok(());
        }
        let now = Timespec::now();
        overlay_node(&loc)?.set_times(atime.resolve(now), mtime.resolve(now))
    }

    /// `chdir(2)`.
    pub fn chdir(&self, ctx: &mut FsContext, path: &[u8], src: &dyn ProcSource) -> SysResult<()> {
        let loc = self.lookup(ctx, At::Cwd, path, true, src)?;
        if !loc.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        ctx.cwd = loc;
        Ok(())
    }

    /// `fchdir(2)`.
    pub fn fchdir(&self, ctx: &mut FsContext, f: &FileDescription) -> SysResult<()> {
        match f.location() {
            Some(l) if l.is_dir() => {
                ctx.cwd = l;
                Ok(())
            }
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// `chroot(2)` (permission checks are the caller's).
    pub fn chroot(&self, ctx: &mut FsContext, path: &[u8], src: &dyn ProcSource) -> SysResult<()> {
        let loc = self.lookup(ctx, At::Cwd, path, true, src)?;
        if !loc.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        ctx.root = loc;
        Ok(())
    }

    /// `getcwd(2)`: the cwd's path from the caller's root; `ENOENT` if it
    /// was removed.
    pub fn getcwd(&self, ctx: &FsContext, src: &dyn ProcSource) -> SysResult<Vec<u8>> {
        Resolver::new(self, &ctx.root, src).path_of_dir(&ctx.cwd)
    }

    /// `/proc/<pid>/cwd` target for a context.
    pub fn cwd_path(&self, ctx: &FsContext, src: &dyn ProcSource) -> Vec<u8> {
        self.getcwd(ctx, src)
            .unwrap_or_else(|_| b"(unreachable)".to_vec())
    }
}
