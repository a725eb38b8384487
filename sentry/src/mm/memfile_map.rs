//! The sentry's own mapping of the memory file: the one place in `mm`
//! that touches raw pointers.
//!
//! A large `PROT_NONE | MAP_NORESERVE` window is reserved once; as the
//! memory file grows, its new tail is mapped `MAP_SHARED | MAP_FIXED` into
//! the window, so the sentry address of a file offset never changes.
//!
//! Invariants:
//! - `[base, base + reserved)` is a private reservation owned by this
//!   object for its whole life; nothing else maps into it.
//! - `[base, base + mapped)` is a shared read/write mapping of the memfd at
//!   the same offsets; `mapped` only grows (under the memory file's
//!   allocator lock, which serialises [`FileWindow::extend`]).
//!
//! Guest memory is shared with stub processes that may write it at any
//! time, so all accesses are plain byte copies through raw pointers; the
//! slice views ([`FileWindow::slice`]) are for checkpointing, when every
//! stub is stopped.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::mm::{MapFlags, ProtFlags};

/// A fixed-address window onto the memory file.
pub(super) struct FileWindow {
    base: *mut u8,
    reserved: u64,
    /// Bytes of the window currently backed by the memfd.
    mapped: AtomicU64,
}

// SAFETY: the window is a plain memory region; the pointer is never
// dereferenced except through the bounds-checked copies below, which are
// safe to run from any thread (the memory is shared with other processes
// anyway, and concurrent access is byte-copy semantics).
unsafe impl Send for FileWindow {}
// SAFETY: see `Send`; no method hands out aliasing `&mut` references.
unsafe impl Sync for FileWindow {}

impl FileWindow {
    /// A window of capacity zero: every access fails. Used when the host
    /// refuses a reservation during restore (see `MemoryFile`'s `init`).
    pub(super) fn empty() -> FileWindow {
        FileWindow {
            base: std::ptr::null_mut(),
            reserved: 0,
            mapped: AtomicU64::new(0),
        }
    }

    /// Reserves `reserved` bytes of address space (no memory committed).
    pub(super) fn reserve(reserved: u64) -> std::io::Result<FileWindow> {
        // SAFETY: a fresh anonymous PROT_NONE mapping at an address chosen
        // by the kernel cannot alias anything Rust owns.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                reserved as usize,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }?;
        Ok(FileWindow {
            base: base.cast(),
            reserved,
            mapped: AtomicU64::new(0),
        })
    }

    /// Bytes of the window backed by the file.
    pub(super) fn mapped_len(&self) -> u64 {
        self.mapped.load(Ordering::Acquire)
    }

    /// Maps the file range `[mapped, new_len)` into the window. The caller
    /// has already grown the file to at least `new_len` and serialises
    /// calls.
    pub(super) fn extend(&self, fd: BorrowedFd<'_>, new_len: u64) -> std::io::Result<()> {
        let old = self.mapped.load(Ordering::Acquire);
        if new_len <= old {
            return Ok(());
        }
        if new_len > self.reserved {
            return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        }
        // SAFETY: `[base+old, base+new_len)` lies inside our reservation
        // (checked above) and is currently PROT_NONE reserved space that no
        // Rust reference points into; MAP_FIXED replaces only that range.
        unsafe {
            rustix::mm::mmap(
                self.base.add(old as usize).cast::<c_void>(),
                (new_len - old) as usize,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::FIXED,
                fd,
                old,
            )
        }?;
        self.mapped.store(new_len, Ordering::Release);
        Ok(())
    }

    fn check(&self, off: u64, len: usize) -> Option<usize> {
        if self.base.is_null() || len == 0 {
            return None;
        }
        let end = off.checked_add(len as u64)?;
        (end <= self.mapped_len()).then_some(off as usize)
    }

    /// Copies `buf.len()` bytes at file offset `off` into `buf`. Returns
    /// false (copying nothing) if the range is not mapped.
    pub(super) fn read(&self, off: u64, buf: &mut [u8]) -> bool {
        if buf.is_empty() {
            return true;
        }
        let Some(o) = self.check(off, buf.len()) else {
            return false;
        };
        // SAFETY: `[o, o+len)` is inside the mapped part of the window
        // (checked); `buf` is a distinct Rust allocation, so the ranges do
        // not overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(o), buf.as_mut_ptr(), buf.len()) };
        true
    }

    /// Copies `data` to file offset `off`. Returns false (copying nothing)
    /// if the range is not mapped.
    pub(super) fn write(&self, off: u64, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        let Some(o) = self.check(off, data.len()) else {
            return false;
        };
        // SAFETY: destination inside the mapped, writable window (checked);
        // source is a distinct Rust allocation.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(o), data.len()) };
        true
    }

    /// Zeroes `len` bytes at `off`. Returns false if not mapped.
    pub(super) fn zero(&self, off: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let Some(o) = self.check(off, len as usize) else {
            return false;
        };
        // SAFETY: range inside the mapped, writable window (checked).
        unsafe { std::ptr::write_bytes(self.base.add(o), 0, len as usize) };
        true
    }

    /// Copies `len` bytes from `src` to `dst` (both file offsets; the
    /// ranges must not overlap). Returns false if either is not mapped or
    /// they overlap.
    pub(super) fn copy(&self, src: u64, dst: u64, len: u64) -> bool {
        let (Some(s), Some(d)) = (self.check(src, len as usize), self.check(dst, len as usize))
        else {
            return false;
        };
        if s < d + len as usize && d < s + len as usize {
            return false;
        }
        // SAFETY: both ranges inside the mapped window and disjoint
        // (checked).
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(s), self.base.add(d), len as usize) };
        true
    }

    /// A read-only view of `[off, off+len)`, or `None` if not mapped.
    ///
    /// The bytes may change under the view if a stub or another sentry
    /// thread writes them: take views only while the sandbox is paused
    /// (checkpoint).
    pub(super) fn slice(&self, off: u64, len: u64) -> Option<&[u8]> {
        if len == 0 {
            return Some(&[]);
        }
        let o = self.check(off, len as usize)?;
        // SAFETY: the range is inside the mapped window, which stays mapped
        // for the life of `self` (it only grows; unmapped in Drop), so the
        // returned lifetime is sound; see the doc comment for concurrency.
        Some(unsafe { std::slice::from_raw_parts(self.base.add(o), len as usize) })
    }
}

impl Drop for FileWindow {
    fn drop(&mut self) {
        if self.base.is_null() {
            return;
        }
        // SAFETY: we own the whole reservation; no slice handed out by
        // `slice` can outlive `self` (they borrow it).
        if let Err(e) = unsafe { rustix::mm::munmap(self.base.cast(), self.reserved as usize) } {
            tracing::warn!("munmap of the memory-file window failed: {e}");
        }
    }
}
