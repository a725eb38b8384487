//! `mmap`, `munmap`, `mprotect` and `madvise` (Linux: mm/mmap.c,
//! mm/mprotect.c, mm/madvise.c).

use super::manager::{page_up, platform_errno, MemoryManager, MMAP_MIN_ADDR};
use super::memfile::PAGE_SIZE;
use super::vma::{Vma, VmaBacking, VmaName};
use crate::errno::{Errno, SysResult};
use crate::platform::{Context, Prot};
use crate::vfs::MappedFile;

/// The file side of a file-backed `mmap`: the file and the access mode of
/// the open file description it came from (Linux checks `FMODE_READ` and,
/// for shared writable mappings, `FMODE_WRITE`).
#[derive(Clone, Debug)]
pub struct MmapFile {
    pub file: MappedFile,
    pub readable: bool,
    pub writable: bool,
}

/// An `mmap(2)` request, arguments as the guest passed them.
#[derive(Clone, Debug)]
pub struct MmapRequest {
    /// Hint, or the exact address with `MAP_FIXED*`.
    pub addr: u64,
    pub len: u64,
    /// `PROT_*` bits.
    pub prot: u64,
    /// `MAP_*` bits.
    pub flags: u64,
    /// The file for non-anonymous mappings (`None` when the fd was not a
    /// mappable file: the handler must have failed with `EBADF`/`ENODEV`
    /// already; here it gives `EBADF`). Ignored with `MAP_ANONYMOUS`.
    pub file: Option<MmapFile>,
    /// File offset (page-aligned).
    pub offset: u64,
}

