//! The root filesystem: a host directory seen read-only through an
//! in-memory writable overlay.
//!
//! The merged tree is made of [`Node`]s. Directories hold the entries the
//! sandbox looked up or created (`entries`, shadowing the lower layer),
//! whiteouts for lower entries it deleted, and an `opaque` flag for
//! directories that replaced a lower one. Regular files are copied up
//! (their whole data read into memory) on the first write, truncate,
//! chmod, chown, utimes or hard link. The host directory is only ever
//! opened read-only. The pages `MAP_SHARED` mappings of a file fault are
//! kept per node (`shared_pages.rs`) and are that file range's contents
//! from then on. Compare Linux fs/overlayfs (dir.c for the namespace
//! operations, readdir.c for the merged listing).
//!
//! Lock order: `Overlay::tree` → `Node::state` (parent before child; a
//! rename locks one directory at a time under `tree`).

pub mod budget;
pub mod lower;
pub mod node;
pub mod shared_pages;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::stat::{FileType, Timespec};
use lower::HostRoot;
pub use node::{DirEntry, Node};

/// The synthetic device number of nodes created in the sandbox.
/// (`dev_make(0, 0x2b)`: an anonymous device, like overlayfs's own.)
pub const OVERLAY_DEV: u64 = 0x2b;
/// First synthetic inode number; far above typical host inode numbers of
/// the same magnitude, and on a different device anyway.
const FIRST_UPPER_INO: u64 = 1 << 40;

/// What to create with [`Overlay::create`].
#[derive(Clone, Debug)]
pub enum NewNode {
    Regular,
    Directory,
    Symlink(Vec<u8>),
    /// A Unix socket's name (`bind(2)`); opening it is `ENXIO`.
    Socket,
    /// A named pipe (`mkfifo(3)`).
    Fifo,
}

