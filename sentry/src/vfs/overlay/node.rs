//! An overlay node: one file, directory or symlink of the merged tree.
//!
//! A node that comes from the lower layer keeps the relative host path it
//! was found at (`lower`) and reads its data from there until it is
//! *copied up*: then its data lives in memory (`data`) and the host file is
//! never consulted again. Metadata (mode, owner, times, link count) is
//! taken from the host once, at lookup, and is sentry state from then on;
//! nothing is ever written to the host. Compare Linux fs/overlayfs/copy_up.c.
//!
//! Identity: a node from the lower layer reports the host's `st_dev` and
//! `st_ino` (kept after copy-up, like overlayfs with `xino`); a node
//! created in the sandbox gets the overlay's synthetic device and an inode
//! number from the overlay's counter.
//!
//! Shared mappings: the pages `MAP_SHARED` mappings fault are kept in
//! `NodeState::shared` ([`SharedPages`]), authoritative for their range:
//! reads, writes and truncates go through them.
//!
//! Lock order: `Overlay::tree` → parent `Node::state` → child
//! `Node::state` → `Node::lower_file`; `MemoryManager` → `Node::state` →
//! `MemoryFile` (shared pages).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::mm::{MemoryFile, PAGE_SIZE};
use crate::vfs::lock::FileLocks;
use crate::vfs::overlay::budget::Budget;
use crate::vfs::overlay::lower;
use crate::vfs::overlay::shared_pages::SharedPages;
use crate::vfs::overlay::Layers;
use crate::vfs::pipe::Pipe;
use crate::vfs::stat::{FileType, Stat, Timespec};

/// Largest file the overlay holds in memory (copy-up or writes): 4 GiB.
pub const MAX_FILE_SIZE: u64 = 1 << 32;

/// A node of the merged tree.
#[derive(Debug, Stateify)]
pub struct Node {
    /// Guest-visible `st_ino`; immutable.
    pub(crate) ino: u64,
    /// Guest-visible `st_dev`; immutable.
    pub(crate) dev: u64,
    /// The overlay's shared parts: the lower layer (for reads of data not
    /// yet copied up) and the upper layer's budget.
    pub(crate) layers: Arc<Layers>,
    /// Everything mutable. Lock order: see module docs.
    pub(crate) state: Mutex<NodeState>,
    /// Host file of the lower data, opened on first read. Host-only: not
    /// saved; reopened lazily by `state.lower` after restore, refusing a
    /// host file whose size or mtime differ from the saved ones (see
    /// [`Node::lower_file`]).
    #[state(nosave)]
    lower_file: Mutex<Option<Arc<File>>>,
    /// Advisory locks (`flock`, `fcntl`) on this file.
    pub(crate) locks: FileLocks,
}

/// The mutable part of a [`Node`], protected by `Node::state`.
#[derive(Debug, Stateify)]
pub struct NodeState {
    pub ftype: FileType,
    /// Permission bits (`07777`).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub rdev: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Relative host path this node came from, if any.
    pub lower: Option<Vec<u8>>,
    /// Size of the lower file (meaningful while not copied up).
    pub lower_size: u64,
    /// The lower file's host `st_blocks` (512-byte units actually
    /// allocated: sparse files and file-system overhead make it differ
    /// from the size), reported while the data is the host's.
    pub lower_blocks: u64,
    /// Data (and, for directories, entries) are authoritative in memory.
    pub copied_up: bool,
    /// Regular-file contents once copied up; its length is the file size
    /// (also while pages are shared). Stale where `shared` has a page.
    pub data: Vec<u8>,
    /// Pages of the file mapped by `MAP_SHARED` mappings: authoritative
    /// for their range (see `shared_pages.rs`).
    pub shared: SharedPages,
    /// Symlink target (read from the host on first use for lower links).
    pub target: Option<Vec<u8>>,
    /// Directory state, for directories.
    pub dir: Option<DirState>,
    /// The pipe of a FIFO, created by its first open.
    pub fifo: Option<Arc<Pipe>>,
}

