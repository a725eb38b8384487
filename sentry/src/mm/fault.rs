//! Demand faulting and copy-on-write (compare Linux mm/memory.c
//! `handle_mm_fault`, `do_anonymous_page`, `do_wp_page`, `do_fault_around`).

use std::sync::Arc;

use super::manager::{page_down, MemoryManager, Pte};
use super::memfile::PAGE_SIZE;
use super::vma::{Vma, VmaBacking};
use crate::errno::{Errno, SysResult};
use crate::platform::{Context, PlatformError, Prot};
use crate::vfs::overlay::Node;

/// Pages mapped around a faulting page (an aligned window, clipped to the
/// VMA), like Linux `fault_around_bytes` (64 KiB).
pub const FAULT_AROUND_PAGES: u64 = 16;

/// `si_code` values (include/uapi/asm-generic/siginfo.h).
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const BUS_ADRERR: i32 = 2;

/// Largest single memory-file allocation when populating a range.
const POPULATE_CHUNK_PAGES: u64 = 64;

/// Why a guest fault could not be resolved; the kernel turns it into a
/// signal for the faulting task ([`FaultError::signal`]).
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// No VMA at the address: `SIGSEGV`/`SEGV_MAPERR`.
    #[error("no mapping at the faulting address")]
    NoMapping,
    /// The VMA forbids the access: `SIGSEGV`/`SEGV_ACCERR`.
    #[error("access not permitted by the mapping")]
    AccessDenied,
    /// A file-backed page wholly beyond the end of its file:
    /// `SIGBUS`/`BUS_ADRERR`.
    #[error("page lies beyond the end of the mapped file")]
    BeyondEof,
    /// The memory file cannot grow (Linux would invoke the OOM killer):
    /// the kernel should kill the process (`SIGKILL`).
    #[error("out of memory")]
    OutOfMemory,
    /// The page's saved contents could not be loaded from the checkpoint
    /// image (lazy restore; the loader logged why): the memory is gone, so
    /// the kernel kills the process (`SIGKILL`), as for `OutOfMemory`.
    #[error("the page's contents could not be loaded from the image")]
    MemoryLost,
    /// The platform could not update the stub: fatal for the address space.
    #[error("platform failed to map the page")]
    Platform(#[source] PlatformError),
}

impl FaultError {
    /// `(signo, si_code)` for the guest, or `None` for `Platform` (the
    /// kernel must treat that as an internal failure, e.g. kill the
    /// process).
    pub fn signal(&self) -> Option<(i32, i32)> {
        match self {
            FaultError::NoMapping => Some((libc::SIGSEGV, SEGV_MAPERR)),
            FaultError::AccessDenied => Some((libc::SIGSEGV, SEGV_ACCERR)),
            FaultError::BeyondEof => Some((libc::SIGBUS, BUS_ADRERR)),
            FaultError::OutOfMemory | FaultError::MemoryLost => Some((libc::SIGKILL, 0)),
            FaultError::Platform(_) => None,
        }
    }
}

impl From<PlatformError> for FaultError {
    fn from(e: PlatformError) -> Self {
        FaultError::Platform(e)
    }
}

/// Turns a population failure into the errno of a copy-in/out.
pub(super) fn fault_errno(e: FaultError) -> Errno {
    match e {
        FaultError::OutOfMemory => Errno::ENOMEM.because("out of memory populating a page"),
        FaultError::MemoryLost => {
            Errno::EIO.because("guest memory could not be loaded from the image")
        }
        FaultError::Platform(p) => super::manager::platform_errno(p),
        _ => Errno::EFAULT.because("guest address not accessible"),
    }
}

