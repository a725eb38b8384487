//! `mremap` and `brk` (Linux: mm/mremap.c, mm/mmap.c `brk`).

use super::manager::{page_up, platform_errno, MemoryManager, Pte};
use super::memfile::PAGE_SIZE;
use super::vma::VmaName;
use crate::errno::{Errno, SysResult};
use crate::platform::{Context, Prot};

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
const MREMAP_DONTUNMAP: u64 = 4;

impl MemoryManager {
    /// `mremap(2)`. Returns the new address.
    ///
    /// Linux semantics: the old range must lie within one VMA (`EFAULT`);
    /// shrinking unmaps the tail; growing extends in place when the space
    /// after is free, else moves with `MREMAP_MAYMOVE` (`ENOMEM` without);
    /// `MREMAP_FIXED` moves to exactly `new_addr`, unmapping what was
    /// there. Moving keeps the pages' memory-file backing (no copy); the
    /// old range leaves the stub and the new one faults in.
    ///
    /// Not supported (`EINVAL`): `old_len == 0` (duplicating a shared
    /// mapping) and `MREMAP_DONTUNMAP`.
    pub fn mremap(
        &mut self,
        ctx: &mut dyn Context,
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> SysResult<u64> {
        if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 {
            return Err(Errno::EINVAL.because("unknown mremap flags"));
        }
        if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL.because("MREMAP_FIXED without MREMAP_MAYMOVE"));
        }
        if flags & MREMAP_DONTUNMAP != 0 {
            return Err(Errno::EINVAL.because("MREMAP_DONTUNMAP is not supported"));
        }
        if !old_addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL.because("mremap address not page-aligned"));
        }
        let old_len = page_up(old_len).ok_or(Errno::EINVAL.because("mremap old length"))?;
        let new_len = page_up(new_len).ok_or(Errno::EINVAL.because("mremap new length"))?;
        if new_len == 0 {
            return Err(Errno::EINVAL.because("mremap to zero length"));
        }
        if old_len == 0 {
            return Err(Errno::EINVAL.because("mremap duplication (old_len 0) is not supported"));
        }
        let old_end = old_addr
            .checked_add(old_len)
            .ok_or(Errno::EINVAL.because("mremap old range overflows"))?;

        if flags & MREMAP_FIXED != 0 {
            if !new_addr.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL.because("mremap new address not page-aligned"));
            }
            let new_end = new_addr
                .checked_add(new_len)
                .filter(|&e| e <= self.max_addr)
                .ok_or(Errno::EINVAL.because("mremap target beyond user space"))?;
            if new_addr < old_end && old_addr < new_end {
                return Err(Errno::EINVAL.because("mremap ranges overlap"));
            }
            self.check_within_one_vma(old_addr, old_end)?;
            self.remove_range(ctx, new_addr, new_end)
                .map_err(platform_errno)?;
            let keep = old_len.min(new_len);
            self.remove_range(ctx, old_addr + keep, old_end)
                .map_err(platform_errno)?;
            self.move_range(ctx, old_addr, keep, new_addr, new_len)?;
            return Ok(new_addr);
        }

        self.check_within_one_vma(old_addr, old_end)?;
        if new_len <= old_len {
            self.remove_range(ctx, old_addr + new_len, old_end)
                .map_err(platform_errno)?;
            return Ok(old_addr);
        }
        // Grow in place if the old range ends its VMA and the space after
        // is free.
        let grow_end = old_addr
            .checked_add(new_len)
            .filter(|&e| e <= self.max_addr);
        let vma_end = self.find_vma(old_addr).map(|v| v.end);
        if let (Some(ge), Some(ve)) = (grow_end, vma_end) {
            if ve == old_end && self.is_free(old_end, ge) {
                self.split_at(old_addr);
                if let Some(v) = self.vmas.get_mut(&old_addr) {
                    v.end = ge;
                }
                self.merge_range(old_addr, ge);
                return Ok(old_addr);
            }
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM.because("mremap cannot grow in place"));
        }
        let to = self
            .find_free_topdown(new_len, super::manager::MMAP_MIN_ADDR, self.mmap_base)
            .or_else(|| {
                self.find_free_topdown(new_len, super::manager::MMAP_MIN_ADDR, self.max_addr)
            })
            .ok_or(Errno::ENOMEM.because("no free range for mremap"))?;
        self.move_range(ctx, old_addr, old_len, to, new_len)?;
        Ok(to)
    }

    fn check_within_one_vma(&self, start: u64, end: u64) -> SysResult<()> {
        match self.find_vma(start) {
            Some(v) if end <= v.end => Ok(()),
            _ => Err(Errno::EFAULT.because("mremap range is not within one mapping")),
        }
    }

    /// Moves `[from, from+len)` (inside one VMA) to `to` (free), sized
    /// `new_len >= len`; page-table entries follow, the stub forgets the
    /// old range.
    fn move_range(
        &mut self,
        ctx: &mut dyn Context,
        from: u64,
        len: u64,
        to: u64,
        new_len: u64,
    ) -> SysResult<()> {
        self.split_at(from);
        self.split_at(from + len);
        let mut vma = self
            .vmas
            .remove(&from)
            .ok_or(Errno::EFAULT.because("mremap source vanished"))?;
        let moved: Vec<(u64, Pte)> = self
            .ptes
            .range(from..from + len)
            .map(|(&a, &p)| (a, p))
            .collect();
        let mut was_mapped = false;
        for (a, p) in moved {
            self.ptes.remove(&a);
            was_mapped |= p.stub.is_some();
            self.ptes.insert(
                a - from + to,
                Pte {
                    off: p.off,
                    stub: None,
                },
            );
        }
        if was_mapped {
            ctx.unmap(from, len).map_err(platform_errno)?;
        }
        vma.start = to;
        vma.end = to + new_len;
        self.vmas.insert(to, vma);
        self.merge_range(to, to + new_len);
        Ok(())
    }

    /// Sets the start of the heap (the loader: end of the highest
    /// segment, page-aligned up). The break starts there.
    pub fn set_brk_start(&mut self, addr: u64) {
        let a = page_up(addr).unwrap_or(addr);
        self.brk_start = a;
        self.brk = a;
    }

    /// The current program break.
    pub fn current_brk(&self) -> u64 {
        self.brk
    }

    /// `brk(2)`: returns the new break, or the old one if the request is
    /// refused (below the heap start, overlapping another mapping, or out
    /// of memory), as Linux does. The heap is a `[heap]` private anonymous
    /// read/write VMA from the heap start to the break rounded up.
    pub fn brk(&mut self, ctx: &mut dyn Context, new: u64) -> u64 {
        if self.brk_start == 0 || new < self.brk_start || new > self.max_addr {
            return self.brk;
        }
        let (Some(old_top), Some(new_top)) = (page_up(self.brk), page_up(new)) else {
            return self.brk;
        };
        if new_top < old_top {
            if self.remove_range(ctx, new_top, old_top).is_err() {
                return self.brk;
            }
        } else if new_top > old_top {
            if !self.is_free(old_top, new_top) {
                return self.brk;
            }
            if self
                .map_anonymous_fixed(ctx, old_top, new_top, Prot::RW, VmaName::Heap, false)
                .is_err()
            {
                return self.brk;
            }
        }
        self.brk = new;
        self.brk
    }
}