/// A directory's merged view.
#[derive(Debug, Default, Stateify)]
pub struct DirState {
    /// The directory containing this one (empty `Weak` for the root).
    /// Not saved (a `Weak` per directory would make every directory a
    /// forward object of the state graph); `Overlay::relink` (the
    /// overlay's after_load) rebuilds it by walking the tree from the root.
    #[state(nosave)]
    pub parent: Weak<Node>,
    /// This directory's name in `parent`.
    pub name: Vec<u8>,
    /// Entries looked up from the lower layer or created in the upper one;
    /// they shadow lower entries of the same name.
    pub entries: BTreeMap<Vec<u8>, Arc<Node>>,
    /// Lower entries deleted in the sandbox.
    pub whiteouts: BTreeSet<Vec<u8>>,
    /// The lower directory is not merged (it was replaced).
    pub opaque: bool,
    /// Removed by `rmdir`: no lookups or creations any more.
    pub removed: bool,
}

/// One entry of a merged directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Stateify)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    /// `None` when the host did not say (`DT_UNKNOWN`).
    pub ftype: Option<FileType>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere already; the data is still
    // structurally valid (every mutation leaves it consistent), go on.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resizes file data to `len`, zero-filling, charging the overlay's
/// budget; `ENOSPC` past the budget or when the host cannot provide the
/// memory (the overlay is the sandbox's disk: a full disk is what the
/// guest should see), never an abort of the sentry.
fn resize(budget: &Budget, data: &mut Vec<u8>, len: usize) -> SysResult<()> {
    let cur = data.len();
    if len > cur {
        budget.charge((len - cur) as u64)?;
        if data.try_reserve_exact(len - cur).is_err() {
            budget.credit((len - cur) as u64);
            return Err(Errno::ENOSPC.because("host memory exhausted"));
        }
    } else {
        budget.credit((cur - len) as u64);
    }
    data.resize(len, 0);
    if data.capacity() > 2 * len.max(4096) {
        data.shrink_to_fit();
    }
    Ok(())
}

impl Node {
    /// A node for the lower entry at `rel` whose host `lstat` is `st`.
    pub(crate) fn from_lower(
        layers: &Arc<Layers>,
        rel: Vec<u8>,
        st: &Stat,
        parent: Weak<Node>,
        name: &[u8],
    ) -> SysResult<Arc<Node>> {
        let ftype = st
            .file_type()
            .ok_or(Errno::EIO.because("lower file of unknown type"))?;
        let dir = (ftype == FileType::Directory).then(|| DirState {
            parent,
            name: name.to_vec(),
            ..DirState::default()
        });
        Ok(Arc::new(Node {
            ino: st.ino,
            dev: st.dev,
            layers: layers.clone(),
            state: Mutex::new(NodeState {
                ftype,
                perm: st.mode & 0o7777,
                uid: st.uid,
                gid: st.gid,
                nlink: st.nlink,
                rdev: st.rdev,
                atime: st.atime,
                mtime: st.mtime,
                ctime: st.ctime,
                lower: Some(rel),
                lower_size: st.size.max(0) as u64,
                lower_blocks: st.blocks.max(0) as u64,
                copied_up: false,
                data: Vec::new(),
                shared: SharedPages::default(),
                target: None,
                dir,
                fifo: None,
            }),
            lower_file: Mutex::new(None),
            locks: FileLocks::default(),
        }))
    }

