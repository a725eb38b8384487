//! The shared pages of an overlay file: the pages `MAP_SHARED` mappings
//! of the file map (compare Linux's page cache, `struct address_space`,
//! as far as shared file mappings need it).
//!
//! A page enters the table when a shared mapping first faults it (filled
//! from the file's contents) and is *authoritative* for its file range
//! from then on: the node's `read`, `write` and `truncate` go through it
//! (`NodeState::data` keeps stale bytes there, and the file size). Every
//! address space mapping the file maps the same memory-file page, so
//! stores through one mapping are seen by the others and by `read(2)`,
//! and `write(2)` is seen through the mappings.
//!
//! References: the table holds one reference to each of its pages; every
//! page-table entry mapping one holds another (taken by
//! [`SharedPages::get_or_create`] for the caller). The node's `Drop`
//! releases the table's references.
//!
//! Truncate: Linux (`truncate_pagecache`) unmaps the pages beyond the new
//! end of file from every mapping, so a later access is `SIGBUS`. The
//! sentry cannot reach into other address spaces' stubs from the
//! truncating task (each stub is driven by its own tracer thread), so:
//! a page wholly beyond the new end that nobody maps (reference count 1,
//! the table's) is freed; one still mapped is zeroed and *kept* in the
//! table, so the mappers and the file keep agreeing if the file grows
//! again (never a freed page left mapped, never two pages for one file
//! range). New faults beyond the end of file are `SIGBUS` as in Linux;
//! stores through pages that were already mapped are not (they land in
//! the zeroed page and are zeroed again when the file grows over them).
//!
//! Checkpoint: the table is saved with its node (offsets only); the pages'
//! contents are memory-file pages with a non-zero reference count, so
//! they are in [`MemoryFile::used_ranges`] and the image's memory section.
//!
//! Lock order: the table is part of `NodeState` (under `Node::state`);
//! its methods take the `MemoryFile` allocator lock inside it:
//! `MemoryManager` → `Node::state` → `MemoryFile`.

use std::collections::BTreeMap;
use std::sync::Arc;

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::mm::{MemoryFile, PAGE_SIZE};

/// File page index → memory-file page, for one overlay file.
#[derive(Debug, Default, Stateify)]
pub struct SharedPages {
    /// The sandbox's memory file, set by the first shared fault (every
    /// address space of a sandbox uses the same one).
    mf: Option<Arc<MemoryFile>>,
    /// File page index → byte offset of its memory-file page (one
    /// reference held by the table).
    pages: BTreeMap<u64, u64>,
}

impl SharedPages {
    /// Whether no page is shared.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Number of shared pages.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// The memory-file offset of page `index` with one more reference,
    /// owned by the caller (a page-table entry). A new page is allocated
    /// in `mf` and filled by `fill` (the file's bytes of that page, zero
    /// beyond the end of file). `ENOMEM` when the memory file cannot grow;
    /// `EINVAL` if `mf` is not the memory file of earlier pages.
    pub fn get_or_create(
        &mut self,
        mf: &Arc<MemoryFile>,
        index: u64,
        fill: impl FnOnce(&mut [u8]) -> SysResult<()>,
    ) -> SysResult<u64> {
        match &self.mf {
            Some(m) if !Arc::ptr_eq(m, mf) => {
                return Err(Errno::EINVAL.because("file shared through another memory file"))
            }
            Some(_) => {}
            None => self.mf = Some(mf.clone()),
        }
        if let Some(&off) = self.pages.get(&index) {
            mf.incref(off, 1);
            return Ok(off);
        }
        let mut buf = vec![0u8; PAGE_SIZE as usize];
        fill(&mut buf)?;
        let off = mf.allocate(1, false)?;
        if let Err(e) = mf.write(off, &buf) {
            mf.decref(off, 1);
            return Err(e);
        }
        self.pages.insert(index, off);
        mf.incref(off, 1);
        Ok(off)
    }

