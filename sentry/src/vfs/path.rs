//! Path resolution, done by the sentry one component at a time.
//! Linux: fs/namei.c (`link_path_walk`, `walk_component`, `follow_dotdot`,
//! `nd_jump_root`), path_resolution(7).
//!
//! - Absolute paths and absolute symlink targets start at the caller's
//!   root (the sandbox root), relative ones at the starting directory.
//! - `..` never goes above the caller's root; at a mount root it crosses
//!   to the mount point's parent (`/dev/..` is `/`).
//! - At most [`MAXSYMLINKS`] symlinks per resolution (`ELOOP`).
//! - A trailing `/` requires a directory (and follows a final symlink).
//! - `ENAMETOOLONG` for paths of `PATH_MAX` bytes or more and components
//!   over `NAME_MAX`.
//!
//! The host is never handed a path: every lookup is a [`Location`]
//! method on one component.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::vfs::dev::DevNode;
use crate::vfs::location::Location;
use crate::vfs::proc::{ProcNode, ProcSource};
use crate::vfs::stat::FileType;
use crate::vfs::Vfs;

/// Symlinks followed per resolution before `ELOOP` (Linux `MAXSYMLINKS`).
pub const MAXSYMLINKS: u32 = 40;
/// `PATH_MAX`, including the terminating NUL.
pub const PATH_MAX: usize = 4096;
/// `NAME_MAX`.
pub const NAME_MAX: usize = 255;

/// One resolution: the caller's root, the proc source, the symlink count.
pub struct Resolver<'a> {
    vfs: &'a Vfs,
    root: &'a Location,
    src: &'a dyn ProcSource,
    links: u32,
}

/// The result of resolving all but the last component.
#[derive(Debug)]
pub struct ParentAndName {
    /// The directory that would contain the last component.
    pub dir: Location,
    /// The last component; `.` or `..` are returned as such, and an empty
    /// path made only of slashes (`/`) gives `.`.
    pub name: Vec<u8>,
    /// The path ended with `/`.
    pub trailing_slash: bool,
}

