//! `MappedFile`: a cheap-to-clone handle to a file's contents, for the
//! memory manager (file-backed VMAs) and the ELF loader.
//!
//! A `MappedFile` names the *file*, not an open file description: it keeps
//! no offset and no status flags, and it stays valid after the fd it was
//! obtained from is closed (like the `vm_file` reference a Linux VMA
//! holds; compare mm/mmap.c). Reads see the file's current contents,
//! including stores through shared mappings of an overlay file.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::overlay::Node;

/// A handle to the contents of a regular file.
#[derive(Clone, Debug, Stateify)]
pub struct MappedFile {
    inner: Arc<MappedInner>,
}

#[derive(Debug, Stateify)]
enum MappedInner {
    /// A host file opened read-only (the overlay's lower layer, or a file
    /// opened directly by the sentry for tests and tools).
    Host(HostMapped),
    /// A regular file of the overlay root filesystem (lower data read from
    /// the host until copied up, then from memory).
    Overlay { node: Arc<Node>, name: String },
}

#[derive(Debug, Stateify)]
struct HostMapped {
    /// Host path, to reopen after restore.
    path: PathBuf,
    /// The open host file. Host-only: not saved; reopened lazily by `path`
    /// (refused if it is no longer the same file).
    #[state(nosave)]
    file: OnceLock<File>,
    /// The path the guest knows the file by (for `/proc/<pid>/maps`).
    name: String,
    ino: u64,
    dev: u64,
}

impl HostMapped {
    fn file(&self) -> SysResult<&File> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let f = File::open(&self.path)
            .map_err(|_| Errno::EIO.because("mapped host file gone after restore"))?;
        let md = f
            .metadata()
            .map_err(|_| Errno::EIO.because("host fstat of mapped file failed"))?;
        if md.ino() != self.ino || md.dev() != self.dev {
            return Err(Errno::EIO.because("mapped host file replaced after restore"));
        }
        Ok(self.file.get_or_init(|| f))
    }
}

impl MappedFile {
    /// Opens the host file at `path` read-only. For tests and tools: guest
    /// opens go through [`crate::vfs`] path resolution instead.
    pub fn open_host(path: &Path) -> std::io::Result<MappedFile> {
        let file = File::open(path)?;
        let md = file.metadata()?;
        Ok(MappedFile {
            inner: Arc::new(MappedInner::Host(HostMapped {
                path: path.to_path_buf(),
                file: OnceLock::from(file),
                name: path.to_string_lossy().into_owned(),
                ino: md.ino(),
                dev: md.dev(),
            })),
        })
    }

    /// A handle to the overlay file `node`, known to the guest as `name`.
    pub fn overlay(node: Arc<Node>, name: String) -> MappedFile {
        MappedFile {
            inner: Arc::new(MappedInner::Overlay { node, name }),
        }
    }

    /// Reads up to `buf.len()` bytes at `off`; returns 0 at or past the end.
    pub fn read_at(&self, off: u64, buf: &mut [u8]) -> SysResult<usize> {
        match &*self.inner {
            MappedInner::Host(h) => h
                .file()?
                .read_at(buf, off)
                .map_err(|_| Errno::EIO.because("host read of mapped file failed")),
            MappedInner::Overlay { node, .. } => node.read_at(off, buf),
        }
    }

    /// The file's current size in bytes.
    pub fn size(&self) -> SysResult<u64> {
        match &*self.inner {
            MappedInner::Host(h) => h
                .file()?
                .metadata()
                .map(|m| m.len())
                .map_err(|_| Errno::EIO.because("host fstat of mapped file failed")),
            MappedInner::Overlay { node, .. } => Ok(node.size()),
        }
    }

    /// The path shown in `/proc/<pid>/maps`.
    pub fn path_name(&self) -> String {
        match &*self.inner {
            MappedInner::Host(h) => h.name.clone(),
            MappedInner::Overlay { name, .. } => name.clone(),
        }
    }

    /// The inode number the guest sees in `stat` and `/proc/<pid>/maps`.
    pub fn ino(&self) -> u64 {
        match &*self.inner {
            MappedInner::Host(h) => h.ino,
            MappedInner::Overlay { node, .. } => node.ino(),
        }
    }

    /// The device number the guest sees.
    pub fn dev(&self) -> u64 {
        match &*self.inner {
            MappedInner::Host(h) => h.dev,
            MappedInner::Overlay { node, .. } => node.dev(),
        }
    }

    /// The overlay node of an overlay file (`None` for a host file): a
    /// `MAP_SHARED` mapping maps the node's shared pages
    /// ([`Node::shared_page`]).
    pub fn overlay_node(&self) -> Option<&Arc<Node>> {
        match &*self.inner {
            MappedInner::Host(_) => None,
            MappedInner::Overlay { node, .. } => Some(node),
        }
    }

    /// Whether `self` and `other` are handles to the same file.
    pub fn same_file(&self, other: &MappedFile) -> bool {
        self.dev() == other.dev() && self.ino() == other.ino()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_contents_at_offsets_and_reports_size() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"hello, mapped world").unwrap();
        let m = MappedFile::open_host(f.path()).unwrap();
        let mut buf = [0u8; 6];
        assert_eq!(m.read_at(7, &mut buf).unwrap(), 6);
        assert_eq!(&buf, b"mapped");
        assert_eq!(m.size().unwrap(), 19);
        assert_eq!(m.read_at(19, &mut buf).unwrap(), 0);
        let md = std::fs::metadata(f.path()).unwrap();
        assert_eq!(m.ino(), md.ino());
        assert_eq!(m.path_name(), f.path().to_string_lossy());
    }
}