    /// The memory-file page of `index`, if shared.
    pub fn page(&self, index: u64) -> Option<u64> {
        self.pages.get(&index).copied()
    }

    /// Calls `f(page offset, byte range within the page, range within the
    /// caller's buffer)` for every shared page overlapping the file range
    /// `[off, off + len)`.
    fn for_each_in(
        &self,
        off: u64,
        len: usize,
        mut f: impl FnMut(u64, u64, std::ops::Range<usize>) -> SysResult<()>,
    ) -> SysResult<()> {
        if len == 0 || self.pages.is_empty() {
            return Ok(());
        }
        let end = off.saturating_add(len as u64);
        let first = off / PAGE_SIZE;
        let last = (end - 1) / PAGE_SIZE;
        for (&index, &page) in self.pages.range(first..=last) {
            let pstart = index * PAGE_SIZE;
            let lo = off.max(pstart);
            let hi = end.min(pstart + PAGE_SIZE);
            let buf = (lo - off) as usize..(hi - off) as usize;
            f(page, lo - pstart, buf)?;
        }
        Ok(())
    }

    /// Overwrites the parts of `buf` (the file's bytes at `off`, read from
    /// the node's data) that shared pages hold.
    pub fn read_into(&self, off: u64, buf: &mut [u8]) -> SysResult<()> {
        let Some(mf) = &self.mf else { return Ok(()) };
        self.for_each_in(off, buf.len(), |page, in_page, r| {
            mf.read(page + in_page, &mut buf[r])
        })
    }

    /// Writes `data` at file offset `off` into the shared pages it
    /// overlaps (the caller writes the node's data too).
    pub fn write(&self, off: u64, data: &[u8]) -> SysResult<()> {
        let Some(mf) = &self.mf else { return Ok(()) };
        self.for_each_in(off, data.len(), |page, in_page, r| {
            mf.write(page + in_page, &data[r])
        })
    }

    /// The file grows from `old_size` to `new_size`: the shared bytes in
    /// between (stores through a mapping beyond the end of file, which
    /// never belonged to the file) become zero, as the file's new bytes
    /// must read (the caller then writes what it writes).
    pub fn grow(&self, old_size: u64, new_size: u64) -> SysResult<()> {
        let Some(mf) = &self.mf else { return Ok(()) };
        let len = new_size.saturating_sub(old_size);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.for_each_in(old_size, len, |page, in_page, r| {
            mf.zero(page + in_page, r.len() as u64)
        })
    }

    /// The file shrinks to `size` (compare Linux `truncate_inode_pages`;
    /// see the module docs for what differs): a page wholly beyond it is
    /// freed if nobody maps it, else zeroed and kept; the partial last
    /// page is zeroed beyond `size`.
    pub fn truncate(&mut self, size: u64) -> SysResult<()> {
        let Some(mf) = self.mf.clone() else {
            return Ok(());
        };
        let keep = size.div_ceil(PAGE_SIZE);
        let beyond: Vec<(u64, u64)> = self.pages.range(keep..).map(|(&i, &p)| (i, p)).collect();
        for (i, page) in beyond {
            if mf.refcount(page) <= 1 {
                self.pages.remove(&i);
                mf.decref(page, 1);
            } else {
                mf.zero(page, PAGE_SIZE)?;
            }
        }
        let in_page = size % PAGE_SIZE;
        match self.page(size / PAGE_SIZE) {
            Some(page) if in_page != 0 => mf.zero(page + in_page, PAGE_SIZE - in_page),
            _ => Ok(()),
        }
    }