impl MmapRequest {
    /// A private anonymous read/write mapping anywhere.
    pub fn anonymous(len: u64) -> MmapRequest {
        MmapRequest {
            addr: 0,
            len,
            prot: (libc::PROT_READ | libc::PROT_WRITE) as u64,
            flags: (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            file: None,
            offset: 0,
        }
    }
}

const MAP_TYPE: u64 = 0x0f;
const MAP_SHARED: u64 = libc::MAP_SHARED as u64;
const MAP_PRIVATE: u64 = libc::MAP_PRIVATE as u64;
const MAP_SHARED_VALIDATE: u64 = 0x03;
const MAP_FIXED: u64 = libc::MAP_FIXED as u64;
const MAP_ANONYMOUS: u64 = libc::MAP_ANONYMOUS as u64;
const MAP_32BIT: u64 = libc::MAP_32BIT as u64;
const MAP_GROWSDOWN: u64 = libc::MAP_GROWSDOWN as u64;
const MAP_DENYWRITE: u64 = libc::MAP_DENYWRITE as u64;
const MAP_EXECUTABLE: u64 = libc::MAP_EXECUTABLE as u64;
const MAP_LOCKED: u64 = libc::MAP_LOCKED as u64;
const MAP_NORESERVE: u64 = libc::MAP_NORESERVE as u64;
const MAP_POPULATE: u64 = libc::MAP_POPULATE as u64;
const MAP_NONBLOCK: u64 = libc::MAP_NONBLOCK as u64;
const MAP_STACK: u64 = libc::MAP_STACK as u64;
const MAP_HUGETLB: u64 = libc::MAP_HUGETLB as u64;
const MAP_SYNC: u64 = 0x80000;
const MAP_FIXED_NOREPLACE: u64 = 0x100000;
/// Huge-page size bits (`MAP_HUGE_SHIFT` = 26).
const MAP_HUGE_MASK: u64 = 0x3f << 26;

/// Flags `MAP_SHARED_VALIDATE` accepts (Linux `LEGACY_MAP_MASK` plus the
/// validated ones we know).
const KNOWN_FLAGS: u64 = MAP_TYPE
    | MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_32BIT
    | MAP_GROWSDOWN
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
    | MAP_FIXED_NOREPLACE
    | MAP_HUGE_MASK;

/// `MAP_32BIT` window (Linux arch/x86/kernel/sys_x86_64.c: 1 GiB..2 GiB).
const MAP_32BIT_LO: u64 = 0x4000_0000;
const MAP_32BIT_HI: u64 = 0x8000_0000;

const MADV_WIPEONFORK: i32 = 18;
const MADV_KEEPONFORK: i32 = 19;

/// `PROT_*` bits mprotect accepts besides R/W/X.
const PROT_GROWSDOWN: u64 = 0x0100_0000;
const PROT_GROWSUP: u64 = 0x0200_0000;

impl MemoryManager {
    /// `mmap(2)`. Returns the mapped address.
    ///
    /// Linux semantics (mm/mmap.c `do_mmap`): exactly one of
    /// `MAP_PRIVATE`/`MAP_SHARED`/`MAP_SHARED_VALIDATE`; `MAP_FIXED`
    /// replaces what was there (its pages leave the stub at once);
    /// `MAP_FIXED_NOREPLACE` fails with `EEXIST` on overlap; otherwise a
    /// free hint is honoured, else the highest free range below the mmap
    /// base is used. `MAP_POPULATE` prefaults. Nothing is mapped into the
    /// stub otherwise: pages arrive by demand faults.
    ///
    /// `MAP_SHARED` of an overlay file maps the file's shared pages (see
    /// `vfs/overlay/shared_pages.rs`): every mapping of the file, in any
    /// address space, sees the same bytes as `read(2)`/`write(2)`. It
    /// needs an fd open for reading (`EACCES`); `PROT_WRITE`, now or by a
    /// later `mprotect`, needs one open for writing too (Linux clears
    /// `VM_MAYWRITE` otherwise).
    ///
    /// Limitations (honest errors, not silent misbehaviour):
    /// - A host file opened directly by the sentry (not through the
    ///   overlay; tests and tools only) has no shared pages: a shared
    ///   writable mapping of it is `ENODEV`, a read-only one is served
    ///   like a private one.
    /// - `MAP_HUGETLB` is `EINVAL` (no hugetlbfs).
    pub fn mmap(&mut self, ctx: &mut dyn Context, req: MmapRequest) -> SysResult<u64> {
        let flags = req.flags;
        if !req.offset.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL.because("mmap offset not page-aligned"));
        }
        if req.len == 0 {
            return Err(Errno::EINVAL.because("mmap of zero length"));
        }
        let len = page_up(req.len)
            .filter(|&l| l <= self.max_addr)
            .ok_or(Errno::ENOMEM.because("mmap length too large"))?;
        if (req.offset / PAGE_SIZE)
            .checked_add(len / PAGE_SIZE)
            .is_none()
        {
            return Err(Errno::EOVERFLOW.because("mmap offset + length overflows"));
        }
        let shared = match flags & MAP_TYPE {
            MAP_SHARED => true,
            MAP_PRIVATE => false,
            MAP_SHARED_VALIDATE => {
                if flags & !KNOWN_FLAGS != 0 || flags & MAP_SYNC != 0 {
                    return Err(Errno::EOPNOTSUPP.because("unknown MAP_SHARED_VALIDATE flag"));
                }
                true
            }
            _ => return Err(Errno::EINVAL.because("mmap needs MAP_PRIVATE or MAP_SHARED")),
        };
        if flags & MAP_HUGETLB != 0 {
            return Err(Errno::EINVAL.because("MAP_HUGETLB is not supported"));
        }
        let prot = Prot::from_bits(req.prot);
        let anonymous = flags & MAP_ANONYMOUS != 0;
        let (backing, max_prot) = if anonymous {
            (VmaBacking::Anonymous, Prot::RWX)
        } else {
            let f = req
                .file
                .ok_or(Errno::EBADF.because("mmap of a non-mappable fd"))?;
            if !f.readable {
                return Err(Errno::EACCES.because("mmap of a file not open for reading"));
            }
            let max = if shared {
                if prot.write && !f.writable {
                    return Err(Errno::EACCES.because("shared writable mmap of a read-only fd"));
                }
                let has_pages = f.file.overlay_node().is_some();
                if prot.write && !has_pages {
                    return Err(Errno::ENODEV.because("shared writable mapping of a host file"));
                }
                if f.writable && has_pages {
                    Prot::RWX
                } else {
                    Prot::RX
                }
            } else {
                Prot::RWX
            };
            (
                VmaBacking::File {
                    file: f.file,
                    offset: req.offset,
                },
                max,
            )
        };

        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let addr = if fixed {
            let a = req.addr;
            if !a.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL.because("MAP_FIXED address not page-aligned"));
            }
            if a.checked_add(len).is_none_or(|e| e > self.max_addr) {
                return Err(Errno::ENOMEM.because("MAP_FIXED range beyond user space"));
            }
            if a < MMAP_MIN_ADDR {
                return Err(Errno::EPERM.because("MAP_FIXED below mmap_min_addr"));
            }
            if flags & MAP_FIXED == 0 && !self.is_free(a, a + len) {
                return Err(Errno::EEXIST.because("MAP_FIXED_NOREPLACE range is in use"));
            }
            a
        } else {
            self.choose_address(req.addr, len, flags & MAP_32BIT != 0)
                .ok_or(Errno::ENOMEM.because("no free address range"))?
        };

        self.remove_range(ctx, addr, addr + len)
            .map_err(platform_errno)?;
        let vma = Vma {
            start: addr,
            end: addr + len,
            prot,
            max_prot,
            shared,
            growsdown: flags & MAP_GROWSDOWN != 0,
            backing,
            name: VmaName::None,
            dontfork: false,
            wipeonfork: false,
        };
        self.vmas.insert(addr, vma);
        self.merge_range(addr, addr + len);
        if flags & MAP_POPULATE != 0 && flags & MAP_NONBLOCK == 0 {
            // Linux ignores population failures (mm_populate's result).
            let _ = self.populate_and_map(ctx, addr, addr + len);
        }
        Ok(addr)
    }

    /// Address choice for non-fixed mappings (compare
    /// arch_get_unmapped_area_topdown).
    fn choose_address(&self, hint: u64, len: u64, low32: bool) -> Option<u64> {
        if hint != 0 {
            if let Some(a) = page_up(hint) {
                if a >= MMAP_MIN_ADDR
                    && a.checked_add(len).is_some_and(|e| e <= self.max_addr)
                    && self.is_free(a, a + len)
                {
                    return Some(a);
                }
            }
        }
        if low32 {
            return self.find_free_topdown(len, MAP_32BIT_LO, MAP_32BIT_HI);
        }
        self.find_free_topdown(len, MMAP_MIN_ADDR, self.mmap_base)
            .or_else(|| self.find_free_topdown(len, MMAP_MIN_ADDR, self.max_addr))
    }

    /// Maps `[start, end)` as a fixed private anonymous VMA with `prot`
    /// and `name` (loader and brk). Replaces what was there.
    pub fn map_anonymous_fixed(
        &mut self,
        ctx: &mut dyn Context,
        start: u64,
        end: u64,
        prot: Prot,
        name: VmaName,
        growsdown: bool,
    ) -> SysResult<()> {
        if !start.is_multiple_of(PAGE_SIZE)
            || !end.is_multiple_of(PAGE_SIZE)
            || start >= end
            || end > self.max_addr
        {
            return Err(Errno::EINVAL.because("bad fixed anonymous range"));
        }
        self.remove_range(ctx, start, end).map_err(platform_errno)?;
        self.vmas.insert(
            start,
            Vma {
                start,
                end,
                prot,
                max_prot: Prot::RWX,
                shared: false,
                growsdown,
                backing: VmaBacking::Anonymous,
                name,
                dontfork: false,
                wipeonfork: false,
            },
        );
        self.merge_range(start, end);
        Ok(())
    }

    /// `munmap(2)` (Linux: `EINVAL` for an unaligned address or zero
    /// length; unmapping holes is fine).
    pub fn munmap(&mut self, ctx: &mut dyn Context, addr: u64, len: u64) -> SysResult<()> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL.because("munmap of unaligned address or zero length"));
        }
        let end = page_up(len)
            .and_then(|l| addr.checked_add(l))
            .filter(|&e| e <= self.max_addr)
            .ok_or(Errno::EINVAL.because("munmap range beyond user space"))?;
        self.remove_range(ctx, addr, end).map_err(platform_errno)
    }

    /// `mprotect(2)` (Linux mm/mprotect.c): the whole range must be mapped
    /// (`ENOMEM` otherwise, nothing changed), the new protection must be
    /// within each VMA's maximum (`EACCES`). Pages already in the stub are
    /// re-protected in place (copy-on-write pages stay read-only).
    pub fn mprotect(
        &mut self,
        ctx: &mut dyn Context,
        addr: u64,
        len: u64,
        prot_bits: u64,
    ) -> SysResult<()> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL.because("mprotect address not page-aligned"));
        }
        if prot_bits & !(7 | PROT_GROWSDOWN | PROT_GROWSUP) != 0
            || prot_bits & (PROT_GROWSDOWN | PROT_GROWSUP) == (PROT_GROWSDOWN | PROT_GROWSUP)
        {
            return Err(Errno::EINVAL.because("unknown PROT_ bits"));
        }
        if len == 0 {
            return Ok(());
        }
        let end = page_up(len)
            .and_then(|l| addr.checked_add(l))
            .ok_or(Errno::ENOMEM.because("mprotect range overflows"))?;
        let prot = Prot::from_bits(prot_bits);
        self.check_covered(addr, end, |v| {
            if exceeds(prot, v.max_prot) {
                Err(Errno::EACCES.because("mprotect beyond the mapping's maximum protection"))
            } else {
                Ok(())
            }
        })?;
        self.split_at(addr);
        self.split_at(end);
        for v in self.vmas.range_mut(addr..end).map(|(_, v)| v) {
            v.prot = prot;
        }
        self.reprotect(ctx, addr, end).map_err(platform_errno)?;
        self.merge_range(addr, end);
        Ok(())
    }

    /// Checks that VMAs cover `[start, end)` without holes (`ENOMEM`) and
    /// that `check` accepts each.
    pub(super) fn check_covered(
        &self,
        start: u64,
        end: u64,
        mut check: impl FnMut(&Vma) -> SysResult<()>,
    ) -> SysResult<()> {
        let mut at = start;
        while at < end {
            let v = self
                .find_vma(at)
                .ok_or(Errno::ENOMEM.because("range is not fully mapped"))?;
            check(v)?;
            at = v.end;
        }
        Ok(())
    }

    /// Brings the stub's protections of mapped pages in `[start, end)` in
    /// line with their VMAs (runs of contiguous pages with equal
    /// protection become one `protect`).
    pub(super) fn reprotect(
        &mut self,
        ctx: &mut dyn Context,
        start: u64,
        end: u64,
    ) -> Result<(), crate::platform::PlatformError> {
        let mut changes: Vec<(u64, Prot)> = Vec::new();
        for (&a, p) in self.ptes.range(start..end) {
            let Some(cur) = p.stub else { continue };
            let Some(v) = self.find_vma(a) else { continue };
            let want = self.effective_prot(v, p.off);
            if want != cur {
                changes.push((a, want));
            }
        }
        let mut i = 0;
        while i < changes.len() {
            let (s, prot) = changes[i];
            let mut j = i + 1;
            while j < changes.len()
                && changes[j].1 == prot
                && changes[j].0 == s + (j - i) as u64 * PAGE_SIZE
            {
                j += 1;
            }
            ctx.protect(s, (j - i) as u64 * PAGE_SIZE, prot)?;
            for &(a, _) in &changes[i..j] {
                if let Some(p) = self.ptes.get_mut(&a) {
                    p.stub = Some(prot);
                }
            }
            i = j;
        }
        Ok(())
    }

    /// `MADV_DONTFORK`/`DOFORK`/`WIPEONFORK`/`KEEPONFORK`: sets the VMA
    /// flags `fork` honours (Linux `VM_DONTCOPY`, `VM_WIPEONFORK`).
    fn set_fork_advice(&mut self, start: u64, end: u64, advice: i32) -> SysResult<()> {
        if start == end {
            return Ok(());
        }
        self.check_covered(start, end, |v| {
            if advice == MADV_WIPEONFORK && (v.shared || !v.is_anonymous()) {
                Err(Errno::EINVAL.because("MADV_WIPEONFORK on a non-private-anonymous mapping"))
            } else {
                Ok(())
            }
        })?;
        self.split_at(start);
        self.split_at(end);
        for v in self.vmas.range_mut(start..end).map(|(_, v)| v) {
            match advice {
                libc::MADV_DONTFORK => v.dontfork = true,
                libc::MADV_DOFORK => v.dontfork = false,
                MADV_WIPEONFORK => v.wipeonfork = true,
                _ => v.wipeonfork = false,
            }
        }
        self.merge_range(start, end);
        Ok(())
    }

    /// `madvise(2)` (Linux mm/madvise.c). `MADV_DONTNEED`: private pages
    /// are dropped (anonymous ones read back as zero, file ones as the
    /// file's contents) and their memory released; shared pages keep their
    /// contents and only leave the stub. `MADV_FREE`: like `DONTNEED` on
    /// private anonymous memory, `EINVAL` elsewhere. Hints that do not
    /// change semantics are accepted and ignored. `MADV_DONTFORK` /
    /// `MADV_WIPEONFORK` (and their inverses) are honoured by `fork`.
    /// Unknown advice: `EINVAL`.
    pub fn madvise(
        &mut self,
        ctx: &mut dyn Context,
        addr: u64,
        len: u64,
        advice: i32,
    ) -> SysResult<()> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL.because("madvise address not page-aligned"));
        }
        let end = page_up(len)
            .and_then(|l| addr.checked_add(l))
            .ok_or(Errno::EINVAL.because("madvise range overflows"))?;
        match advice {
            libc::MADV_DONTNEED | libc::MADV_FREE => {}
            libc::MADV_DONTFORK | libc::MADV_DOFORK | MADV_WIPEONFORK | MADV_KEEPONFORK => {
                return self.set_fork_advice(addr, end, advice);
            }
            libc::MADV_NORMAL
            | libc::MADV_RANDOM
            | libc::MADV_SEQUENTIAL
            | libc::MADV_WILLNEED
            | libc::MADV_MERGEABLE
            | libc::MADV_UNMERGEABLE
            | libc::MADV_HUGEPAGE
            | libc::MADV_NOHUGEPAGE
            | libc::MADV_DONTDUMP
            | libc::MADV_DODUMP
            | 20 // MADV_COLD
            | 21 // MADV_PAGEOUT
            | 22 // MADV_POPULATE_READ
            | 23 // MADV_POPULATE_WRITE
            => {
                return if len == 0 {
                    Ok(())
                } else {
                    self.check_covered(addr, end, |_| Ok(()))
                };
            }
            _ => return Err(Errno::EINVAL.because("unknown madvise advice")),
        }
        if len == 0 {
            return Ok(());
        }
        let mut at = addr;
        let mut hole = false;
        while at < end {
            let next = self.vmas.range(at..end).next().map(|(&s, _)| s);
            let (s, e, shared, anon) = match self.find_vma(at) {
                Some(v) => (at, v.end.min(end), v.shared, v.is_anonymous()),
                None => {
                    hole = true;
                    at = next.unwrap_or(end);
                    continue;
                }
            };
            if advice == libc::MADV_FREE && (shared || !anon) {
                return Err(Errno::EINVAL.because("MADV_FREE on a non-private-anonymous mapping"));
            }
            if shared {
                if self.ptes.range(s..e).any(|(_, p)| p.stub.is_some()) {
                    ctx.unmap(s, e - s).map_err(platform_errno)?;
                    for p in self.ptes.range_mut(s..e).map(|(_, p)| p) {
                        p.stub = None;
                    }
                }
            } else if self.drop_pages(s, e) {
                ctx.unmap(s, e - s).map_err(platform_errno)?;
            }
            at = e;
        }
        if hole {
            return Err(Errno::ENOMEM.because("madvise range not fully mapped"));
        }
        Ok(())
    }
}

/// Whether `p` asks for a permission `max` does not allow.
fn exceeds(p: Prot, max: Prot) -> bool {
    (p.read && !max.read) || (p.write && !max.write) || (p.exec && !max.exec)
}
