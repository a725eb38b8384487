//! `MemoryManager`: one guest address space (compare Linux `struct
//! mm_struct` and gVisor `mm.MemoryManager`).
//!
//! It owns the VMAs and the page table (which guest page is backed by
//! which memory-file page, and what the stub currently has mapped there).
//! Behaviour is spread over sibling files: `mmap.rs` (mmap, munmap,
//! mprotect, madvise), `remap.rs` (mremap, brk), `fault.rs` (demand
//! faulting, copy-on-write), `io.rs` (copy-in/out), `fork.rs`, `maps.rs`.
//!
//! Sharing: the tasks of one process share it as `Arc<Mutex<MemoryManager>>`;
//! every method takes `&mut self`, so the caller holds that lock.
//! Lock order: `MemoryManager` → overlay `Node::state` (shared file
//! pages) → `MemoryFile` allocator.
//!
//! Invariants:
//! - VMAs are page-aligned, non-empty, non-overlapping, keyed by start.
//! - Every page-table entry lies inside a VMA; it holds one reference to
//!   its memory-file page.
//! - A private page whose memory-file page has more than one reference is
//!   copy-on-write: the stub maps it without write permission.
//! - `Pte::stub` is what the stub has mapped at that page (`None`: not
//!   mapped, the next access faults). The stub never maps a page that has
//!   no entry, and never with more permission than the entry allows.

use std::collections::BTreeMap;
use std::sync::Arc;

use checkpoints::Stateify;

use super::memfile::{MemoryFile, PAGE_SIZE};
use super::vma::Vma;
use crate::errno::Errno;
use crate::platform::{Context, PlatformError, Prot};

/// Lowest address the guest may map (Linux `vm.mmap_min_addr` default).
pub const MMAP_MIN_ADDR: u64 = 0x10000;

/// Gap between the top of user space and the mmap base (Linux
/// `mmap_base()`: at least 128 MiB, covering the stack rlimit).
pub const MMAP_BASE_GAP: u64 = 128 << 20;

/// What a guest page is backed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub struct Pte {
    /// Byte offset of the page in the memory file (holds one reference).
    pub off: u64,
    /// What the stub has mapped here. Host state: after restore stubs are
    /// fresh and empty, so this restarts as `None`.
    #[state(nosave)]
    pub stub: Option<Prot>,
}

/// One address space.
///
/// Checkpoint: derives `Stateify`. The memory file is shared (`Arc`) with
/// the kernel and other address spaces and comes back shared; page-table
/// entries come back with nothing mapped in the stub (`Pte::stub` is
/// `nosave`), so a restored process simply faults its pages into its new
/// stub.
#[derive(Stateify)]
pub struct MemoryManager {
    pub(super) mf: Arc<MemoryFile>,
    /// VMAs by start address.
    pub(super) vmas: BTreeMap<u64, Vma>,
    /// Page table by guest page address. Saved as runs of contiguous
    /// pages (`pte_runs.rs`), not one entry per page.
    #[state(with = "super::pte_runs")]
    pub(super) ptes: BTreeMap<u64, Pte>,
    /// One past the highest guest address (the platform's
    /// `max_user_address`).
    pub(super) max_addr: u64,
    /// Top-down allocation starts below this.
    pub(super) mmap_base: u64,
    /// Start of the heap (`mm->start_brk`); 0 until the loader sets it.
    pub(super) brk_start: u64,
    /// Current program break (`mm->brk`), possibly unaligned.
    pub(super) brk: u64,
    /// The page of the last fault that found the page already mapped with
    /// the needed permission, for [`MemoryManager::handle_fault`] (see
    /// `fault.rs`: one retry is granted, since a sibling thread may have
    /// mapped it after this one faulted; tasks keep their own, see
    /// `handle_thread_fault`). Fault bookkeeping only: not saved, `None`
    /// after restore.
    #[state(nosave)]
    pub(super) last_spurious: Option<u64>,
}

impl std::fmt::Debug for MemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryManager")
            .field("vmas", &self.vmas.len())
            .field("pages", &self.ptes.len())
            .finish_non_exhaustive()
    }
}

pub(super) fn page_down(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}

/// Rounds up to a page; `None` on overflow.
pub(super) fn page_up(a: u64) -> Option<u64> {
    a.checked_add(PAGE_SIZE - 1).map(page_down)
}

/// Logs a platform failure and turns it into the errno the syscall
/// returns. The address space is suspect afterwards; the kernel should
/// treat repeated failures as fatal for the process.
pub(super) fn platform_errno(e: PlatformError) -> Errno {
    tracing::error!("platform failed to update a stub address space: {e}");
    Errno::ENOMEM.because("platform failed to update the stub address space")
}

impl MemoryManager {
    /// An empty address space over `mf`, for guests whose addresses stay
    /// below `max_user_address` (from `Platform::max_user_address`).
    ///
    /// The stub context used with it must start empty (a fresh
    /// `Platform::new_context`).
    pub fn new(mf: Arc<MemoryFile>, max_user_address: u64) -> MemoryManager {
        let max_addr = page_down(max_user_address);
        MemoryManager {
            mf,
            vmas: BTreeMap::new(),
            ptes: BTreeMap::new(),
            max_addr,
            mmap_base: max_addr.saturating_sub(MMAP_BASE_GAP).max(MMAP_MIN_ADDR),
            brk_start: 0,
            brk: 0,
            last_spurious: None,
        }
    }