    /// Drops every page (the node is going away).
    pub fn release(&mut self) {
        if let Some(mf) = &self.mf {
            for (_, page) in std::mem::take(&mut self.pages) {
                mf.decref(page, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mf() -> Arc<MemoryFile> {
        MemoryFile::with_capacity(1 << 30).unwrap()
    }

    fn fill_with(b: u8) -> impl FnOnce(&mut [u8]) -> SysResult<()> {
        move |buf| {
            buf.fill(b);
            Ok(())
        }
    }

    #[test]
    fn a_page_is_created_once_and_referenced_per_caller() {
        let mf = mf();
        let mut t = SharedPages::default();
        let a = t.get_or_create(&mf, 3, fill_with(7)).unwrap();
        let b = t
            .get_or_create(&mf, 3, |_| panic!("existing page refilled"))
            .unwrap();
        let mut byte = [0u8; 1];
        mf.read(a + 100, &mut byte).unwrap();
        assert_eq!(a, b);
        assert_eq!(mf.refcount(a), 3, "table + two callers");
        assert_eq!(byte, [7]);
    }

    #[test]
    fn reads_and_writes_go_through_pages_across_boundaries() {
        let mf = mf();
        let mut t = SharedPages::default();
        let p1 = t.get_or_create(&mf, 1, fill_with(b'x')).unwrap();
        t.write(PAGE_SIZE - 2, b"abcd").unwrap();
        let mut buf = *b"....";
        t.read_into(PAGE_SIZE - 2, &mut buf).unwrap();
        let mut raw = [0u8; 2];
        mf.read(p1, &mut raw).unwrap();
        assert_eq!(&buf, b"..cd", "page 0 is not shared: left as read");
        assert_eq!(&raw, b"cd");
    }

    #[test]
    fn truncate_frees_unmapped_pages_and_zeroes_mapped_ones() {
        let mf = mf();
        let mut t = SharedPages::default();
        let p0 = t.get_or_create(&mf, 0, fill_with(9)).unwrap();
        let p1 = t.get_or_create(&mf, 1, fill_with(9)).unwrap();
        let p2 = t.get_or_create(&mf, 2, fill_with(9)).unwrap();
        mf.decref(p2, 1); // its mapper went away
        t.truncate(10).unwrap();
        let mut head = [1u8; 12];
        mf.read(p0, &mut head).unwrap();
        let mut mapped = [1u8; 4];
        mf.read(p1 + 100, &mut mapped).unwrap();
        assert_eq!(head[..10], [9u8; 10]);
        assert_eq!(head[10..], [0u8; 2], "partial page cut at the size");
        assert_eq!(t.page(1), Some(p1), "still mapped: kept");
        assert_eq!(mapped, [0u8; 4], "and zeroed");
        assert_eq!(t.page(2), None);
        assert_eq!(mf.refcount(p2), 0, "unmapped: freed");
    }

    #[test]
    fn growing_zeroes_bytes_stored_beyond_the_old_end() {
        let mf = mf();
        let mut t = SharedPages::default();
        let p0 = t.get_or_create(&mf, 0, fill_with(5)).unwrap();
        let p1 = t.get_or_create(&mf, 1, fill_with(5)).unwrap();
        t.grow(100, PAGE_SIZE + 2).unwrap();
        let mut a = [1u8; 2];
        mf.read(p0 + 99, &mut a).unwrap();
        let mut b = [1u8; 3];
        mf.read(p1, &mut b).unwrap();
        assert_eq!(a, [5, 0]);
        assert_eq!(b, [0, 0, 5]);
    }

    #[test]
    fn release_drops_the_table_references() {
        let mf = mf();
        let mut t = SharedPages::default();
        let p = t.get_or_create(&mf, 0, fill_with(1)).unwrap();
        mf.decref(p, 1);
        t.release();
        assert_eq!(mf.refcount(p), 0);
        assert!(t.is_empty());
    }

    #[test]
    fn a_second_memory_file_is_refused() {
        let mut t = SharedPages::default();
        t.get_or_create(&mf(), 0, fill_with(1)).unwrap();
        let e = t.get_or_create(&mf(), 1, fill_with(1)).unwrap_err();
        assert_eq!(e.code(), libc::EINVAL);
    }
}