/// Errors opening the lower layer.
#[derive(Debug, thiserror::Error)]
pub enum OverlayNewError {
    #[error("cannot open the root directory {path}")]
    OpenRoot {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the root {path} is not a directory")]
    NotADirectory { path: std::path::PathBuf },
}

/// What every node of one overlay shares: the lower layer and the upper
/// layer's memory budget.
#[derive(Debug, Stateify)]
pub struct Layers {
    pub host: HostRoot,
    pub budget: budget::Budget,
}

/// The overlay filesystem.
#[derive(Debug, Stateify)]
#[state(after_load = "relink")]
pub struct Overlay {
    layers: Arc<Layers>,
    root: Arc<Node>,
    /// Serializes namespace changes (create, link, unlink, rmdir, rename);
    /// the analogue of Linux's `s_vfs_rename_mutex` plus directory
    /// `i_rwsem`s. Lookups do not take it. A host lock with nothing in it:
    /// not saved (a checkpoint is taken with every task parked outside).
    #[state(nosave)]
    tree: Mutex<()>,
    /// Next synthetic inode number.
    next_ino: AtomicU64,
}

fn check_name(name: &[u8]) -> SysResult<()> {
    if name.is_empty() || name.contains(&b'/') {
        return Err(Errno::EINVAL.because("bad path component"));
    }
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl Overlay {
    /// An overlay over the host directory `root_dir`.
    pub fn new(root_dir: &Path) -> Result<Overlay, OverlayNewError> {
        let open_err = |source| OverlayNewError::OpenRoot {
            path: root_dir.to_path_buf(),
            source,
        };
        let host = HostRoot::open(root_dir).map_err(open_err)?;
        let st = host
            .lstat(b"")
            .map_err(|e| open_err(std::io::Error::from_raw_os_error(e.code())))?;
        if st.file_type() != Some(FileType::Directory) {
            return Err(OverlayNewError::NotADirectory {
                path: root_dir.to_path_buf(),
            });
        }
        let layers = Arc::new(Layers {
            host,
            budget: budget::Budget::new(budget::Budget::default_limit()),
        });
        let root = Node::from_lower(&layers, Vec::new(), &st, std::sync::Weak::new(), b"")
            .map_err(|e| open_err(std::io::Error::from_raw_os_error(e.code())))?;
        Ok(Overlay {
            layers,
            root,
            tree: Mutex::new(()),
            next_ino: AtomicU64::new(FIRST_UPPER_INO),
        })
    }

    /// after_load: rebuilds the directories' parent pointers (not saved)
    /// by walking the tree from the root. Directories no longer in the
    /// tree (removed, but still someone's cwd) keep no parent: their `..`
    /// is themselves.
    fn relink(&self) {
        Self::relink_tree(&self.root);
    }

    /// Sets the parent pointer of every directory below `top`.
    pub(crate) fn relink_tree(top: &Arc<Node>) {
        let mut stack = vec![top.clone()];
        while let Some(dir) = stack.pop() {
            let children: Vec<Arc<Node>> = match &dir.lock().dir {
                Some(ds) => ds.entries.values().cloned().collect(),
                None => continue,
            };
            for c in children {
                let mut cs = c.lock();
                if let Some(cd) = cs.dir.as_mut() {
                    cd.parent = Arc::downgrade(&dir);
                    drop(cs);
                    stack.push(c);
                }
            }
        }
    }

    /// A new upper-only directory outside the tree (the root of a
    /// tmpfs-like mount such as `/dev/shm`), with a fixed identity.
    pub fn new_detached_dir(&self, name: &[u8], perm: u32, ino: u64, dev: u64) -> Arc<Node> {
        Node::new_upper(
            &self.layers,
            ino,
            dev,
            FileType::Directory,
            perm,
            0,
            0,
            None,
            std::sync::Weak::new(),
            name,
        )
    }

    /// The root directory.
    pub fn root(&self) -> &Arc<Node> {
        &self.root
    }

    /// Lower files the overlay still reads from the host (not copied up)
    /// whose host size or mtime differ from what the overlay recorded:
    /// after a restore, a non-empty answer means the root directory is
    /// not the one the checkpoint was taken over. Reads of those files
    /// fail with `EIO` anyway; this lets `restore` refuse early and say
    /// which files differ. Returns their host-relative paths.
    pub fn changed_lower_files(&self) -> Vec<Vec<u8>> {
        let mut changed = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(n) = stack.pop() {
            let (lower, ftype, copied_up, size, mtime, children) = {
                let s = n.lock();
                let children: Vec<Arc<Node>> = s
                    .dir
                    .as_ref()
                    .map(|d| d.entries.values().cloned().collect())
                    .unwrap_or_default();
                (
                    s.lower.clone(),
                    s.ftype,
                    s.copied_up,
                    s.lower_size,
                    s.mtime,
                    children,
                )
            };
            stack.extend(children);
            let Some(rel) = lower else { continue };
            if copied_up || ftype != FileType::Regular {
                continue;
            }
            let same = self
                .layers
                .host
                .lstat(&rel)
                .is_ok_and(|st| st.size as u64 == size && st.mtime == mtime);
            if !same {
                changed.push(rel);
            }
        }
        changed
    }

    /// The upper layer's memory budget.
    pub fn budget(&self) -> &budget::Budget {
        &self.layers.budget
    }

    /// The host directory under the overlay.
    pub fn host_root(&self) -> &Path {
        self.layers.host.path()
    }

    fn tree_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn alloc_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }

    /// Creates `name` in `dir`. EEXIST if it exists (in either layer).
    pub fn create(
        &self,
        dir: &Arc<Node>,
        name: &[u8],
        what: NewNode,
        perm: u32,
        uid: u32,
        gid: u32,
    ) -> SysResult<Arc<Node>> {
        check_name(name)?;
        let _t = self.tree_lock();
        match dir.lookup(name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(e) if e.code() == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
        let (ftype, target) = match what {
            NewNode::Regular => (FileType::Regular, None),
            NewNode::Directory => (FileType::Directory, None),
            NewNode::Symlink(t) => (FileType::Symlink, Some(t)),
            NewNode::Socket => (FileType::Socket, None),
            NewNode::Fifo => (FileType::Fifo, None),
        };
        let node = Node::new_upper(
            &self.layers,
            self.alloc_ino(),
            OVERLAY_DEV,
            ftype,
            perm,
            uid,
            gid,
            target,
            Arc::downgrade(dir),
            name,
        );
        let mut d = dir.lock();
        let now = Timespec::now();
        d.copied_up = true;
        d.mtime = now;
        d.ctime = now;
        if ftype == FileType::Directory {
            d.nlink += 1;
        }
        let ds = d.dir.as_mut().ok_or(Errno::ENOTDIR)?;
        if ds.removed {
            return Err(Errno::ENOENT.because("directory was removed"));
        }
        ds.whiteouts.remove(name);
        ds.entries.insert(name.to_vec(), node.clone());
        Ok(node)
    }

    /// Removes the entry `name` of `dir` (already looked up as `child`),
    /// leaving a whiteout if the lower layer has the name.
    /// Precondition: `tree` is held.
    fn remove_entry(&self, dir: &Arc<Node>, name: &[u8]) -> SysResult<()> {
        let mut d = dir.lock();
        let lower_has = dir.lower_has(&d, name);
        let now = Timespec::now();
        d.copied_up = true;
        d.mtime = now;
        d.ctime = now;
        let ds = d.dir.as_mut().ok_or(Errno::ENOTDIR)?;
        ds.entries.remove(name);
        if lower_has {
            ds.whiteouts.insert(name.to_vec());
        }
        Ok(())
    }

    /// `unlink(2)` of `name` in `dir`.
    pub fn unlink(&self, dir: &Arc<Node>, name: &[u8]) -> SysResult<()> {
        check_name(name)?;
        let _t = self.tree_lock();
        let child = dir.lookup(name)?;
        if child.file_type() == FileType::Directory {
            return Err(Errno::EISDIR);
        }
        self.remove_entry(dir, name)?;
        let mut c = child.lock();
        c.nlink = c.nlink.saturating_sub(1);
        c.ctime = Timespec::now();
        Ok(())
    }

    /// `rmdir(2)` of `name` in `dir`.
    pub fn rmdir(&self, dir: &Arc<Node>, name: &[u8]) -> SysResult<()> {
        check_name(name)?;
        let _t = self.tree_lock();
        let child = dir.lookup(name)?;
        if child.file_type() != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        if !child.list()?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.remove_entry(dir, name)?;
        {
            let mut d = dir.lock();
            d.nlink = d.nlink.saturating_sub(1);
        }
        let mut c = child.lock();
        c.nlink = 0;
        if let Some(ds) = c.dir.as_mut() {
            ds.removed = true;
        }
        Ok(())
    }

    /// `link(2)`: a new name for the non-directory `target` (copied up
    /// first, so both names share the in-memory data).
    pub fn link(&self, target: &Arc<Node>, dir: &Arc<Node>, name: &[u8]) -> SysResult<()> {
        check_name(name)?;
        let _t = self.tree_lock();
        if target.file_type() == FileType::Directory {
            return Err(Errno::EPERM.because("hard link to a directory"));
        }
        match dir.lookup(name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(e) if e.code() == libc::ENOENT => {}
            Err(e) => return Err(e),
        }
        {
            let mut t = target.lock();
            if t.nlink == 0 {
                return Err(Errno::ENOENT.because("link to an unlinked file"));
            }
            target.copy_up_locked(&mut t)?;
            t.nlink += 1;
            t.ctime = Timespec::now();
        }
        let mut d = dir.lock();
        let now = Timespec::now();
        d.copied_up = true;
        d.mtime = now;
        d.ctime = now;
        let ds = d.dir.as_mut().ok_or(Errno::ENOTDIR)?;
        if ds.removed {
            return Err(Errno::ENOENT.because("directory was removed"));
        }
        ds.whiteouts.remove(name);
        ds.entries.insert(name.to_vec(), target.clone());
        Ok(())
    }

    /// Whether `node` is `ancestor` or below it.
    fn is_descendant(node: &Arc<Node>, ancestor: &Arc<Node>) -> bool {
        let mut cur = node.clone();
        loop {
            if Arc::ptr_eq(&cur, ancestor) {
                return true;
            }
            match cur.parent() {
                Some(p) => cur = p,
                None => return false,
            }
        }
    }

    /// `renameat2(2)` without flags, or with `RENAME_NOREPLACE`.
    /// Linux: fs/namei.c `vfs_rename()`.
    pub fn rename(
        &self,
        old_dir: &Arc<Node>,
        old_name: &[u8],
        new_dir: &Arc<Node>,
        new_name: &[u8],
        noreplace: bool,
    ) -> SysResult<()> {
        check_name(old_name)?;
        check_name(new_name)?;
        let _t = self.tree_lock();
        let src = old_dir.lookup(old_name)?;
        let src_is_dir = src.file_type() == FileType::Directory;
        let dst = match new_dir.lookup(new_name) {
            Ok(n) => Some(n),
            Err(e) if e.code() == libc::ENOENT => None,
            Err(e) => return Err(e),
        };
        if new_dir.is_removed_dir() {
            return Err(Errno::ENOENT.because("target directory was removed"));
        }
        if let Some(dst) = &dst {
            if noreplace {
                return Err(Errno::EEXIST);
            }
            if Arc::ptr_eq(dst, &src) {
                // Same file (or hard links to it): nothing to do.
                return Ok(());
            }
            let dst_is_dir = dst.file_type() == FileType::Directory;
            match (src_is_dir, dst_is_dir) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !dst.list()?.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        if src_is_dir && Self::is_descendant(new_dir, &src) {
            return Err(Errno::EINVAL.because("rename of a directory into itself"));
        }
        // No data copy-up: a node keeps reading its lower data by its host
        // path, which the sandbox cannot change, wherever the node moves
        // (like overlayfs's `redirect_dir`/`metacopy`). Renaming a big lower
        // file costs nothing.
        self.remove_entry(old_dir, old_name)?;
        if let Some(dst) = &dst {
            let mut d = dst.lock();
            if d.ftype == FileType::Directory {
                d.nlink = 0;
                if let Some(ds) = d.dir.as_mut() {
                    ds.removed = true;
                }
            } else {
                d.nlink = d.nlink.saturating_sub(1);
            }
            d.ctime = Timespec::now();
        }
        if src_is_dir && !Arc::ptr_eq(old_dir, new_dir) {
            let mut o = old_dir.lock();
            o.nlink = o.nlink.saturating_sub(1);
        }
        {
            let mut n = new_dir.lock();
            let now = Timespec::now();
            n.copied_up = true;
            n.mtime = now;
            n.ctime = now;
            if src_is_dir && !Arc::ptr_eq(old_dir, new_dir) && dst.is_none() {
                n.nlink += 1;
            }
            let ds = n.dir.as_mut().ok_or(Errno::ENOTDIR)?;
            ds.whiteouts.remove(new_name);
            ds.entries.insert(new_name.to_vec(), src.clone());
        }
        let mut s = src.lock();
        s.ctime = Timespec::now();
        if let Some(ds) = s.dir.as_mut() {
            ds.parent = Arc::downgrade(new_dir);
            ds.name = new_name.to_vec();
        }
        Ok(())
    }
}