    /// A new upper-only node.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_upper(
        layers: &Arc<Layers>,
        ino: u64,
        dev: u64,
        ftype: FileType,
        perm: u32,
        uid: u32,
        gid: u32,
        target: Option<Vec<u8>>,
        parent: Weak<Node>,
        name: &[u8],
    ) -> Arc<Node> {
        let now = Timespec::now();
        let dir = (ftype == FileType::Directory).then(|| DirState {
            parent,
            name: name.to_vec(),
            opaque: true,
            ..DirState::default()
        });
        Arc::new(Node {
            ino,
            dev,
            layers: layers.clone(),
            state: Mutex::new(NodeState {
                ftype,
                perm: perm & 0o7777,
                uid,
                gid,
                nlink: if ftype == FileType::Directory { 2 } else { 1 },
                rdev: 0,
                atime: now,
                mtime: now,
                ctime: now,
                lower: None,
                lower_size: 0,
                lower_blocks: 0,
                copied_up: true,
                data: Vec::new(),
                shared: SharedPages::default(),
                target,
                dir,
                fifo: None,
            }),
            lower_file: Mutex::new(None),
            locks: FileLocks::default(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, NodeState> {
        lock(&self.state)
    }

    /// The guest-visible inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The guest-visible device number.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The node's file type.
    pub fn file_type(&self) -> FileType {
        self.lock().ftype
    }

    /// Whether the node's data lives in memory.
    pub fn is_copied_up(&self) -> bool {
        self.lock().copied_up
    }

    /// `stat(2)` of this node.
    pub fn stat(&self) -> Stat {
        let s = self.lock();
        let size = match s.ftype {
            FileType::Regular if s.copied_up => s.data.len() as u64,
            FileType::Regular => s.lower_size,
            FileType::Symlink => s.target.as_ref().map_or(s.lower_size, |t| t.len() as u64),
            FileType::Directory => 4096,
            _ => 0,
        };
        Stat {
            dev: self.dev,
            ino: self.ino,
            nlink: s.nlink,
            mode: s.ftype.mode_bits() | s.perm,
            uid: s.uid,
            gid: s.gid,
            rdev: s.rdev,
            size: size as i64,
            blksize: 4096,
            blocks: if s.lower.is_some() && !(s.ftype == FileType::Regular && s.copied_up) {
                // The host's allocation (Linux reports what the file
                // system allocated, e.g. `ls -s` and `ls -l`'s "total").
                s.lower_blocks as i64
            } else {
                size.div_ceil(512) as i64
            },
            atime: s.atime,
            mtime: s.mtime,
            ctime: s.ctime,
        }
    }

    /// The file size in bytes.
    pub fn size(&self) -> u64 {
        self.stat().size as u64
    }

    /// The host file of a node not yet copied up, opened on first use.
    /// `size` and `mtime` are the node's (saved) metadata, which equal the
    /// host's until copy-up; a host file that changed behind the sandbox's
    /// back (typically: between checkpoint and restore) is refused with
    /// `EIO` rather than silently mixed with saved state.
    fn lower_file(&self, rel: &[u8], size: u64, mtime: Timespec) -> SysResult<Arc<File>> {
        let mut f = lock(&self.lower_file);
        if let Some(f) = &*f {
            return Ok(f.clone());
        }
        let file = self.layers.host.open_file(rel)?;
        let st = rustix::fs::fstat(&file).map_err(lower::host_errno)?;
        let host = Stat::from_host(&st);
        if host.size as u64 != size || host.mtime != mtime {
            tracing::warn!(
                path = %String::from_utf8_lossy(rel),
                "lower file changed since it was first seen (size or mtime); refusing it"
            );
            return Err(Errno::EIO.because("lower file changed since checkpoint"));
        }
        let file = Arc::new(file);
        *f = Some(file.clone());
        Ok(file)
    }

    /// Reads file data at `off` (shared pages, where there are some, then
    /// the in-memory data or the lower file).
    pub fn read_at(&self, off: u64, buf: &mut [u8]) -> SysResult<usize> {
        let s = self.lock();
        if s.ftype != FileType::Regular {
            return Err(Errno::EINVAL.because("read of a non-regular overlay node"));
        }
        if !s.shared.is_empty() {
            // Keep the lock: the pages and the data must be read at once.
            return self.read_locked(&s, off, buf);
        }
        if s.copied_up {
            return self.read_locked(&s, off, buf);
        }
        let Some(rel) = s.lower.clone() else {
            return Ok(0);
        };
        let (size, mtime) = (s.lower_size, s.mtime);
        drop(s);
        let f = self.lower_file(&rel, size, mtime)?;
        f.read_at(buf, off)
            .map_err(|_| Errno::EIO.because("host read of lower file failed"))
    }

    /// Reads file data at `off` with the state locked.
    fn read_locked(&self, s: &NodeState, off: u64, buf: &mut [u8]) -> SysResult<usize> {
        let n = if s.copied_up {
            let len = s.data.len() as u64;
            if off >= len {
                return Ok(0);
            }
            let n = buf.len().min((len - off) as usize);
            buf[..n].copy_from_slice(&s.data[off as usize..off as usize + n]);
            n
        } else {
            let Some(rel) = &s.lower else {
                return Ok(0);
            };
            let f = self.lower_file(rel, s.lower_size, s.mtime)?;
            f.read_at(buf, off)
                .map_err(|_| Errno::EIO.because("host read of lower file failed"))?
        };
        s.shared.read_into(off, &mut buf[..n])?;
        Ok(n)
    }

    /// The memory-file page backing page `index` of the file for a
    /// `MAP_SHARED` mapping, with one reference for the caller's
    /// page-table entry (created from the file's contents on first use;
    /// see [`SharedPages`]). `ENXIO` if the page lies wholly beyond the
    /// end of file (the fault is `SIGBUS`), `ENOMEM` if the memory file
    /// cannot grow.
    pub fn shared_page(&self, mf: &Arc<MemoryFile>, index: u64) -> SysResult<u64> {
        let mut s = self.lock();
        if s.ftype != FileType::Regular {
            return Err(Errno::ENODEV.because("shared mapping of a non-regular node"));
        }
        let size = if s.copied_up {
            s.data.len() as u64
        } else {
            s.lower_size
        };
        if index.saturating_mul(PAGE_SIZE) >= size {
            return Err(Errno::ENXIO.because("shared page beyond the end of file"));
        }
        let mut page = Vec::new();
        if s.shared.page(index).is_none() {
            page.resize(PAGE_SIZE as usize, 0u8);
            let mut done = 0;
            while done < page.len() {
                let at = index * PAGE_SIZE + done as u64;
                let n = self.read_locked(&s, at, &mut page[done..])?;
                if n == 0 {
                    break;
                }
                done += n;
            }
        }
        s.shared.get_or_create(mf, index, |buf| {
            buf.copy_from_slice(&page);
            Ok(())
        })
    }

    /// Number of the file's pages held for shared mappings.
    pub fn shared_pages(&self) -> usize {
        self.lock().shared.len()
    }

    /// Copies the node up: from now on its data and metadata are sentry
    /// memory. Idempotent. Linux: fs/overlayfs/copy_up.c.
    pub fn copy_up(&self) -> SysResult<()> {
        let mut s = self.lock();
        self.copy_up_locked(&mut s)
    }

    pub(crate) fn copy_up_locked(&self, s: &mut NodeState) -> SysResult<()> {
        if s.copied_up {
            return Ok(());
        }
        match s.ftype {
            FileType::Regular => {
                let Some(rel) = s.lower.clone() else {
                    s.copied_up = true;
                    return Ok(());
                };
                if s.lower_size > MAX_FILE_SIZE {
                    return Err(Errno::EFBIG.because("lower file too large to copy up"));
                }
                let f = self.lower_file(&rel, s.lower_size, s.mtime)?;
                let mut data = Vec::new();
                resize(&self.layers.budget, &mut data, s.lower_size as usize)?;
                let mut done = 0;
                while done < data.len() {
                    match f.read_at(&mut data[done..], done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(_) => return Err(Errno::EIO.because("copy-up read failed")),
                    }
                }
                if done < data.len() {
                    // The host file shrank under us: give back the rest.
                    self.layers.budget.credit((data.len() - done) as u64);
                    data.truncate(done);
                }
                s.data = data;
            }
            FileType::Symlink if s.target.is_none() => {
                if let Some(rel) = &s.lower {
                    s.target = Some(self.layers.host.readlink(rel)?);
                }
            }
            _ => {}
        }
        s.copied_up = true;
        Ok(())
    }

    /// Writes `buf` at `off` (copying up first), extending the file.
    pub fn write_at(&self, off: u64, buf: &[u8]) -> SysResult<usize> {
        let mut s = self.lock();
        self.write_locked(&mut s, off, buf)
    }

    /// Appends `buf` at the end; returns (bytes written, new end offset).
    pub fn append(&self, buf: &[u8]) -> SysResult<(usize, u64)> {
        let mut s = self.lock();
        self.copy_up_locked(&mut s)?;
        let off = s.data.len() as u64;
        let n = self.write_locked(&mut s, off, buf)?;
        Ok((n, off + n as u64))
    }

    fn write_locked(&self, s: &mut NodeState, off: u64, buf: &[u8]) -> SysResult<usize> {
        if s.ftype != FileType::Regular {
            return Err(Errno::EINVAL.because("write to a non-regular overlay node"));
        }
        self.copy_up_locked(s)?;
        let end = off
            .checked_add(buf.len() as u64)
            .ok_or(Errno::EFBIG.because("write past the maximum offset"))?;
        if end > MAX_FILE_SIZE {
            return Err(Errno::EFBIG.because("overlay file size limit"));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if (s.data.len() as u64) < end {
            s.shared.grow(s.data.len() as u64, end)?;
            resize(&self.layers.budget, &mut s.data, end as usize)?;
        }
        s.data[off as usize..end as usize].copy_from_slice(buf);
        s.shared.write(off, buf)?;
        let now = Timespec::now();
        s.mtime = now;
        s.ctime = now;
        Ok(buf.len())
    }

    /// `truncate(2)` to `len` (copying up first).
    pub fn truncate(&self, len: u64) -> SysResult<()> {
        let mut s = self.lock();
        match s.ftype {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL.because("truncate of a non-regular file")),
        }
        if len > MAX_FILE_SIZE {
            return Err(Errno::EFBIG.because("overlay file size limit"));
        }
        self.copy_up_locked(&mut s)?;
        let old = s.data.len() as u64;
        if len > old {
            s.shared.grow(old, len)?;
        } else {
            s.shared.truncate(len)?;
        }
        resize(&self.layers.budget, &mut s.data, len as usize)?;
        let now = Timespec::now();
        s.mtime = now;
        s.ctime = now;
        Ok(())
    }

    /// The symlink's target.
    pub fn readlink(&self) -> SysResult<Vec<u8>> {
        let mut s = self.lock();
        if s.ftype != FileType::Symlink {
            return Err(Errno::EINVAL.because("not a symlink"));
        }
        if let Some(t) = &s.target {
            return Ok(t.clone());
        }
        let rel = s
            .lower
            .clone()
            .ok_or(Errno::EIO.because("symlink without target"))?;
        let t = self.layers.host.readlink(&rel)?;
        s.target = Some(t.clone());
        Ok(t)
    }

    /// `chmod(2)`: keeps the type, replaces the permission bits.
    pub fn chmod(&self, mode: u32) -> SysResult<()> {
        let mut s = self.lock();
        self.copy_up_locked(&mut s)?;
        s.perm = mode & 0o7777;
        s.ctime = Timespec::now();
        Ok(())
    }

    /// `chown(2)`; `None` leaves a field unchanged.
    pub fn chown(&self, uid: Option<u32>, gid: Option<u32>) -> SysResult<()> {
        let mut s = self.lock();
        self.copy_up_locked(&mut s)?;
        if let Some(u) = uid {
            s.uid = u;
        }
        if let Some(g) = gid {
            s.gid = g;
        }
        s.ctime = Timespec::now();
        Ok(())
    }

    /// `utimensat(2)`: `None` leaves a time unchanged.
    pub fn set_times(&self, atime: Option<Timespec>, mtime: Option<Timespec>) -> SysResult<()> {
        let mut s = self.lock();
        self.copy_up_locked(&mut s)?;
        if let Some(a) = atime {
            s.atime = a;
        }
        if let Some(m) = mtime {
            s.mtime = m;
        }
        s.ctime = Timespec::now();
        Ok(())
    }

    /// The directory containing this directory (`None` for the root or a
    /// non-directory).
    pub fn parent(&self) -> Option<Arc<Node>> {
        self.lock().dir.as_ref().and_then(|d| d.parent.upgrade())
    }

    /// This directory's name in its parent.
    pub fn dir_name(&self) -> Option<Vec<u8>> {
        self.lock().dir.as_ref().map(|d| d.name.clone())
    }

    /// The FIFO's pipe (created on first use); `None` for other files.
    pub fn fifo_pipe(&self) -> Option<Arc<Pipe>> {
        let mut s = self.lock();
        if s.ftype != FileType::Fifo {
            return None;
        }
        Some(s.fifo.get_or_insert_with(Pipe::new).clone())
    }

    /// Whether this is the root of the overlay (the only directory with an
    /// empty name: every other one was found or created under a name).
    pub fn is_overlay_root(&self) -> bool {
        self.lock().dir.as_ref().is_some_and(|d| d.name.is_empty())
    }

    /// Whether this directory was removed.
    pub fn is_removed_dir(&self) -> bool {
        self.lock().dir.as_ref().is_some_and(|d| d.removed)
    }

    /// Looks `name` up in this directory (a single, already validated
    /// component: not `.`, `..` or containing `/`).
    pub fn lookup(self: &Arc<Node>, name: &[u8]) -> SysResult<Arc<Node>> {
        let mut s = self.lock();
        let lower_dir = s.lower.clone();
        let Some(dir) = s.dir.as_mut() else {
            return Err(Errno::ENOTDIR);
        };
        if dir.removed {
            return Err(Errno::ENOENT.because("directory was removed"));
        }
        if let Some(n) = dir.entries.get(name) {
            return Ok(n.clone());
        }
        if dir.whiteouts.contains(name) || dir.opaque {
            return Err(Errno::ENOENT);
        }
        let Some(lower_dir) = lower_dir else {
            return Err(Errno::ENOENT);
        };
        let rel = lower::join(&lower_dir, name);
        let st = self.layers.host.lstat(&rel)?;
        let node = Node::from_lower(&self.layers, rel, &st, Arc::downgrade(self), name)?;
        dir.entries.insert(name.to_vec(), node.clone());
        Ok(node)
    }

    /// Whether the lower directory of this (merged) directory has `name`.
    pub(crate) fn lower_has(&self, s: &NodeState, name: &[u8]) -> bool {
        let Some(dir) = &s.dir else { return false };
        if dir.opaque {
            return false;
        }
        match &s.lower {
            Some(l) => self.layers.host.lstat(&lower::join(l, name)).is_ok(),
            None => false,
        }
    }

    /// The merged listing (without `.` and `..`): upper and looked-up
    /// entries, then lower entries not shadowed or whited out.
    pub fn list(&self) -> SysResult<Vec<DirEntry>> {
        let s = self.lock();
        let Some(dir) = &s.dir else {
            return Err(Errno::ENOTDIR);
        };
        if dir.removed {
            return Ok(Vec::new());
        }
        let mut out: Vec<DirEntry> = Vec::new();
        if let (Some(l), false) = (&s.lower, dir.opaque) {
            for e in self.layers.host.list(l)? {
                if dir.whiteouts.contains(&e.name) || dir.entries.contains_key(&e.name) {
                    continue;
                }
                out.push(DirEntry {
                    name: e.name,
                    ino: e.ino,
                    ftype: e.ftype,
                });
            }
        }
        let entries: Vec<(Vec<u8>, Arc<Node>)> = dir
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        drop(s);
        for (name, n) in entries {
            out.push(DirEntry {
                name,
                ino: n.ino,
                ftype: Some(n.file_type()),
            });
        }
        Ok(out)
    }
}

impl Drop for Node {
    /// The node's data leaves the overlay with it.
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        self.layers.budget.credit(s.data.len() as u64);
        s.shared.release();
    }
}
