//! `MemoryFile`: the memfd that holds all guest memory of a sandbox.
//!
//! One per sandbox, shared (`Arc`) by every address space. Pages of the
//! file are handed out by a reference-counted allocator (see
//! [`super::page_alloc`]); address spaces map them into stubs through the
//! platform (`Context::map` with file offsets), and the sentry reads and
//! writes them through its own fixed window (see [`super::memfile_map`]).
//!
//! Lock order: `MemoryManager` lock → `MemoryFile::alloc`. The window
//! needs no lock (offsets are validated against its mapped length).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use checkpoints::Stateify;
use rustix::fs::{FallocateFlags, MemfdFlags};

use super::lazy::{ChunkLost, LazyMemory, RunWriter};
use super::memfile_map::FileWindow;
use super::page_alloc::{Fresh, PageAllocator};
use crate::errno::{Errno, SysResult};

/// Page size of the guest ABI (x86-64).
pub const PAGE_SIZE: u64 = 4096;

/// Default address-space reservation for the sentry's window (64 GiB):
/// the largest the memory file may grow.
pub const DEFAULT_CAPACITY: u64 = 64 << 30;

/// The file grows in steps of this many bytes (sparse: `ftruncate` costs
/// nothing until pages are touched).
const GROW_STEP: u64 = 64 << 20;

/// Errors creating a memory file.
#[derive(Debug, thiserror::Error)]
pub enum MemoryFileError {
    #[error("memfd_create failed")]
    Create(#[source] std::io::Error),
    #[error("cannot reserve {bytes} bytes of sentry address space")]
    Reserve {
        bytes: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot grow the memory file to {bytes} bytes")]
    Grow {
        bytes: u64,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Stateify)]
struct Alloc {
    pages: PageAllocator,
    /// Current `ftruncate`d length of the memfd, bytes. Host state: a
    /// restored file starts empty and `after_load` grows it.
    #[state(nosave)]
    file_len: u64,
}

/// The host side of a memory file: the memfd and the sentry's mapping.
struct Host {
    fd: OwnedFd,
    window: FileWindow,
}

impl Host {
    fn create(capacity: u64) -> Result<Host, MemoryFileError> {
        let fd = rustix::fs::memfd_create("sbx-memory", MemfdFlags::CLOEXEC)
            .map_err(|e| MemoryFileError::Create(e.into()))?;
        let window = FileWindow::reserve(capacity).map_err(|source| MemoryFileError::Reserve {
            bytes: capacity,
            source,
        })?;
        Ok(Host { fd, window })
    }

    /// `init` of the `nosave` host after a restore: a fresh, empty memfd
    /// (the checkpoint's memory section is then written into it). If the
    /// host refuses, an unusable stand-in (`/dev/null`, empty window) is
    /// returned and logged, so that every later access fails with an error
    /// instead of the restore panicking.
    fn for_restore() -> Host {
        match Host::create(DEFAULT_CAPACITY) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("cannot create the restored memory file: {e}");
                match std::fs::File::open("/dev/null").map(OwnedFd::from) {
                    Ok(fd) => Host {
                        fd,
                        window: FileWindow::empty(),
                    },
                    // Without even a file descriptor there is nothing to
                    // degrade to; this is host exhaustion, not guest input.
                    Err(e) => panic!("no file descriptor available during restore: {e}"),
                }
            }
        }
    }
}

/// All guest memory of one sandbox.
///
/// Checkpoint: the allocator state is part of the kernel state graph (this
/// type derives `Stateify`); the *contents* of [`MemoryFile::used_ranges`]
/// go to the image's memory section (read them with
/// [`MemoryFile::slice`]). Restore: the state graph rebuilds the object
/// with a new, empty memfd grown to the saved length (`after_load`); the
/// restore then installs a [`LazyMemory`] table of the image's chunks
/// ([`MemoryFile::set_lazy`]), which every access path below consults, so
/// the saved contents are copied in before anything reads, writes, maps or
/// frees them (see `super::lazy`).
#[derive(Stateify)]
#[state(after_load = "after_load")]
pub struct MemoryFile {
    /// The memfd and the sentry's window. Host-only: rebuilt empty on
    /// restore by `Host::for_restore`, sized by `after_load`.
    #[state(nosave, init = "Host::for_restore")]
    host: Host,
    /// Allocator state; lock after any `MemoryManager` lock.
    alloc: Mutex<Alloc>,
    /// Chunks of a restore's image not copied in yet. Set once, right
    /// after a restore decoded the state and before any guest code runs;
    /// empty for a sandbox that was not restored. Its chunk locks are
    /// taken either with no other lock of this file held, or inside
    /// `alloc` (`decref`); loading never takes `alloc`.
    #[state(nosave, init = "OnceLock::new")]
    lazy: OnceLock<Arc<LazyMemory>>,
}