    /// The memory file backing this address space.
    pub fn memory_file(&self) -> &Arc<MemoryFile> {
        &self.mf
    }

    /// One past the highest guest address.
    pub fn max_address(&self) -> u64 {
        self.max_addr
    }

    /// The VMAs in address order.
    pub fn vmas(&self) -> impl Iterator<Item = &Vma> {
        self.vmas.values()
    }

    /// The VMA containing `addr`.
    pub fn find_vma(&self, addr: u64) -> Option<&Vma> {
        self.vmas
            .range(..=addr)
            .next_back()
            .map(|(_, v)| v)
            .filter(|v| v.contains(addr))
    }

    /// The page-table entry of the page containing `addr`.
    pub fn pte(&self, addr: u64) -> Option<Pte> {
        self.ptes.get(&page_down(addr)).copied()
    }

    /// Whether no VMA intersects `[start, end)`.
    pub(super) fn is_free(&self, start: u64, end: u64) -> bool {
        if let Some((_, v)) = self.vmas.range(..end).next_back() {
            if v.end > start {
                return false;
            }
        }
        true
    }

    /// The highest `len`-byte free range inside `[lo, hi)`.
    pub(super) fn find_free_topdown(&self, len: u64, lo: u64, hi: u64) -> Option<u64> {
        let mut top = hi;
        for v in self.vmas.range(..hi).rev().map(|(_, v)| v) {
            if v.end <= top && top - v.end >= len && top - len >= lo {
                return Some(top - len);
            }
            top = top.min(v.start);
            if top < lo.saturating_add(len) {
                return None;
            }
        }
        (top >= lo.saturating_add(len)).then(|| top - len)
    }

    /// Splits the VMA that strictly contains `addr`, if any.
    pub(super) fn split_at(&mut self, addr: u64) {
        let Some((&s, v)) = self.vmas.range_mut(..addr).next_back() else {
            return;
        };
        if s < addr && addr < v.end {
            let tail = v.split_off(addr);
            self.vmas.insert(addr, tail);
        }
    }

    /// Merges compatible neighbours around `[start, end)`.
    pub(super) fn merge_range(&mut self, start: u64, end: u64) {
        let first = self
            .vmas
            .range(..start)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(start);
        let keys: Vec<u64> = self.vmas.range(first..=end).map(|(&s, _)| s).collect();
        let mut cur: Option<u64> = None;
        for k in keys {
            if let Some(c) = cur {
                let mergeable = match (self.vmas.get(&c), self.vmas.get(&k)) {
                    (Some(a), Some(b)) => a.can_merge(b),
                    _ => false,
                };
                if mergeable {
                    if let Some(b) = self.vmas.remove(&k) {
                        if let Some(a) = self.vmas.get_mut(&c) {
                            a.end = b.end;
                        }
                    }
                    continue;
                }
            }
            cur = Some(k);
        }
    }

    /// Removes every VMA and page in `[start, end)` (page-aligned), drops
    /// the pages' references and unmaps them from the stub (compare Linux
    /// `do_vmi_munmap`).
    pub(super) fn remove_range(
        &mut self,
        ctx: &mut dyn Context,
        start: u64,
        end: u64,
    ) -> Result<(), PlatformError> {
        if start >= end {
            return Ok(());
        }
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(&s, _)| s).collect();
        for k in keys {
            self.vmas.remove(&k);
        }
        let mapped = self.drop_pages(start, end);
        if mapped {
            ctx.unmap(start, end - start)?;
        }
        Ok(())
    }

    /// Drops the page-table entries in `[start, end)`, releasing their
    /// references. Returns whether any was mapped in the stub (the caller
    /// unmaps).
    pub(super) fn drop_pages(&mut self, start: u64, end: u64) -> bool {
        let pages: Vec<(u64, Pte)> = self.ptes.range(start..end).map(|(&a, &p)| (a, p)).collect();
        let mut mapped = false;
        let mut run: Option<(u64, u64)> = None;
        for (a, p) in pages {
            self.ptes.remove(&a);
            mapped |= p.stub.is_some();
            run = match run {
                Some((o, n)) if o + n * PAGE_SIZE == p.off => Some((o, n + 1)),
                Some((o, n)) => {
                    self.mf.decref(o, n);
                    Some((p.off, 1))
                }
                None => Some((p.off, 1)),
            };
        }
        if let Some((o, n)) = run {
            self.mf.decref(o, n);
        }
        mapped
    }

    /// The protection the stub may have for a present page of `vma`:
    /// without write while the page is copy-on-write.
    pub(super) fn effective_prot(&self, vma: &Vma, off: u64) -> Prot {
        let mut p = vma.prot;
        if p.write && !vma.shared && self.mf.refcount(off) > 1 {
            p.write = false;
        }
        p
    }

    /// Unmaps everything (execve into a reused stub, or exit): the address
    /// space becomes empty and all pages are released.
    pub fn unmap_all(&mut self, ctx: &mut dyn Context) -> Result<(), PlatformError> {
        self.remove_range(ctx, 0, self.max_addr)?;
        self.brk_start = 0;
        self.brk = 0;
        Ok(())
    }

    /// Releases every page reference without touching any stub (the stub
    /// is gone or will be discarded). Also done on drop.
    pub fn release(&mut self) {
        self.vmas.clear();
        let max = u64::MAX;
        self.drop_pages(0, max);
    }
}

impl Drop for MemoryManager {
    fn drop(&mut self) {
        self.release();
    }
}
