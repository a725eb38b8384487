//! The page allocator of the memory file: which file pages are in use,
//! their reference counts, and which free ones still hold old data.
//!
//! Pure bookkeeping in units of pages; [`super::MemoryFile`] owns one
//! behind its lock and performs the host operations (grow, zero, punch) it
//! asks for.
//!
//! Policy (see DESIGN.md, "first touch is slow on this VM"):
//! - freed pages go to a free list as *dirty* (still resident, old
//!   contents) and are reused first, zeroed with `memset` when the caller
//!   needs zeroes, before clean (punched or never-touched) ranges, and
//!   before the file grows;
//! - holes are punched only when more than `punch_threshold` dirty free
//!   pages accumulate, and then only down to half the threshold, highest
//!   offsets first, so a workload that frees and reallocates never
//!   refaults.
//!
//! Invariants:
//! - `refs.len() == end`; a page `p < end` is free iff `refs[p] == 0` iff
//!   it lies in exactly one run of `free`.
//! - Adjacent free runs with the same dirtiness are coalesced.
//! - `dirty_free` is the total length of dirty runs.

use std::collections::BTreeMap;

use checkpoints::Stateify;

/// A run of free pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
struct FreeRun {
    len: u64,
    /// Whether the pages may hold old data (not punched since last use).
    dirty: bool,
}

/// Where an allocation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fresh {
    /// Reused pages that still hold old data: zero them if needed.
    Dirty,
    /// Pages known to read as zero (punched or never used).
    Zero,
}

/// Run-length encoded reference counts: `(first page, pages, count)`.
pub type RefRuns = Vec<(u64, u64, u32)>;

/// Default number of dirty free pages kept before punching (256 MiB).
pub const DEFAULT_PUNCH_THRESHOLD_PAGES: u64 = 65536;

/// Checkpoint encoding of `PageAllocator::refs`: runs of equal counts, so
/// the saved state and its decode do not grow with the memory used.
/// Layout: run count, then per run the varints `pages` (≥ 1) and `count`.
mod ref_counts_state {
    use checkpoints::state::{Decoder, Encoder, LoadError, SaveError};

    use super::super::memfile::{DEFAULT_CAPACITY, PAGE_SIZE};

    /// Schema contribution: "refcount runs (pages, count)", version 1.
    pub const FINGERPRINT: u64 = 0x5245_4652_554e_0001;

    /// Most pages a memory file can hold.
    const MAX_PAGES: u64 = DEFAULT_CAPACITY / PAGE_SIZE;

    fn invalid(reason: &'static str) -> LoadError {
        LoadError::InvalidValue {
            type_name: "sbx::mm::RefCountRuns",
            reason,
        }
    }

    #[allow(clippy::ptr_arg)] // the `with` contract takes the field's type
    pub fn save(refs: &Vec<u32>, enc: &mut Encoder) -> Result<(), SaveError> {
        let mut runs: Vec<(u64, u32)> = Vec::new();
        for &c in refs {
            match runs.last_mut() {
                Some((n, rc)) if *rc == c => *n += 1,
                _ => runs.push((1, c)),
            }
        }
        enc.write_len(runs.len());
        for (n, c) in runs {
            enc.write_varint(n);
            enc.write_varint(u64::from(c));
        }
        Ok(())
    }

    pub fn load(dec: &mut Decoder<'_>) -> Result<Vec<u32>, LoadError> {
        // Each run takes at least two bytes (two varints).
        let n = dec.read_len(2)?;
        let mut refs = Vec::new();
        for _ in 0..n {
            let pages = dec.read_varint()?;
            let count =
                u32::try_from(dec.read_varint()?).map_err(|_| invalid("count exceeds u32"))?;
            if pages == 0 {
                return Err(invalid("empty run"));
            }
            let total = (refs.len() as u64).saturating_add(pages);
            if total > MAX_PAGES {
                return Err(invalid("more pages than the largest memory file holds"));
            }
            // Bounded by MAX_PAGES (checked just above).
            refs.resize(total as usize, count);
        }
        Ok(refs)
    }
}