impl std::fmt::Debug for MemoryFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryFile")
            .field("mapped", &self.host.window.mapped_len())
            .finish_non_exhaustive()
    }
}

impl MemoryFile {
    /// Creates an empty memory file that can grow to [`DEFAULT_CAPACITY`].
    pub fn new() -> Result<Arc<MemoryFile>, MemoryFileError> {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// Creates an empty memory file that can grow to `capacity` bytes.
    pub fn with_capacity(capacity: u64) -> Result<Arc<MemoryFile>, MemoryFileError> {
        Ok(Arc::new(Self::create(capacity, PageAllocator::new())?))
    }

    fn create(capacity: u64, pages: PageAllocator) -> Result<MemoryFile, MemoryFileError> {
        let mf = MemoryFile {
            host: Host::create(capacity)?,
            alloc: Mutex::new(Alloc { pages, file_len: 0 }),
            lazy: OnceLock::new(),
        };
        {
            let mut a = mf.lock();
            let need = a.pages.end() * PAGE_SIZE;
            mf.grow_to(&mut a, need)
                .map_err(|source| MemoryFileError::Grow {
                    bytes: need,
                    source,
                })?;
        }
        Ok(mf)
    }

    /// Grows the new memfd to the restored allocator's length.
    fn after_load(&self) {
        let mut a = self.lock();
        let need = a.pages.end() * PAGE_SIZE;
        if let Err(e) = self.grow_to(&mut a, need) {
            tracing::error!("cannot grow the restored memory file to {need} bytes: {e}");
        }
    }

    /// Installs the table of chunks still in the image (once, before any
    /// guest code runs). Returns `false` if one was installed already.
    pub fn set_lazy(&self, lazy: Arc<LazyMemory>) -> bool {
        self.lazy.set(lazy).is_ok()
    }

    /// The lazy table of a restored memory file, if any.
    pub fn lazy(&self) -> Option<&Arc<LazyMemory>> {
        self.lazy.get()
    }

    /// Runs `f` with the lazy table and the writer that fills the window
    /// from it; `none` for a memory file that was not restored.
    fn with_lazy<R>(&self, none: R, f: impl FnOnce(&LazyMemory, RunWriter<'_>) -> R) -> R {
        match self.lazy.get() {
            Some(l) => f(l, &|o, d| self.fill(o, d)),
            None => none,
        }
    }

    /// Writes a loaded run straight into the window (no lazy check: the
    /// loader is the one filling it).
    fn fill(&self, off: u64, data: &[u8]) -> std::io::Result<()> {
        if self.host.window.write(off, data) {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "run at {off:#x}+{:#x} is outside the memory file",
                data.len()
            )))
        }
    }

    /// Makes `[off, off+len)` hold its saved contents (lazy restore); a
    /// no-op once everything is loaded, and for sandboxes never restored.
    #[inline]
    fn ensure_loaded(&self, off: u64, len: u64) -> Result<(), ChunkLost> {
        self.with_lazy(Ok(()), |l, w| l.ensure(off, len, w))
    }

    /// Before mapping `[off, off+len)` into a stub: its saved contents
    /// must be there. `ChunkLost` if they cannot be loaded.
    pub fn prepare_map(&self, off: u64, len: u64) -> Result<(), ChunkLost> {
        self.ensure_loaded(off, len)
    }

    /// Loads the next pending chunk of a lazy restore; `false` when none
    /// is left (the background loader's loop).
    pub fn load_next_chunk(&self) -> bool {
        self.with_lazy(false, |l, w| l.load_next(w))
    }

    /// Loads every pending chunk now.
    pub fn load_all(&self) -> Result<(), ChunkLost> {
        self.with_lazy(Ok(()), |l, w| l.load_all(w))
    }

    /// Makes sure the window covers `[off, off+len)` when that range is
    /// inside the allocator's pages (a restored file whose growth was not
    /// done yet); cheap when already mapped.
    fn ensure_mapped(&self, off: u64, len: u64) {
        let Some(end) = off.checked_add(len) else {
            return;
        };
        if end <= self.host.window.mapped_len() {
            return;
        }
        let mut a = self.lock();
        let pages_end = a.pages.end() * PAGE_SIZE;
        if end <= pages_end {
            if let Err(e) = self.grow_to(&mut a, pages_end) {
                tracing::error!("cannot grow the memory file to {pages_end} bytes: {e}");
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Alloc> {
        // A panic while holding the lock leaves consistent-enough counts
        // (each operation updates them before host calls); keep going.
        self.alloc.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn grow_to(&self, a: &mut Alloc, bytes: u64) -> std::io::Result<()> {
        if bytes <= a.file_len {
            return Ok(());
        }
        let new_len = bytes.div_ceil(GROW_STEP) * GROW_STEP;
        rustix::fs::ftruncate(&self.host.fd, new_len)?;
        self.host.window.extend(self.host.fd.as_fd(), new_len)?;
        a.file_len = new_len;
        Ok(())
    }

    /// The memfd, for the platform to map pages into stubs (it dups or
    /// re-opens it as it needs; the sentry keeps ownership).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.host.fd.as_fd()
    }

    /// Allocates `npages` contiguous pages with reference count 1 and
    /// returns the byte offset of the first. With `zeroed` the pages read
    /// as zero; otherwise their contents are unspecified (the caller
    /// overwrites them). `ENOMEM` when the file cannot grow.
    pub fn allocate(&self, npages: u64, zeroed: bool) -> SysResult<u64> {
        if npages == 0 {
            return Err(Errno::EINVAL.because("empty memory-file allocation"));
        }
        let mut a = self.lock();
        let (first, fresh) = a.pages.alloc(npages);
        let need = a.pages.end() * PAGE_SIZE;
        if self.grow_to(&mut a, need).is_err() {
            a.pages.decref(first, npages);
            return Err(Errno::ENOMEM.because("memory file cannot grow"));
        }
        let off = first * PAGE_SIZE;
        if zeroed && fresh == Fresh::Dirty {
            self.host.window.zero(off, npages * PAGE_SIZE);
        }
        Ok(off)
    }

    /// Adds a reference to each page of `[off, off + npages pages)`.
    pub fn incref(&self, off: u64, npages: u64) {
        self.lock().pages.incref(off / PAGE_SIZE, npages);
    }

    /// Drops a reference to each page of the range; pages that reach zero
    /// are freed (kept resident for reuse; holes are punched in batches).
    pub fn decref(&self, off: u64, npages: u64) {
        let mut a = self.lock();
        self.load_before_free(&a, off / PAGE_SIZE, npages);
        a.pages.decref(off / PAGE_SIZE, npages);
        for (s, l) in a.pages.punch_candidates() {
            if self.punch(s, l) {
                a.pages.mark_clean(s, l);
            }
        }
    }

    /// Lazy restore: the pages of `[first, first+npages)` that this
    /// decref frees (reference count 1) may be reused at once, so their
    /// pending contents must be in place before, never land in the next
    /// owner's page later. Pages still shared stay pending: a forked child
    /// exiting does not load its parent's memory. Runs with the allocator
    /// lock held, so no other decref or incref changes the counts in
    /// between (the chunk locks taken here nest inside it; the loader
    /// never takes the allocator lock). A lost chunk being freed has
    /// nothing to keep.
    fn load_before_free(&self, a: &Alloc, first: u64, npages: u64) {
        self.with_lazy((), |lazy, write| {
            if lazy.is_complete() {
                return;
            }
            let mut p = 0;
            while p < npages {
                if a.pages.refcount(first + p) != 1 {
                    p += 1;
                    continue;
                }
                let start = p;
                while p < npages && a.pages.refcount(first + p) == 1 {
                    p += 1;
                }
                let _ = lazy.ensure((first + start) * PAGE_SIZE, (p - start) * PAGE_SIZE, write);
            }
        })
    }

    /// Releases the host memory of every free page now.
    pub fn flush_free(&self) {
        let mut a = self.lock();
        for (s, l) in a.pages.all_dirty() {
            if self.punch(s, l) {
                a.pages.mark_clean(s, l);
            }
        }
    }

    fn punch(&self, first: u64, npages: u64) -> bool {
        rustix::fs::fallocate(
            &self.host.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            first * PAGE_SIZE,
            npages * PAGE_SIZE,
        )
        .map_err(|e| tracing::warn!("punching memory-file pages failed: {e}"))
        .is_ok()
    }

    /// Sets how many free-but-resident pages may accumulate before holes
    /// are punched (default 256 MiB worth).
    pub fn set_punch_threshold(&self, pages: u64) {
        self.lock().pages.set_punch_threshold(pages);
    }

    /// Reference count of the page at byte offset `off` (0 = free).
    pub fn refcount(&self, off: u64) -> u32 {
        self.lock().pages.refcount(off / PAGE_SIZE)
    }

    /// Length in bytes of the allocated part of the file (every used range
    /// lies below it): the size of the view a checkpoint writer takes with
    /// `slice(0, size())`.
    pub fn size(&self) -> u64 {
        self.lock().pages.end() * PAGE_SIZE
    }

    /// Bytes in use (pages with a non-zero reference count).
    pub fn used_bytes(&self) -> u64 {
        self.lock().pages.used_pages() * PAGE_SIZE
    }

    /// Bytes of free pages that still hold host memory.
    pub fn dirty_free_bytes(&self) -> u64 {
        self.lock().pages.dirty_free() * PAGE_SIZE
    }

    /// The used ranges `(offset, len)` in bytes, ascending and coalesced:
    /// what a checkpoint must save.
    pub fn used_ranges(&self) -> Vec<(u64, u64)> {
        let runs = self.lock().pages.ref_runs();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (s, l, _) in runs {
            let (off, len) = (s * PAGE_SIZE, l * PAGE_SIZE);
            match out.last_mut() {
                Some((o, ll)) if *o + *ll == off => *ll += len,
                _ => out.push((off, len)),
            }
        }
        out
    }

    /// Copies guest memory at file offset `off` into `buf`.
    pub fn read(&self, off: u64, buf: &mut [u8]) -> SysResult<()> {
        self.ensure_loaded(off, buf.len() as u64).map_err(lost)?;
        self.ensure_mapped(off, buf.len() as u64);
        self.host
            .window
            .read(off, buf)
            .then_some(())
            .ok_or(Errno::EFAULT.because("memory-file offset out of range"))
    }

    /// Copies `data` to file offset `off`.
    pub fn write(&self, off: u64, data: &[u8]) -> SysResult<()> {
        self.ensure_loaded(off, data.len() as u64).map_err(lost)?;
        self.ensure_mapped(off, data.len() as u64);
        self.host
            .window
            .write(off, data)
            .then_some(())
            .ok_or(Errno::EFAULT.because("memory-file offset out of range"))
    }

    /// Zeroes `len` bytes at `off`.
    pub fn zero(&self, off: u64, len: u64) -> SysResult<()> {
        self.ensure_loaded(off, len).map_err(lost)?;
        self.host
            .window
            .zero(off, len)
            .then_some(())
            .ok_or(Errno::EFAULT.because("memory-file offset out of range"))
    }

    /// Copies one page (copy-on-write).
    pub fn copy_page(&self, src: u64, dst: u64) -> SysResult<()> {
        self.ensure_loaded(src, PAGE_SIZE).map_err(lost)?;
        self.ensure_loaded(dst, PAGE_SIZE).map_err(lost)?;
        self.host
            .window
            .copy(src, dst, PAGE_SIZE)
            .then_some(())
            .ok_or(Errno::EFAULT.because("memory-file offset out of range"))
    }

    /// A read-only view of `[off, off+len)` for the checkpoint writer.
    /// Take it only while every stub is stopped (the bytes are shared with
    /// guest code). `None` if the range is beyond the file or holds memory
    /// a lazy restore lost (logged).
    pub fn slice(&self, off: u64, len: u64) -> Option<&[u8]> {
        self.ensure_loaded(off, len).ok()?;
        self.ensure_mapped(off, len);
        self.host.window.slice(off, len)
    }
}

/// A load failure seen by the sentry: the guest memory is gone, `EIO`
/// (the loader logged which chunk and why).
fn lost(_: ChunkLost) -> Errno {
    Errno::EIO.because("guest memory could not be loaded from the image")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Arc<MemoryFile> {
        MemoryFile::with_capacity(1 << 30).unwrap()
    }

    #[test]
    fn reused_pages_are_zeroed_when_asked() {
        let mf = small();
        let a = mf.allocate(1, true).unwrap();
        mf.write(a, b"secret").unwrap();
        mf.decref(a, 1);
        let b = mf.allocate(1, true).unwrap();
        let mut buf = [1u8; 6];
        mf.read(b, &mut buf).unwrap();
        assert_eq!(b, a);
        assert_eq!(buf, [0u8; 6]);
    }

    #[test]
    fn punch_releases_contents_after_threshold() {
        let mf = small();
        mf.set_punch_threshold(2);
        let a = mf.allocate(4, true).unwrap();
        mf.write(a + 3 * PAGE_SIZE, b"xyz").unwrap();
        mf.decref(a, 4);
        // Read the stale page directly: punched pages read as zero.
        let mut buf = [9u8; 3];
        mf.read(a + 3 * PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 3]);
        assert_eq!(mf.dirty_free_bytes(), 0);
    }

    #[test]
    fn below_threshold_freed_pages_keep_contents() {
        let mf = small();
        let a = mf.allocate(1, true).unwrap();
        mf.write(a, b"warm").unwrap();
        mf.decref(a, 1);
        let mut buf = [0u8; 4];
        mf.read(a, &mut buf).unwrap();
        assert_eq!(&buf, b"warm");
        assert_eq!(mf.dirty_free_bytes(), PAGE_SIZE);
    }

    #[test]
    fn out_of_range_access_is_efault_not_panic() {
        let mf = small();
        let mut buf = [0u8; 8];
        assert_eq!(
            mf.read(u64::MAX - 2, &mut buf).unwrap_err().code(),
            libc::EFAULT
        );
        assert_eq!(mf.write(1 << 40, &buf).unwrap_err().code(), libc::EFAULT);
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn memory_file_round_trips_through_the_state_graph() {
        let mf = MemoryFile::with_capacity(1 << 30).unwrap();
        let a = mf.allocate(3, true).unwrap();
        mf.incref(a, 1);
        mf.decref(a + 2 * PAGE_SIZE, 1);
        mf.write(a + PAGE_SIZE, b"page one").unwrap();
        let saved = checkpoints::state::save(&mf).unwrap();
        let back: Arc<MemoryFile> = checkpoints::state::load(&saved).unwrap();
        for (off, len) in mf.used_ranges() {
            back.write(off, mf.slice(off, len).unwrap()).unwrap();
        }
        let mut buf = [0u8; 8];
        back.read(a + PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(back.used_ranges(), mf.used_ranges());
        assert_eq!(back.refcount(a), 2);
        assert_eq!(&buf, b"page one");
        assert_eq!(back.allocate(1, true).unwrap(), a + 2 * PAGE_SIZE);
        assert_ne!(back.fd().as_raw_fd(), mf.fd().as_raw_fd());
    }

    /// A lazily restored copy of `mf`: the state graph round trip, then a
    /// table with one chunk per used page whose loader copies from `mf`.
    struct FromOriginal {
        mf: Arc<MemoryFile>,
        pages: Vec<u64>,
        loads: Mutex<Vec<usize>>,
    }

    impl crate::mm::lazy::ChunkLoad for FromOriginal {
        fn load(
            &self,
            index: usize,
            write: crate::mm::lazy::RunWriter<'_>,
        ) -> Result<(), crate::mm::lazy::ChunkLoadError> {
            self.loads.lock().unwrap().push(index);
            let off = self.pages[index];
            write(off, self.mf.slice(off, PAGE_SIZE).ok_or("gone")?)?;
            Ok(())
        }
    }

    fn lazy_copy(mf: &Arc<MemoryFile>) -> (Arc<MemoryFile>, Arc<FromOriginal>) {
        let back: Arc<MemoryFile> =
            checkpoints::state::load(&checkpoints::state::save(mf).unwrap()).unwrap();
        let pages: Vec<u64> = mf
            .used_ranges()
            .into_iter()
            .flat_map(|(o, l)| (o..o + l).step_by(PAGE_SIZE as usize))
            .collect();
        let src = Arc::new(FromOriginal {
            mf: mf.clone(),
            pages: pages.clone(),
            loads: Mutex::new(Vec::new()),
        });
        let table = pages.iter().map(|&p| vec![(p, PAGE_SIZE)]).collect();
        let lazy = LazyMemory::new(table, back.size(), src.clone()).unwrap();
        assert!(back.set_lazy(Arc::new(lazy)));
        (back, src)
    }

    #[test]
    fn every_access_path_loads_pending_pages_first() {
        let mf = MemoryFile::with_capacity(1 << 30).unwrap();
        let a = mf.allocate(6, true).unwrap();
        for i in 0..6 {
            mf.write(a + i * PAGE_SIZE, format!("page {i}").as_bytes())
                .unwrap();
        }
        let (back, src) = lazy_copy(&mf);
        let loads = || src.loads.lock().unwrap().len();
        assert_eq!(loads(), 0, "nothing is loaded before it is needed");
        // read
        let mut buf = [0u8; 6];
        back.read(a + 2 * PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(&buf, b"page 2");
        assert_eq!(*src.loads.lock().unwrap(), vec![2]);
        // write into a pending page keeps the rest of it
        back.write(a + 3 * PAGE_SIZE + 5, b"X").unwrap();
        back.read(a + 3 * PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(&buf, b"page X");
        // copy-on-write copy from a pending page
        let n = back.allocate(1, false).unwrap();
        back.copy_page(a + 4 * PAGE_SIZE, n).unwrap();
        back.read(n, &mut buf).unwrap();
        assert_eq!(&buf, b"page 4");
        // a freed pending page is loaded before reuse, so its saved bytes
        // can never land in the next owner's page later
        back.decref(a + 5 * PAGE_SIZE, 1);
        let r = back.allocate(1, true).unwrap();
        assert_eq!(r, a + 5 * PAGE_SIZE);
        assert!(back.lazy().unwrap().stats().loaded_on_access >= 4);
        while back.load_next_chunk() {}
        back.read(r, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 6], "reused page stays zeroed");
        // the mapping path and the checkpoint view see everything
        back.prepare_map(a, PAGE_SIZE).unwrap();
        assert!(back.lazy().unwrap().is_complete());
        let view = back.slice(a, PAGE_SIZE).unwrap();
        assert_eq!(&view[..6], b"page 0");
        let mut loaded = src.loads.lock().unwrap().clone();
        loaded.sort();
        assert_eq!(loaded, vec![0, 1, 2, 3, 4, 5], "each chunk once");
    }

    #[test]
    fn freeing_loads_only_pages_that_are_really_freed() {
        let mf = MemoryFile::with_capacity(1 << 30).unwrap();
        let a = mf.allocate(2, true).unwrap();
        mf.write(a, b"shared").unwrap();
        mf.incref(a, 1); // page 0 has two owners (a fork), page 1 one
        let (back, src) = lazy_copy(&mf);
        back.decref(a, 1); // the child's reference: page 0 stays in use
        assert!(
            src.loads.lock().unwrap().is_empty(),
            "nothing freed, nothing loaded"
        );
        back.decref(a, 2); // page 0 and page 1 are freed now
        let mut loaded = src.loads.lock().unwrap().clone();
        loaded.sort();
        assert_eq!(loaded, vec![0, 1]);
        // The next owner of the freed page gets zeroes, never the old bytes.
        let r = back.allocate(1, true).unwrap();
        while back.load_next_chunk() {}
        let mut buf = [9u8; 6];
        back.read(r, &mut buf).unwrap();
        assert_eq!(buf, [0u8; 6]);
    }

    #[test]
    fn checkpoint_view_of_a_lazy_file_loads_everything() {
        let mf = MemoryFile::with_capacity(1 << 30).unwrap();
        let a = mf.allocate(3, true).unwrap();
        mf.write(a + 2 * PAGE_SIZE, b"tail").unwrap();
        let (back, _src) = lazy_copy(&mf);
        let all = back.slice(0, back.size()).unwrap();
        assert_eq!(&all[(a + 2 * PAGE_SIZE) as usize..][..4], b"tail");
        assert!(back.lazy().unwrap().is_complete());
    }
}