impl MemoryManager {
    /// Resolves a fault of guest code at `addr`.
    ///
    /// `write` is the access type when the platform knows it (`None` when
    /// it cannot tell, as with ptrace). With `Ok` the kernel resumes the
    /// task, which retries the access; with `Err` it delivers
    /// [`FaultError::signal`].
    ///
    /// - No page yet: the aligned window of [`FAULT_AROUND_PAGES`] around
    ///   the page (within the VMA) is populated — fresh anonymous pages as
    ///   one contiguous memory-file range, private file pages read from the
    ///   file — and mapped with as few `ctx.map` calls as possible.
    /// - Copy-on-write page: mapped read-only first (unless `write` is
    ///   known); a fault on a page the stub already has read-only in a
    ///   writable VMA is a write, and breaks the sharing (copy, or take the
    ///   page over when this is the last reference).
    /// - A fault on a page the stub already has with all the VMA's
    ///   permissions is a protection violation (`AccessDenied`), except
    ///   once per page in a row: a sibling thread may have mapped it after
    ///   this thread faulted, so the first such fault is retried.
    ///
    /// For one thread per address space; threads use
    /// [`MemoryManager::handle_thread_fault`].
    pub fn handle_fault(
        &mut self,
        ctx: &mut dyn Context,
        addr: u64,
        write: Option<bool>,
    ) -> Result<(), FaultError> {
        let mut spurious = self.last_spurious.take();
        let r = self.handle_thread_fault(ctx, addr, write, &mut spurious);
        self.last_spurious = spurious;
        r
    }

    /// [`MemoryManager::handle_fault`] with the "retried once" page kept by
    /// the faulting thread (`spurious`, `None` initially): any number of
    /// sibling threads may fault on one page before one of them maps it
    /// (all threads of a restored process start at once), and each of
    /// them gets its retry.
    pub fn handle_thread_fault(
        &mut self,
        ctx: &mut dyn Context,
        addr: u64,
        write: Option<bool>,
        spurious: &mut Option<u64>,
    ) -> Result<(), FaultError> {
        let page = page_down(addr);
        let retried = spurious.take();
        let vma = self.find_vma(page).ok_or(FaultError::NoMapping)?.clone();
        if vma.prot == Prot::NONE || (write == Some(true) && !vma.prot.write) {
            return Err(FaultError::AccessDenied);
        }
        if let Some(pte) = self.ptes.get(&page).copied() {
            if let Some(stub) = pte.stub {
                if vma.prot.write && !stub.write && write != Some(false) {
                    self.make_writable(ctx, &vma, page)?;
                    return Ok(());
                }
                if retried == Some(page) {
                    return Err(FaultError::AccessDenied);
                }
                *spurious = Some(page);
                return Ok(());
            }
            if write == Some(true) && !vma.shared && self.mf.refcount(pte.off) > 1 {
                self.make_writable(ctx, &vma, page)?;
            }
        }
        let (lo, hi) = fault_window(&vma, page);
        let hi = self.clip_to_eof(&vma, page, hi)?;
        self.populate_range(&vma, lo, hi)?;
        self.map_present(ctx, &vma, lo, hi)?;
        Ok(())
    }

    /// For file VMAs: `hi` clipped to the last page that holds file data;
    /// `BeyondEof` if `page` itself lies wholly beyond the end of file.
    fn clip_to_eof(&self, vma: &Vma, page: u64, hi: u64) -> Result<u64, FaultError> {
        let VmaBacking::File { file, offset } = &vma.backing else {
            return Ok(hi);
        };
        let size = file.size().map_err(|_| FaultError::BeyondEof)?;
        let eof_pages = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        // Guest address of the first page wholly beyond EOF.
        let limit = match eof_pages.checked_sub(*offset) {
            Some(d) => vma.start.saturating_add(d),
            None => vma.start,
        };
        if page >= limit {
            return Err(FaultError::BeyondEof);
        }
        Ok(hi.min(limit))
    }

    /// Gives the page at `page` (present, private VMA) its own memory-file
    /// page if it is shared copy-on-write, and maps it writable.
    pub(super) fn make_writable(
        &mut self,
        ctx: &mut dyn Context,
        vma: &Vma,
        page: u64,
    ) -> Result<(), FaultError> {
        self.break_cow(vma, page)?;
        let Some(pte) = self.ptes.get_mut(&page) else {
            return Err(FaultError::NoMapping);
        };
        self.mf
            .prepare_map(pte.off, PAGE_SIZE)
            .map_err(|_| FaultError::MemoryLost)?;
        ctx.map(page, PAGE_SIZE, vma.prot, pte.off)?;
        pte.stub = Some(vma.prot);
        Ok(())
    }