/// Saved as is: after restore the new file reads as zero, so runs still
/// marked dirty are merely zeroed once more than needed.
#[derive(Debug, Stateify)]
pub(super) struct PageAllocator {
    /// Pages `[0, end)` have been handed out at least once.
    end: u64,
    /// Reference count of every page below `end`. Saved run-length
    /// encoded (`ref_counts_state`).
    #[state(with = "ref_counts_state")]
    refs: Vec<u32>,
    /// Free runs below `end`, by first page.
    free: BTreeMap<u64, FreeRun>,
    dirty_free: u64,
    punch_threshold: u64,
}

impl PageAllocator {
    pub(super) fn new() -> PageAllocator {
        PageAllocator {
            end: 0,
            refs: Vec::new(),
            free: BTreeMap::new(),
            dirty_free: 0,
            punch_threshold: DEFAULT_PUNCH_THRESHOLD_PAGES,
        }
    }

    /// The reference counts as runs (for checkpoint).
    pub(super) fn ref_runs(&self) -> RefRuns {
        let mut out: RefRuns = Vec::new();
        for (p, &c) in self.refs.iter().enumerate() {
            if c == 0 {
                continue;
            }
            match out.last_mut() {
                Some((s, l, cc)) if *cc == c && *s + *l == p as u64 => *l += 1,
                _ => out.push((p as u64, 1, c)),
            }
        }
        out
    }

    pub(super) fn end(&self) -> u64 {
        self.end
    }

    pub(super) fn set_punch_threshold(&mut self, pages: u64) {
        self.punch_threshold = pages;
    }

    pub(super) fn dirty_free(&self) -> u64 {
        self.dirty_free
    }

    /// Pages with a non-zero reference count.
    pub(super) fn used_pages(&self) -> u64 {
        self.end - self.free.values().map(|r| r.len).sum::<u64>()
    }

    pub(super) fn refcount(&self, page: u64) -> u32 {
        self.refs.get(page as usize).copied().unwrap_or(0)
    }

    /// Allocates `n > 0` contiguous pages with reference count 1. Returns
    /// the first page and whether it may hold old data. The caller grows
    /// the file to cover `end()` when it increased.
    pub(super) fn alloc(&mut self, n: u64) -> (u64, Fresh) {
        let pick = |dirty: bool| {
            self.free
                .iter()
                .find(|(_, r)| r.dirty == dirty && r.len >= n)
                .map(|(&s, &r)| (s, r))
        };
        let (start, fresh) = if let Some((s, r)) = pick(true).or_else(|| pick(false)) {
            self.free.remove(&s);
            if r.len > n {
                self.free.insert(
                    s + n,
                    FreeRun {
                        len: r.len - n,
                        dirty: r.dirty,
                    },
                );
            }
            if r.dirty {
                self.dirty_free -= n;
                (s, Fresh::Dirty)
            } else {
                (s, Fresh::Zero)
            }
        } else {
            let s = self.end;
            self.end += n;
            self.refs.resize(self.end as usize, 0);
            (s, Fresh::Zero)
        };
        self.refs[start as usize..(start + n) as usize].fill(1);
        (start, fresh)
    }

    /// Adds one reference to each page of `[start, start+n)` (all in use).
    pub(super) fn incref(&mut self, start: u64, n: u64) {
        for p in start..start + n {
            if let Some(c) = self.refs.get_mut(p as usize) {
                debug_assert!(*c > 0, "incref of a free page");
                *c = c.saturating_add(1);
            }
        }
    }

    /// Drops one reference to each page of `[start, start+n)`; pages
    /// reaching zero become dirty free pages.
    pub(super) fn decref(&mut self, start: u64, n: u64) {
        let mut run: Option<(u64, u64)> = None;
        for p in start..start + n {
            let Some(c) = self.refs.get_mut(p as usize) else {
                continue;
            };
            if *c == 0 {
                debug_assert!(false, "decref of a free page");
                continue;
            }
            *c -= 1;
            if *c == 0 {
                run = match run {
                    Some((s, l)) if s + l == p => Some((s, l + 1)),
                    Some((s, l)) => {
                        self.insert_free(s, l, true);
                        Some((p, 1))
                    }
                    None => Some((p, 1)),
                };
            }
        }
        if let Some((s, l)) = run {
            self.insert_free(s, l, true);
        }
    }

    fn insert_free(&mut self, mut start: u64, mut len: u64, dirty: bool) {
        if dirty {
            self.dirty_free += len;
        }
        if let Some((&ps, &pr)) = self.free.range(..start).next_back() {
            if ps + pr.len == start && pr.dirty == dirty {
                self.free.remove(&ps);
                start = ps;
                len += pr.len;
            }
        }
        if let Some(&nr) = self.free.get(&(start + len)) {
            if nr.dirty == dirty {
                self.free.remove(&(start + len));
                len += nr.len;
            }
        }
        self.free.insert(start, FreeRun { len, dirty });
    }

