//! Address-space duplication for `fork` (compare Linux kernel/fork.c
//! `dup_mmap` and mm/memory.c `copy_page_range`).

use std::collections::BTreeMap;

use super::fault::fault_errno;
use super::manager::{platform_errno, MemoryManager, Pte};
use super::memfile::PAGE_SIZE;
use super::vma::Vma;
use crate::errno::SysResult;
use crate::platform::Context;

impl MemoryManager {
    /// Duplicates this address space for a child process.
    ///
    /// Private pages become copy-on-write: both sides reference the same
    /// memory-file pages (reference counts incremented), and the parent's
    /// stub loses write permission on them (`ctx` is the parent's
    /// context) so its next write faults and copies. `MAP_SHARED`
    /// anonymous VMAs stay shared: they are fully populated first, so that
    /// pages touched later by either side are the same pages. The child's
    /// page table starts with nothing mapped in its (fresh, empty) stub;
    /// its pages fault in read-only and are copied on its first write.
    /// `MAP_SHARED` file VMAs of overlay files need no population: both
    /// sides fault the file's shared pages (`vfs/overlay/shared_pages.rs`),
    /// the same pages, and the child inherits references to those already
    /// in the parent's page table.
    /// `MADV_DONTFORK` ranges are left out of the child, `MADV_WIPEONFORK`
    /// ranges come back empty (zero-filled on touch).
    pub fn fork(&mut self, ctx: &mut dyn Context) -> SysResult<MemoryManager> {
        let shared_anon: Vec<Vma> = self
            .vmas
            .values()
            .filter(|v| v.shared && v.is_anonymous())
            .cloned()
            .collect();
        for v in shared_anon {
            self.populate_range(&v, v.start, v.end)
                .map_err(fault_errno)?;
        }
        // Ranges the child does not inherit pages of.
        let skipped: Vec<(u64, u64)> = self
            .vmas
            .values()
            .filter(|v| v.dontfork || v.wipeonfork)
            .map(|v| (v.start, v.end))
            .collect();
        let inherited = |a: u64| !skipped.iter().any(|&(s, e)| s <= a && a < e);
        let mut ptes = BTreeMap::new();
        let mut run: Option<(u64, u64)> = None;
        for (&a, p) in self.ptes.iter().filter(|(&a, _)| inherited(a)) {
            ptes.insert(
                a,
                Pte {
                    off: p.off,
                    stub: None,
                },
            );
            run = match run {
                Some((o, n)) if o + n * PAGE_SIZE == p.off => Some((o, n + 1)),
                Some((o, n)) => {
                    self.mf.incref(o, n);
                    Some((p.off, 1))
                }
                None => Some((p.off, 1)),
            };
        }
        if let Some((o, n)) = run {
            self.mf.incref(o, n);
        }
        let child = MemoryManager {
            mf: self.mf.clone(),
            vmas: self
                .vmas
                .iter()
                .filter(|(_, v)| !v.dontfork)
                .map(|(&k, v)| (k, v.clone()))
                .collect(),
            ptes,
            max_addr: self.max_addr,
            mmap_base: self.mmap_base,
            brk_start: self.brk_start,
            brk: self.brk,
            last_spurious: None,
        };
        self.reprotect(ctx, 0, self.max_addr)
            .map_err(platform_errno)?;
        Ok(child)
    }
}
