//! `Location`: a place in the sandbox's file tree (the analogue of a
//! Linux `struct path`: a dentry in a mount), where path resolution
//! starts, walks and ends.

use std::sync::Arc;

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::dev::DevNode;
use crate::vfs::file::FileDescription;
use crate::vfs::overlay::{DirEntry, Node};
use crate::vfs::proc::{ProcNode, ProcSource};
use crate::vfs::stat::{FileType, Stat};

/// A file or directory in one of the three mounts: the overlay root
/// filesystem, `/dev` or `/proc`.
#[derive(Clone, Debug, Stateify)]
pub enum Location {
    Overlay(Arc<Node>),
    Dev(DevNode),
    Proc(ProcNode),
    /// An open file reached through a `/proc/<pid>/fd` magic link that has
    /// no place in the tree (a pipe, a host file). Never a directory.
    File(Arc<FileDescription>),
}

impl PartialEq for Location {
    fn eq(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Overlay(a), Location::Overlay(b)) => Arc::ptr_eq(a, b),
            (Location::Dev(a), Location::Dev(b)) => a == b,
            (Location::Proc(a), Location::Proc(b)) => a == b,
            (Location::File(a), Location::File(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Location {
    /// The file type.
    pub fn file_type(&self) -> FileType {
        match self {
            Location::Overlay(n) => n.file_type(),
            Location::Dev(d) => d.file_type(),
            Location::Proc(p) => p.file_type(),
            Location::File(f) => f.file_type(),
        }
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    /// `stat(2)`.
    pub fn stat(&self, src: &dyn ProcSource) -> Stat {
        match self {
            Location::Overlay(n) => n.stat(),
            Location::Dev(d) => d.stat(),
            Location::Proc(p) => p.stat(src),
            Location::File(f) => f.fstat(src).unwrap_or_default(),
        }
    }

    /// A symlink's target.
    pub fn readlink(&self, src: &dyn ProcSource) -> SysResult<Vec<u8>> {
        match self {
            Location::Overlay(n) => n.readlink(),
            Location::Dev(d) => d.readlink(),
            Location::Proc(p) => p.readlink(src),
            Location::File(_) => Err(Errno::EINVAL.because("not a symlink")),
        }
    }

    /// Looks up one component (not `.`/`..`) in this directory, without
    /// crossing mount points (the resolver does that).
    pub(crate) fn lookup_child(&self, name: &[u8], src: &dyn ProcSource) -> SysResult<Location> {
        match self {
            Location::Overlay(n) => n.lookup(name).map(Location::Overlay),
            Location::Dev(d) => d.lookup(name).map(Location::Dev),
            Location::Proc(p) => p.lookup(name, src).map(Location::Proc),
            Location::File(_) => Err(Errno::ENOTDIR),
        }
    }

    /// A directory's listing (without `.` and `..`).
    pub fn list(&self, src: &dyn ProcSource) -> SysResult<Vec<DirEntry>> {
        let conv = |v: Vec<(Vec<u8>, u64, FileType)>| {
            v.into_iter()
                .map(|(name, ino, t)| DirEntry {
                    name,
                    ino,
                    ftype: Some(t),
                })
                .collect()
        };
        match self {
            Location::Overlay(n) if n.is_overlay_root() => {
                // `/dev` and `/proc` are mounts: list them with their own
                // identity, whether or not the host directory has them.
                let mut v: Vec<DirEntry> = n
                    .list()?
                    .into_iter()
                    .filter(|e| e.name != b"dev" && e.name != b"proc")
                    .collect();
                for (name, ino) in [
                    (b"dev".to_vec(), DevNode::Root.ino()),
                    (b"proc".to_vec(), ProcNode::Root.ino()),
                ] {
                    v.push(DirEntry {
                        name,
                        ino,
                        ftype: Some(FileType::Directory),
                    });
                }
                Ok(v)
            }
            Location::Overlay(n) => n.list(),
            Location::Dev(DevNode::Root) => Ok(conv(DevNode::list())),
            Location::Dev(_) => Err(Errno::ENOTDIR),
            Location::Proc(p) => p.list(src).map(conv),
            Location::File(_) => Err(Errno::ENOTDIR),
        }
    }

    /// The overlay node, if this is one.
    pub fn overlay_node(&self) -> Option<&Arc<Node>> {
        match self {
            Location::Overlay(n) => Some(n),
            _ => None,
        }
    }
}