    /// The dirty runs to punch now, if the threshold is exceeded: highest
    /// offsets first, until at most half the threshold remains. The caller
    /// punches them and then calls [`PageAllocator::mark_clean`] for each
    /// one that succeeded.
    pub(super) fn punch_candidates(&self) -> Vec<(u64, u64)> {
        if self.dirty_free <= self.punch_threshold {
            return Vec::new();
        }
        let target = self.punch_threshold / 2;
        let mut remaining = self.dirty_free;
        let mut out = Vec::new();
        for (&s, r) in self.free.iter().rev() {
            if remaining <= target {
                break;
            }
            if r.dirty {
                out.push((s, r.len));
                remaining -= r.len;
            }
        }
        out
    }

    /// All dirty runs (for an explicit flush).
    pub(super) fn all_dirty(&self) -> Vec<(u64, u64)> {
        self.free
            .iter()
            .filter(|(_, r)| r.dirty)
            .map(|(&s, r)| (s, r.len))
            .collect()
    }

    /// Marks the free run starting at `start` (as returned by
    /// `punch_candidates`) clean after its hole was punched.
    pub(super) fn mark_clean(&mut self, start: u64, len: u64) {
        match self.free.get(&start) {
            Some(r) if r.dirty && r.len == len => {}
            _ => return,
        }
        self.free.remove(&start);
        self.dirty_free -= len;
        self.insert_free(start, len, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_pages_are_reused_before_growing() {
        let mut a = PageAllocator::new();
        let (p0, f0) = a.alloc(4);
        a.alloc(4);
        a.decref(p0, 4);
        let (p1, f1) = a.alloc(2);
        assert_eq!((p0, f0), (0, Fresh::Zero));
        assert_eq!((p1, f1), (0, Fresh::Dirty));
        assert_eq!(a.end(), 8);
    }

    #[test]
    fn dirty_pages_are_preferred_over_clean_ones() {
        let mut a = PageAllocator::new();
        a.alloc(8);
        a.decref(0, 4);
        a.mark_clean(0, 4);
        a.decref(6, 2);
        let (p, fresh) = a.alloc(2);
        assert_eq!((p, fresh), (6, Fresh::Dirty));
    }

    #[test]
    fn shared_pages_are_freed_on_last_reference() {
        let mut a = PageAllocator::new();
        a.alloc(1);
        a.incref(0, 1);
        a.decref(0, 1);
        assert_eq!(a.refcount(0), 1);
        assert_eq!(a.used_pages(), 1);
        a.decref(0, 1);
        assert_eq!(a.refcount(0), 0);
        assert_eq!(a.used_pages(), 0);
    }

    #[test]
    fn punching_waits_for_the_threshold_then_leaves_half() {
        let mut a = PageAllocator::new();
        a.set_punch_threshold(8);
        a.alloc(20);
        a.decref(0, 8);
        let below = a.punch_candidates();
        a.decref(10, 4);
        let above = a.punch_candidates();
        assert!(below.is_empty());
        // 12 dirty pages > 8: punch from the top (10..14 first) until <= 4.
        assert_eq!(above, vec![(10, 4), (0, 8)]);
        for (s, l) in above {
            a.mark_clean(s, l);
        }
        assert_eq!(a.dirty_free(), 0);
    }

    #[test]
    fn state_round_trip_keeps_every_count_in_few_bytes() {
        let mut a = PageAllocator::new();
        a.alloc(100_000);
        a.incref(10, 5);
        a.decref(50_000, 3);
        let saved = checkpoints::state::save(&a).unwrap();
        assert!(saved.bytes.len() < 1000, "{} bytes", saved.bytes.len());
        let b: PageAllocator = checkpoints::state::load(&saved).unwrap();
        assert_eq!(b.refs, a.refs);
        assert_eq!(b.free, a.free);
        assert_eq!(b.end, a.end);
        let empty: PageAllocator =
            checkpoints::state::load(&checkpoints::state::save(&PageAllocator::new()).unwrap())
                .unwrap();
        assert!(empty.refs.is_empty());
    }
}
