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
use std::sync::{Arc, Mutex, MutexGuard};

use checkpoints::Stateify;
use rustix::fs::{FallocateFlags, MemfdFlags};

use super::memfile_map::FileWindow;
use super::page_alloc::{Fresh, PageAllocator, RefRuns};
use crate::errno::{Errno, SysResult};

/// Page size of the guest ABI (x86-64).
pub const PAGE_SIZE: u64 = 4096;

/// Default address-space reservation for the sentry's window (64 GiB):
/// the largest the memory file may grow.
pub const DEFAULT_CAPACITY: u64 = 64 << 30;

/// The file grows in steps of this many bytes (sparse: `ftruncate` costs
/// nothing until pages are touched).
const GROW_STEP: u64 = 64 << 20;

/// Errors creating or restoring a memory file.
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
    #[error("saved allocator state is inconsistent (a run ends past page {end})")]
    BadState { end: u64 },
    #[error("saved memory file of {bytes} bytes exceeds the capacity {capacity}")]
    TooLarge { bytes: u64, capacity: u64 },
}

/// The allocator state a checkpoint needs to rebuild a memory file: the
/// file length in pages and the reference count of every used page.
/// The *contents* of the used pages are saved separately (see
/// [`MemoryFile::used_ranges`] and [`MemoryFile::slice`]).
#[derive(Clone, Debug, PartialEq, Eq, Stateify)]
pub struct MemoryFileState {
    pub end_pages: u64,
    /// `(first page, pages, reference count)`, ascending, non-overlapping.
    pub refs: RefRuns,
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
/// image reader then writes the saved ranges with [`MemoryFile::write`]
/// before any stub runs.
#[derive(Stateify)]
#[state(after_load = "after_load")]
pub struct MemoryFile {
    /// The memfd and the sentry's window. Host-only: rebuilt empty on
    /// restore by `Host::for_restore`, sized by `after_load`.
    #[state(nosave, init = "Host::for_restore")]
    host: Host,
    /// Allocator state; lock after any `MemoryManager` lock.
    alloc: Mutex<Alloc>,
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

    /// Rebuilds a memory file from checkpointed allocator state. The new
    /// file reads as zero; the caller then writes the saved contents of
    /// the used ranges with [`MemoryFile::write`] before any stub runs.
    pub fn restore(state: &MemoryFileState) -> Result<Arc<MemoryFile>, MemoryFileError> {
        let bytes = state.end_pages.saturating_mul(PAGE_SIZE);
        if bytes > DEFAULT_CAPACITY {
            return Err(MemoryFileError::TooLarge {
                bytes,
                capacity: DEFAULT_CAPACITY,
            });
        }
        let pages = PageAllocator::from_runs(state.end_pages, &state.refs).ok_or(
            MemoryFileError::BadState {
                end: state.end_pages,
            },
        )?;
        Ok(Arc::new(Self::create(DEFAULT_CAPACITY, pages)?))
    }

    /// Grows the new memfd to the restored allocator's length.
    fn after_load(&self) {
        let mut a = self.lock();
        let need = a.pages.end() * PAGE_SIZE;
        if let Err(e) = self.grow_to(&mut a, need) {
            tracing::error!("cannot grow the restored memory file to {need} bytes: {e}");
        }
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

    /// The allocator state to checkpoint.
    pub fn state(&self) -> MemoryFileState {
        let a = self.lock();
        MemoryFileState {
            end_pages: a.pages.end(),
            refs: a.pages.ref_runs(),
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
        a.pages.decref(off / PAGE_SIZE, npages);
        for (s, l) in a.pages.punch_candidates() {
            if self.punch(s, l) {
                a.pages.mark_clean(s, l);
            }
        }
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
        self.ensure_mapped(off, buf.len() as u64);
        self.host
            .window
            .read(off, buf)
            .then_some(())
            .ok_or(Errno::EFAULT.because("memory-file offset out of range"))
    }

    /// Copies `data` to file offset `off`.
    pub fn write(&self, off: u64, data: &[u8]) -> SysResult<()> {
        self.ensure_mapped(off, data.len() as u64);
        self.host
            .window
            .write(off, data)
            .then_some(())
            .ok_or(Errno::EFAULT.because("memory-file offset out of range"))
    }

    /// Zeroes `len` bytes at `off`.
    pub fn zero(&self, off: u64, len: u64) -> SysResult<()> {
        self.host
            .window
            .zero(off, len)
            .then_some(())
            .ok_or(Errno::EFAULT.because("memory-file offset out of range"))
    }

    /// Copies one page (copy-on-write).
    pub fn copy_page(&self, src: u64, dst: u64) -> SysResult<()> {
        self.host
            .window
            .copy(src, dst, PAGE_SIZE)
            .then_some(())
            .ok_or(Errno::EFAULT.because("memory-file offset out of range"))
    }

    /// A read-only view of `[off, off+len)` for the checkpoint writer.
    /// Take it only while every stub is stopped (the bytes are shared with
    /// guest code). `None` if the range is beyond the file.
    pub fn slice(&self, off: u64, len: u64) -> Option<&[u8]> {
        self.ensure_mapped(off, len);
        self.host.window.slice(off, len)
    }
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
    fn used_ranges_and_restore_round_trip() {
        let mf = small();
        let a = mf.allocate(3, true).unwrap();
        mf.decref(a + PAGE_SIZE, 1);
        mf.write(a + 2 * PAGE_SIZE, b"kept").unwrap();
        let state = mf.state();
        let restored = MemoryFile::restore(&state).unwrap();
        for (off, len) in mf.used_ranges() {
            restored.write(off, mf.slice(off, len).unwrap()).unwrap();
        }
        let mut buf = [0u8; 4];
        restored.read(a + 2 * PAGE_SIZE, &mut buf).unwrap();
        assert_eq!(
            mf.used_ranges(),
            vec![(a, PAGE_SIZE), (a + 2 * PAGE_SIZE, PAGE_SIZE)]
        );
        assert_eq!(&buf, b"kept");
        assert_eq!(restored.size(), 3 * PAGE_SIZE);
        assert_eq!(
            restored.slice(0, restored.size()).unwrap().len(),
            3 * PAGE_SIZE as usize
        );
        assert_eq!(restored.refcount(a + PAGE_SIZE), 0);
        assert_eq!(restored.allocate(1, true).unwrap(), a + PAGE_SIZE);
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
        assert_eq!(back.state(), mf.state());
        assert_eq!(back.refcount(a), 2);
        assert_eq!(&buf, b"page one");
        assert_eq!(back.allocate(1, true).unwrap(), a + 2 * PAGE_SIZE);
        assert_ne!(back.fd().as_raw_fd(), mf.fd().as_raw_fd());
    }
}