fn split(path: &[u8]) -> VecDeque<Vec<u8>> {
    path.split(|&c| c == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn check_path(path: &[u8]) -> SysResult<()> {
    if path.is_empty() {
        return Err(Errno::ENOENT.because("empty path"));
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl<'a> Resolver<'a> {
    /// A resolver for a caller whose root is `root`.
    pub fn new(vfs: &'a Vfs, root: &'a Location, src: &'a dyn ProcSource) -> Resolver<'a> {
        Resolver {
            vfs,
            root,
            src,
            links: 0,
        }
    }

    /// Counts one more symlink followed.
    pub fn count_link(&mut self) -> SysResult<()> {
        self.links += 1;
        if self.links > MAXSYMLINKS {
            return Err(Errno::ELOOP);
        }
        Ok(())
    }

    /// The caller's root.
    pub fn root(&self) -> &Location {
        self.root
    }

    /// `..` of `cur`: never above the root; across mount roots.
    pub fn parent(&self, cur: &Location) -> Location {
        if cur == self.root {
            return cur.clone();
        }
        match cur {
            Location::Overlay(n) if Arc::ptr_eq(n, self.vfs.shm()) => Location::Dev(DevNode::Root),
            Location::Overlay(n) => match n.parent() {
                Some(p) => Location::Overlay(p),
                None => cur.clone(),
            },
            Location::Dev(DevNode::Root) | Location::Proc(ProcNode::Root) => {
                Location::Overlay(self.vfs.overlay().root().clone())
            }
            Location::Dev(_) => Location::Dev(DevNode::Root),
            Location::Proc(p) => Location::Proc(p.parent().unwrap_or(ProcNode::Root)),
            // Not a directory: walks check that before `..`.
            Location::File(_) => cur.clone(),
        }
    }

    /// Looks `name` (not `.`/`..`) up in `cur`, crossing into `/dev` and
    /// `/proc` at the overlay root.
    pub fn child(&self, cur: &Location, name: &[u8]) -> SysResult<Location> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if cur == &Location::Dev(DevNode::Root) && name == b"shm" {
            return Ok(Location::Overlay(self.vfs.shm().clone()));
        }
        if let Location::Overlay(n) = cur {
            if Arc::ptr_eq(n, self.vfs.overlay().root()) {
                match name {
                    b"dev" => return Ok(Location::Dev(DevNode::Root)),
                    b"proc" => return Ok(Location::Proc(ProcNode::Root)),
                    _ => {}
                }
            }
        }
        cur.lookup_child(name, self.src)
    }

    /// Follows a `/proc/<pid>/fd/<n>` "magic" link: its target is the open
    /// file itself, not the path its text names (Linux `proc_fd_link`).
    /// `None` for other symlinks, or when the kernel offers no file.
    pub fn magic_link(&self, link: &Location) -> Option<Location> {
        let Location::Proc(ProcNode::Fd(pid, fd)) = link else {
            return None;
        };
        let f = self.src.fd_file(*pid, *fd)?;
        Some(f.location().unwrap_or(Location::File(f)))
    }

    /// Walks `comps` from `cur`. The last component is followed if it is
    /// a symlink and `follow_last` or `must_dir`.
    fn walk_comps(
        &mut self,
        mut cur: Location,
        mut comps: VecDeque<Vec<u8>>,
        follow_last: bool,
        mut must_dir: bool,
    ) -> SysResult<Location> {
        while let Some(c) = comps.pop_front() {
            if !cur.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            if c.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            if c == b"." {
                continue;
            }
            if c == b".." {
                cur = self.parent(&cur);
                continue;
            }
            let next = self.child(&cur, &c)?;
            let is_last = comps.is_empty();
            if next.file_type() == FileType::Symlink && (!is_last || follow_last || must_dir) {
                self.count_link()?;
                if let Some(open) = self.magic_link(&next) {
                    cur = open;
                    continue;
                }
                let target = next.readlink(self.src)?;
                if target.is_empty() {
                    return Err(Errno::ENOENT.because("empty symlink"));
                }
                if target[0] == b'/' {
                    cur = self.root.clone();
                }
                if is_last && target.ends_with(b"/") {
                    must_dir = true;
                }
                for t in split(&target).into_iter().rev() {
                    comps.push_front(t);
                }
                continue;
            }
            cur = next;
        }
        if must_dir && !cur.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(cur)
    }

    /// Resolves `path` from `start` (ignored for absolute paths).
    pub fn resolve(
        &mut self,
        start: &Location,
        path: &[u8],
        follow_last: bool,
    ) -> SysResult<Location> {
        check_path(path)?;
        let cur = if path[0] == b'/' {
            self.root.clone()
        } else {
            start.clone()
        };
        let must_dir = path.ends_with(b"/");
        self.walk_comps(cur, split(path), follow_last, must_dir)
    }

    /// Resolves all of `path` but its last component, which must then be
    /// a directory.
    pub fn resolve_parent(&mut self, start: &Location, path: &[u8]) -> SysResult<ParentAndName> {
        check_path(path)?;
        let cur = if path[0] == b'/' {
            self.root.clone()
        } else {
            start.clone()
        };
        let trailing_slash = path.ends_with(b"/");
        let mut comps = split(path);
        let name = comps.pop_back().unwrap_or_else(|| b".".to_vec());
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let dir = self.walk_comps(cur, comps, true, true)?;
        Ok(ParentAndName {
            dir,
            name,
            trailing_slash,
        })
    }

    /// The sandbox path of a directory `loc` as seen from the root
    /// (`getcwd`); `ENOENT` if it was removed.
    pub fn path_of_dir(&self, loc: &Location) -> SysResult<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        let mut cur = loc.clone();
        loop {
            if &cur == self.root {
                break;
            }
            match &cur {
                Location::Overlay(n) if Arc::ptr_eq(n, self.vfs.shm()) => {
                    names.push(b"shm".to_vec());
                    cur = Location::Dev(DevNode::Root);
                }
                Location::Overlay(n) => {
                    if n.is_removed_dir() {
                        return Err(Errno::ENOENT.because("directory was removed"));
                    }
                    match (n.parent(), n.dir_name()) {
                        (Some(p), Some(name)) => {
                            names.push(name);
                            cur = Location::Overlay(p);
                        }
                        // The overlay root: the caller's root is elsewhere
                        // (below it); Linux shows the path from the real root.
                        _ => break,
                    }
                }
                Location::Dev(DevNode::Root) => {
                    names.push(b"dev".to_vec());
                    cur = Location::Overlay(self.vfs.overlay().root().clone());
                }
                Location::Proc(ProcNode::Root) => {
                    names.push(b"proc".to_vec());
                    cur = Location::Overlay(self.vfs.overlay().root().clone());
                }
                Location::Proc(ProcNode::PidDir(pid)) => {
                    names.push(pid.to_string().into_bytes());
                    cur = Location::Proc(ProcNode::Root);
                }
                Location::Proc(ProcNode::FdDir(pid)) => {
                    names.push(b"fd".to_vec());
                    cur = Location::Proc(ProcNode::PidDir(*pid));
                }
                _ => return Err(Errno::ENOTDIR),
            }
        }
        let mut out = Vec::new();
        for n in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(n);
        }
        if out.is_empty() {
            out.push(b'/');
        }
        Ok(out)
    }
}

/// Joins a directory path and a name.
pub fn join_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}