    /// Replaces a copy-on-write page by a private copy (no stub update).
    /// Returns whether the backing page changed.
    pub(super) fn break_cow(&mut self, vma: &Vma, page: u64) -> Result<bool, FaultError> {
        let Some(old) = self.ptes.get(&page).map(|p| p.off) else {
            return Err(FaultError::NoMapping);
        };
        if vma.shared || self.mf.refcount(old) <= 1 {
            return Ok(false);
        }
        let new = self
            .mf
            .allocate(1, false)
            .map_err(|_| FaultError::OutOfMemory)?;
        if self.mf.copy_page(old, new).is_err() {
            self.mf.decref(new, 1);
            return Err(FaultError::OutOfMemory);
        }
        self.mf.decref(old, 1);
        if let Some(p) = self.ptes.get_mut(&page) {
            p.off = new;
        }
        Ok(true)
    }

    /// Gives every page of `[lo, hi)` (inside `vma`) a page-table entry:
    /// zeroed memory for anonymous VMAs, file contents for file VMAs (the
    /// caller has clipped `hi` to the end of file), the file's shared
    /// pages for shared mappings of overlay files. Nothing is mapped.
    pub(super) fn populate_range(&mut self, vma: &Vma, lo: u64, hi: u64) -> Result<(), FaultError> {
        if let Some(node) = vma.shared_node() {
            return self.populate_shared(vma, node, lo, hi);
        }
        let missing: Vec<u64> = (lo..hi)
            .step_by(PAGE_SIZE as usize)
            .filter(|a| !self.ptes.contains_key(a))
            .collect();
        for chunk in missing.chunks(POPULATE_CHUNK_PAGES as usize) {
            let n = chunk.len() as u64;
            let anon = vma.is_anonymous();
            let base = self
                .mf
                .allocate(n, anon)
                .map_err(|_| FaultError::OutOfMemory)?;
            if let VmaBacking::File { file, .. } = &vma.backing {
                let mut i = 0;
                while i < chunk.len() {
                    let mut j = i + 1;
                    while j < chunk.len() && chunk[j] == chunk[i] + (j - i) as u64 * PAGE_SIZE {
                        j += 1;
                    }
                    let mut buf = vec![0u8; (j - i) * PAGE_SIZE as usize];
                    let foff = vma.file_offset(chunk[i]).unwrap_or(0);
                    let filled = read_full(file, foff, &mut buf);
                    let dst = base + i as u64 * PAGE_SIZE;
                    if filled.is_err() || self.mf.write(dst, &buf).is_err() {
                        self.mf.decref(base, n);
                        return Err(FaultError::BeyondEof);
                    }
                    i = j;
                }
            }
            for (k, &a) in chunk.iter().enumerate() {
                self.ptes.insert(
                    a,
                    Pte {
                        off: base + k as u64 * PAGE_SIZE,
                        stub: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// [`MemoryManager::populate_range`] for a `MAP_SHARED` mapping of an
    /// overlay file: every page of `[lo, hi)` gets the file's shared page
    /// (compare Linux `filemap_fault`; no copy-on-write: `break_cow`
    /// skips shared VMAs). Entries already present are checked against
    /// the file's page: the file never drops a page an entry holds (see
    /// `vfs/overlay/shared_pages.rs`), but should they differ the entry is
    /// replaced and the stub's mapping of it forgotten (`stub = None`), so
    /// `map_present` maps the file's page over it: a mapping never keeps
    /// a page the file no longer has.
    fn populate_shared(
        &mut self,
        vma: &Vma,
        node: &Arc<Node>,
        lo: u64,
        hi: u64,
    ) -> Result<(), FaultError> {
        for a in (lo..hi).step_by(PAGE_SIZE as usize) {
            let index = vma.file_offset(a).unwrap_or(0) / PAGE_SIZE;
            let off = node.shared_page(&self.mf, index).map_err(shared_error)?;
            match self.ptes.get_mut(&a) {
                Some(p) if p.off == off => self.mf.decref(off, 1),
                Some(p) => {
                    let old = p.off;
                    p.off = off;
                    p.stub = None;
                    self.mf.decref(old, 1);
                }
                None => {
                    self.ptes.insert(a, Pte { off, stub: None });
                }
            }
        }
        Ok(())
    }

    /// Maps into the stub every present, unmapped page of `[lo, hi)`
    /// (inside `vma`), coalescing runs that are contiguous both in the
    /// guest and in the memory file.
    pub(super) fn map_present(
        &mut self,
        ctx: &mut dyn Context,
        vma: &Vma,
        lo: u64,
        hi: u64,
    ) -> Result<(), FaultError> {
        let todo: Vec<(u64, u64, Prot)> = self
            .ptes
            .range(lo..hi)
            .filter(|(_, p)| p.stub.is_none())
            .map(|(&a, p)| (a, p.off, self.effective_prot(vma, p.off)))
            .collect();
        let mut i = 0;
        while i < todo.len() {
            let (a, off, prot) = todo[i];
            let mut j = i + 1;
            while j < todo.len() {
                let d = (j - i) as u64 * PAGE_SIZE;
                if todo[j].0 != a + d || todo[j].1 != off + d || todo[j].2 != prot {
                    break;
                }
                j += 1;
            }
            let len = (j - i) as u64 * PAGE_SIZE;
            self.mf
                .prepare_map(off, len)
                .map_err(|_| FaultError::MemoryLost)?;
            ctx.map(a, len, prot, off)?;
            for &(pa, _, _) in &todo[i..j] {
                if let Some(p) = self.ptes.get_mut(&pa) {
                    p.stub = Some(prot);
                }
            }
            i = j;
        }
        Ok(())
    }

    /// Populates and maps all of `[start, end)` (`MAP_POPULATE`).
    pub(super) fn populate_and_map(
        &mut self,
        ctx: &mut dyn Context,
        start: u64,
        end: u64,
    ) -> Result<(), FaultError> {
        let vmas: Vec<Vma> = self
            .vmas
            .values()
            .filter(|v| v.end > start && v.start < end)
            .cloned()
            .collect();
        for v in vmas {
            let lo = v.start.max(start);
            let mut hi = v.end.min(end);
            if !v.is_anonymous() {
                hi = match self.clip_to_eof(&v, lo, hi) {
                    Ok(h) => h,
                    Err(_) => continue,
                };
            }
            self.populate_range(&v, lo, hi)?;
            self.map_present(ctx, &v, lo, hi)?;
        }
        Ok(())
    }

    /// Makes sure the page at `page` (inside `vma`) has an entry, for the
    /// sentry's own access (copy-in/out); nothing is mapped in the stub.
    /// A shared overlay-file page is checked against the file every time
    /// (see `populate_shared`).
    pub(super) fn populate_page(&mut self, vma: &Vma, page: u64) -> SysResult<u64> {
        if let Some(p) = self.ptes.get(&page) {
            if vma.shared_node().is_none() {
                return Ok(p.off);
            }
        }
        let hi = self
            .clip_to_eof(vma, page, page + PAGE_SIZE)
            .map_err(fault_errno)?;
        self.populate_range(vma, page, hi).map_err(fault_errno)?;
        self.ptes
            .get(&page)
            .map(|p| p.off)
            .ok_or(Errno::EFAULT.because("page could not be populated"))
    }
}

/// The fault outcome of a failed [`Node::shared_page`]: `SIGBUS` beyond
/// the end of file or on a read error (Linux `VM_FAULT_SIGBUS`), the OOM
/// kill when memory is exhausted.
fn shared_error(e: Errno) -> FaultError {
    match e.code() {
        libc::ENOMEM => FaultError::OutOfMemory,
        _ => FaultError::BeyondEof,
    }
}

/// The fault-around window of `page` within `vma`.
fn fault_window(vma: &Vma, page: u64) -> (u64, u64) {
    let span = FAULT_AROUND_PAGES * PAGE_SIZE;
    let lo = (page & !(span - 1)).max(vma.start);
    let hi = (page & !(span - 1)).saturating_add(span).min(vma.end);
    (lo, hi)
}

/// Reads as much of `buf` as the file has at `off` (short at EOF; the rest
/// stays zero).
fn read_full(file: &crate::vfs::MappedFile, off: u64, buf: &mut [u8]) -> SysResult<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(off + done as u64, &mut buf[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}
