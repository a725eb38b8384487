//! Unit tests of address spaces over a real memory file and the
//! recording test context (`testctx.rs`), asserting what the stub has
//! mapped and what the memory file holds.

use std::io::Write;
use std::sync::Arc;

use super::testctx::{Call, TestCtx};
use super::*;
use crate::platform::Prot;
use crate::vfs::MappedFile;

/// Top of the simulated user address space.
const MAX: u64 = 0x7fff_ffff_f000;
const P: u64 = PAGE_SIZE;
/// Where tests place fixed mappings.
const A: u64 = 0x1000_0000;

fn setup() -> (Arc<MemoryFile>, MemoryManager, TestCtx) {
    let mf = MemoryFile::with_capacity(1 << 30).unwrap();
    let mm = MemoryManager::new(mf.clone(), MAX);
    (mf, mm, TestCtx::new())
}

fn fixed(addr: u64, len: u64, prot: u64, flags: u64) -> MmapRequest {
    MmapRequest {
        addr,
        len,
        prot,
        flags: flags | libc::MAP_FIXED as u64,
        file: None,
        offset: 0,
    }
}

const RW: u64 = (libc::PROT_READ | libc::PROT_WRITE) as u64;
const PRIV_ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
const SHARED_ANON: u64 = (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u64;

fn code(r: Result<impl std::fmt::Debug, crate::errno::Errno>) -> i32 {
    r.unwrap_err().code()
}

fn spans(mm: &MemoryManager) -> Vec<(u64, u64)> {
    mm.vmas().map(|v| (v.start, v.end)).collect()
}

fn temp_file(contents: &[u8]) -> (tempfile::NamedTempFile, MappedFile) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(contents).unwrap();
    let m = MappedFile::open_host(f.path()).unwrap();
    (f, m)
}

#[test]
fn anonymous_mmap_is_placed_below_the_mmap_base_top_down() {
    let (_mf, mut mm, mut ctx) = setup();
    let a = mm.mmap(&mut ctx, MmapRequest::anonymous(3 * P)).unwrap();
    let b = mm.mmap(&mut ctx, MmapRequest::anonymous(P)).unwrap();
    assert_eq!(a, MAX - MMAP_BASE_GAP - 3 * P);
    assert_eq!(b, a - P);
    assert!(ctx.calls.is_empty(), "mmap must not map eagerly");
}

#[test]
fn free_hint_is_honoured_and_busy_hint_is_not() {
    let (_mf, mut mm, mut ctx) = setup();
    let mut req = MmapRequest::anonymous(P);
    req.addr = A + 5;
    let a = mm.mmap(&mut ctx, req.clone()).unwrap();
    let b = mm.mmap(&mut ctx, req).unwrap();
    assert_eq!(a, A + P);
    assert_ne!(b, a);
}

#[test]
fn map_fixed_replaces_old_pages_and_unmaps_them_from_the_stub() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 4 * P, RW, PRIV_ANON)).unwrap();
    ctx.guest_write(&mut mm, &mf, A + P, b"old").unwrap();
    mm.mmap(&mut ctx, fixed(A, 2 * P, RW, PRIV_ANON)).unwrap();
    assert!(ctx.calls.contains(&Call::Unmap {
        addr: A,
        len: 2 * P
    }));
    assert!(ctx.at(A + P).is_none());
    assert_eq!(
        ctx.guest_read(&mut mm, &mf, A + P, 3).unwrap(),
        vec![0, 0, 0]
    );
}

#[test]
fn map_fixed_noreplace_refuses_an_overlap() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 2 * P, RW, PRIV_ANON)).unwrap();
    let mut req = fixed(A + P, P, RW, PRIV_ANON);
    req.flags = PRIV_ANON | 0x100000;
    assert_eq!(code(mm.mmap(&mut ctx, req)), libc::EEXIST);
}

#[test]
fn mmap_argument_errors_match_linux() {
    let (_mf, mut mm, mut ctx) = setup();
    let mut zero = MmapRequest::anonymous(0);
    let mut unaligned_off = MmapRequest::anonymous(P);
    unaligned_off.offset = 5;
    let mut no_type = MmapRequest::anonymous(P);
    no_type.flags = libc::MAP_ANONYMOUS as u64;
    assert_eq!(code(mm.mmap(&mut ctx, zero.clone())), libc::EINVAL);
    assert_eq!(code(mm.mmap(&mut ctx, unaligned_off)), libc::EINVAL);
    assert_eq!(code(mm.mmap(&mut ctx, no_type)), libc::EINVAL);
    zero.len = u64::MAX - 10;
    assert_eq!(code(mm.mmap(&mut ctx, zero)), libc::ENOMEM);
    assert_eq!(
        code(mm.mmap(&mut ctx, fixed(A + 1, P, RW, PRIV_ANON))),
        libc::EINVAL
    );
}

#[test]
fn first_touch_maps_a_fault_around_window_in_one_call() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 64 * P, RW, PRIV_ANON)).unwrap();
    mm.handle_fault(&mut ctx, A + 20 * P + 7, None).unwrap();
    let window = A + 16 * P;
    assert_eq!(ctx.calls.len(), 1);
    assert!(matches!(ctx.calls[0], Call::Map { addr, len, prot, .. }
        if addr == window && len == FAULT_AROUND_PAGES * P && prot == Prot::RW));
    assert_eq!(mf.used_bytes(), FAULT_AROUND_PAGES * P);
    assert!(ctx.at(window - P).is_none());
}

#[test]
fn faults_outside_mappings_or_permissions_are_segv() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, P, libc::PROT_READ as u64, PRIV_ANON))
        .unwrap();
    let unmapped = mm.handle_fault(&mut ctx, A + P, None).unwrap_err();
    let ro = ctx.guest_write(&mut mm, &mf, A, b"x").unwrap_err();
    assert!(matches!(unmapped, FaultError::NoMapping));
    assert_eq!(unmapped.signal(), Some((libc::SIGSEGV, 1)));
    assert!(matches!(ro, FaultError::AccessDenied));
    assert!(matches!(
        mm.handle_fault(&mut ctx, A, Some(true)).unwrap_err(),
        FaultError::AccessDenied
    ));
}

#[test]
fn partial_munmap_splits_the_vma_and_keeps_the_rest() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 4 * P, RW, PRIV_ANON)).unwrap();
    ctx.guest_write(&mut mm, &mf, A, b"keep").unwrap();
    mm.munmap(&mut ctx, A + P, 2 * P).unwrap();
    assert_eq!(spans(&mm), vec![(A, A + P), (A + 3 * P, A + 4 * P)]);
    assert!(ctx.at(A + P).is_none() && ctx.at(A + 2 * P).is_none());
    assert!(mm.pte(A + P).is_none());
    assert_eq!(ctx.guest_read(&mut mm, &mf, A, 4).unwrap(), b"keep");
    assert!(matches!(
        mm.handle_fault(&mut ctx, A + P, None).unwrap_err(),
        FaultError::NoMapping
    ));
}

#[test]
fn munmap_frees_memory_file_pages() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 16 * P, RW, PRIV_ANON)).unwrap();
    ctx.guest_write(&mut mm, &mf, A, b"x").unwrap();
    let used = mf.used_bytes();
    mm.munmap(&mut ctx, A, 16 * P).unwrap();
    assert_eq!(used, 16 * P);
    assert_eq!(mf.used_bytes(), 0);
}

#[test]
fn mprotect_splits_reprotects_mapped_pages_and_merges_back() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 3 * P, RW, PRIV_ANON)).unwrap();
    ctx.guest_write(&mut mm, &mf, A, b"x").unwrap();
    mm.mprotect(&mut ctx, A + P, P, libc::PROT_READ as u64)
        .unwrap();
    let split = spans(&mm);
    let stub_prot = ctx.at(A + P).unwrap().1;
    let write_err = ctx.guest_write(&mut mm, &mf, A + P, b"y").unwrap_err();
    mm.mprotect(&mut ctx, A + P, P, RW).unwrap();
    assert_eq!(
        split,
        vec![(A, A + P), (A + P, A + 2 * P), (A + 2 * P, A + 3 * P)]
    );
    assert_eq!(stub_prot, Prot::R);
    assert!(matches!(write_err, FaultError::AccessDenied));
    assert_eq!(spans(&mm), vec![(A, A + 3 * P)]);
    assert_eq!(ctx.at(A + P).unwrap().1, Prot::RW);
}

#[test]
fn mprotect_over_a_hole_is_enomem_and_changes_nothing() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    let r = mm.mprotect(&mut ctx, A, 2 * P, libc::PROT_READ as u64);
    assert_eq!(code(r), libc::ENOMEM);
    assert_eq!(mm.find_vma(A).unwrap().prot, Prot::RW);
}

#[test]
fn mremap_grows_in_place_when_the_space_after_is_free() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 2 * P, RW, PRIV_ANON)).unwrap();
    let r = mm.mremap(&mut ctx, A, 2 * P, 5 * P, 0, 0).unwrap();
    assert_eq!(r, A);
    assert_eq!(spans(&mm), vec![(A, A + 5 * P)]);
}

#[test]
fn mremap_shrinks_by_unmapping_the_tail() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 4 * P, RW, PRIV_ANON)).unwrap();
    ctx.guest_write(&mut mm, &mf, A + 3 * P, b"z").unwrap();
    let r = mm.mremap(&mut ctx, A, 4 * P, P, 0, 0).unwrap();
    assert_eq!(r, A);
    assert_eq!(spans(&mm), vec![(A, A + P)]);
    assert!(ctx.at(A + 3 * P).is_none());
}

#[test]
fn mremap_move_keeps_the_memory_file_pages() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 2 * P, RW, PRIV_ANON)).unwrap();
    mm.mmap(&mut ctx, fixed(A + 2 * P, P, RW, PRIV_ANON))
        .unwrap(); // blocks growth
    mm.mprotect(&mut ctx, A + 2 * P, P, libc::PROT_READ as u64)
        .unwrap();
    ctx.guest_write(&mut mm, &mf, A + P, b"moved").unwrap();
    let off = mm.pte(A + P).unwrap().off;
    let no_move = mm.mremap(&mut ctx, A, 2 * P, 4 * P, 0, 0);
    let to = mm.mremap(&mut ctx, A, 2 * P, 4 * P, 1, 0).unwrap();
    assert_eq!(code(no_move), libc::ENOMEM);
    assert_ne!(to, A);
    assert_eq!(mm.pte(to + P).unwrap().off, off);
    assert!(mm.find_vma(A).is_none());
    assert!(ctx.at(A + P).is_none());
    assert_eq!(ctx.guest_read(&mut mm, &mf, to + P, 5).unwrap(), b"moved");
    assert_eq!(mm.find_vma(to).unwrap().end, to + 4 * P);
}

#[test]
fn mremap_fixed_moves_to_the_exact_address() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    ctx.guest_write(&mut mm, &mf, A, b"f").unwrap();
    let dst = A + 100 * P;
    let r = mm.mremap(&mut ctx, A, P, P, 3, dst).unwrap();
    assert_eq!(r, dst);
    assert_eq!(ctx.guest_read(&mut mm, &mf, dst, 1).unwrap(), b"f");
    assert_eq!(code(mm.mremap(&mut ctx, A, P, P, 3, dst + P)), libc::EFAULT);
}

#[test]
fn brk_grows_a_heap_vma_and_shrinks_it() {
    let (mf, mut mm, mut ctx) = setup();
    mm.set_brk_start(A + 10);
    let start = mm.current_brk();
    let grown = mm.brk(&mut ctx, start + 3 * P + 1);
    ctx.guest_write(&mut mm, &mf, start + 3 * P, b"h").unwrap();
    let heap_end = mm.find_vma(start).unwrap().end;
    let shrunk = mm.brk(&mut ctx, start + P);
    assert_eq!(start, A + P);
    assert_eq!(grown, start + 3 * P + 1);
    assert_eq!(heap_end, start + 4 * P);
    assert_eq!(mm.find_vma(start).unwrap().name, VmaName::Heap);
    assert_eq!(shrunk, start + P);
    assert!(mm.find_vma(start + 3 * P).is_none());
    assert_eq!(
        mm.brk(&mut ctx, start - P),
        start + P,
        "below start is refused"
    );
}

#[test]
fn brk_refuses_to_grow_into_another_mapping() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.set_brk_start(A);
    mm.mmap(&mut ctx, fixed(A + 2 * P, P, RW, PRIV_ANON))
        .unwrap();
    assert_eq!(mm.brk(&mut ctx, A + 4 * P), A);
}

#[test]
fn copy_out_then_copy_in_round_trips_across_pages() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 2 * P, RW, PRIV_ANON)).unwrap();
    mm.copy_out(&mut ctx, A + P - 3, b"abcdef").unwrap();
    let mut buf = [0u8; 6];
    mm.copy_in(&mut ctx, A + P - 3, &mut buf).unwrap();
    assert_eq!(&buf, b"abcdef");
    assert!(
        ctx.calls.is_empty(),
        "sentry-side copies do not map the stub"
    );
}

#[test]
fn copy_crossing_into_an_unmapped_page_is_efault_and_writes_nothing() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    let w = mm.copy_out(&mut ctx, A + P - 2, b"1234");
    let mut buf = [0u8; 4];
    let r = mm.copy_in(&mut ctx, A + P - 2, &mut buf);
    let mut last = [9u8; 2];
    mm.copy_in(&mut ctx, A + P - 2, &mut last).unwrap();
    assert_eq!(code(w), libc::EFAULT);
    assert_eq!(code(r), libc::EFAULT);
    assert_eq!(last, [0, 0]);
    assert_eq!(
        mm.copy_out_partial(&mut ctx, A + P - 2, b"1234").unwrap(),
        2
    );
    assert_eq!(
        code(mm.copy_in(&mut ctx, u64::MAX - 1, &mut buf)),
        libc::EFAULT
    );
}

#[test]
fn copy_out_to_read_only_memory_is_efault() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, P, libc::PROT_READ as u64, PRIV_ANON))
        .unwrap();
    assert_eq!(code(mm.copy_out(&mut ctx, A, b"x")), libc::EFAULT);
    let mut b = [1u8];
    mm.copy_in(&mut ctx, A, &mut b).unwrap();
    assert_eq!(b, [0]);
}

#[test]
fn read_cstring_stops_at_nul_and_limits_length() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 2 * P, RW, PRIV_ANON)).unwrap();
    mm.copy_out(&mut ctx, A + P - 3, b"hello\0").unwrap();
    mm.copy_out(&mut ctx, A + 2 * P - 3, b"abc").unwrap();
    assert_eq!(mm.read_cstring(&mut ctx, A + P - 3, 10).unwrap(), b"hello");
    assert_eq!(
        code(mm.read_cstring(&mut ctx, A + P - 3, 4)),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        code(mm.read_cstring(&mut ctx, A + 2 * P - 3, 100)),
        libc::EFAULT
    );
}

#[test]
fn iovecs_are_read_and_scattered() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    let mut raw = Vec::new();
    for (b, l) in [(A + 100, 2u64), (A + 200, 3)] {
        raw.extend_from_slice(&b.to_le_bytes());
        raw.extend_from_slice(&l.to_le_bytes());
    }
    mm.copy_out(&mut ctx, A, &raw).unwrap();
    let iovs = mm.read_iovecs(&mut ctx, A, 2).unwrap();
    let n = mm.copy_out_iovecs(&mut ctx, &iovs, b"abcd").unwrap();
    let back = mm.copy_in_iovecs(&mut ctx, &iovs, 100).unwrap();
    assert_eq!(n, 4);
    assert_eq!(back, b"abcd\0");
    assert_eq!(code(mm.read_iovecs(&mut ctx, A, 1025)), libc::EINVAL);
}

#[test]
fn fork_is_copy_on_write_for_both_sides() {
    let (mf, mut parent, mut pctx) = setup();
    parent.mmap(&mut pctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"A").unwrap();
    let shared_off = parent.pte(A).unwrap().off;
    let mut child = parent.fork(&mut pctx).unwrap();
    let mut cctx = TestCtx::new();
    let parent_prot_after_fork = pctx.at(A).unwrap().1;
    let rc_after_fork = mf.refcount(shared_off);
    cctx.guest_write(&mut child, &mf, A, b"B").unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"C").unwrap();
    assert_eq!(parent_prot_after_fork, Prot::R);
    assert_eq!(rc_after_fork, 2);
    assert_eq!(pctx.guest_read(&mut parent, &mf, A, 1).unwrap(), b"C");
    assert_eq!(cctx.guest_read(&mut child, &mf, A, 1).unwrap(), b"B");
    assert_ne!(parent.pte(A).unwrap().off, child.pte(A).unwrap().off);
    // The last holder took the original page over instead of copying it.
    assert_eq!(parent.pte(A).unwrap().off, shared_off);
    assert_eq!(mf.refcount(shared_off), 1);
}

#[test]
fn child_read_fault_maps_cow_page_read_only_and_shares_it() {
    let (mf, mut parent, mut pctx) = setup();
    parent.mmap(&mut pctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"A").unwrap();
    let mut child = parent.fork(&mut pctx).unwrap();
    let mut cctx = TestCtx::new();
    let seen = cctx.guest_read(&mut child, &mf, A, 1).unwrap();
    assert_eq!(seen, b"A");
    assert_eq!(cctx.at(A).unwrap(), (parent.pte(A).unwrap().off, Prot::R));
}

#[test]
fn releasing_both_sides_of_a_fork_frees_every_page() {
    let (mf, mut parent, mut pctx) = setup();
    parent
        .mmap(&mut pctx, fixed(A, 4 * P, RW, PRIV_ANON))
        .unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"A").unwrap();
    let mut child = parent.fork(&mut pctx).unwrap();
    let mut cctx = TestCtx::new();
    cctx.guest_write(&mut child, &mf, A, b"B").unwrap();
    let used_with_both = mf.used_bytes();
    drop(parent);
    let used_child_only = mf.used_bytes();
    drop(child);
    assert_eq!(used_with_both, 5 * P);
    assert_eq!(used_child_only, 4 * P);
    assert_eq!(mf.used_bytes(), 0);
}

#[test]
fn copy_out_to_a_cow_page_breaks_sharing_and_remaps_the_stub() {
    let (mf, mut parent, mut pctx) = setup();
    parent.mmap(&mut pctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"A").unwrap();
    let old = parent.pte(A).unwrap().off;
    let mut child = parent.fork(&mut pctx).unwrap();
    parent.copy_out(&mut pctx, A, b"P").unwrap();
    let new = parent.pte(A).unwrap().off;
    let mut cctx = TestCtx::new();
    assert_ne!(new, old);
    assert_eq!(pctx.at(A).unwrap(), (new, Prot::RW));
    assert_eq!(cctx.guest_read(&mut child, &mf, A, 1).unwrap(), b"A");
    assert_eq!(pctx.guest_read(&mut parent, &mf, A, 1).unwrap(), b"P");
}

#[test]
fn shared_anonymous_memory_stays_shared_across_fork() {
    let (mf, mut parent, mut pctx) = setup();
    parent
        .mmap(&mut pctx, fixed(A, 2 * P, RW, SHARED_ANON))
        .unwrap();
    let mut child = parent.fork(&mut pctx).unwrap();
    let mut cctx = TestCtx::new();
    // Neither side touched the second page before the fork.
    pctx.guest_write(&mut parent, &mf, A + P, b"S").unwrap();
    assert_eq!(cctx.guest_read(&mut child, &mf, A + P, 1).unwrap(), b"S");
    cctx.guest_write(&mut child, &mf, A, b"T").unwrap();
    assert_eq!(pctx.guest_read(&mut parent, &mf, A, 1).unwrap(), b"T");
}

#[test]
fn madvise_dontneed_zeroes_private_anonymous_memory() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    ctx.guest_write(&mut mm, &mf, A, b"gone").unwrap();
    mm.madvise(&mut ctx, A, P, libc::MADV_DONTNEED).unwrap();
    assert_eq!(mf.used_bytes(), 0);
    assert!(ctx.at(A).is_none());
    assert_eq!(ctx.guest_read(&mut mm, &mf, A, 4).unwrap(), vec![0; 4]);
    assert_eq!(code(mm.madvise(&mut ctx, A, P, 9999)), libc::EINVAL);
}

#[test]
fn private_file_mapping_reads_the_file_and_sigbus_past_eof() {
    let (mf, mut mm, mut ctx) = setup();
    let mut contents = vec![b'x'; P as usize];
    contents.extend_from_slice(b"second page");
    let (_tmp, file) = temp_file(&contents);
    let req = MmapRequest {
        addr: A,
        len: 4 * P,
        prot: RW,
        flags: (libc::MAP_PRIVATE | libc::MAP_FIXED) as u64,
        file: Some(MmapFile {
            file: file.clone(),
            readable: true,
            writable: false,
        }),
        offset: 0,
    };
    mm.mmap(&mut ctx, req).unwrap();
    let read = ctx.guest_read(&mut mm, &mf, A + P, 12).unwrap();
    ctx.guest_write(&mut mm, &mf, A + P, b"S").unwrap();
    let past = mm.handle_fault(&mut ctx, A + 2 * P, None).unwrap_err();
    let mut on_disk = [0u8; 1];
    file.read_at(P, &mut on_disk).unwrap();
    assert_eq!(read, b"second page\0");
    assert!(matches!(past, FaultError::BeyondEof));
    assert_eq!(past.signal(), Some((libc::SIGBUS, 2)));
    assert_eq!(&on_disk, b"s", "private writes never reach the file");
}

#[test]
fn shared_writable_file_mapping_is_refused_and_readonly_one_cannot_gain_write() {
    let (_mf, mut mm, mut ctx) = setup();
    let (_tmp, file) = temp_file(b"data");
    let mut req = MmapRequest {
        addr: 0,
        len: P,
        prot: RW,
        flags: libc::MAP_SHARED as u64,
        file: Some(MmapFile {
            file,
            readable: true,
            writable: true,
        }),
        offset: 0,
    };
    let rw = mm.mmap(&mut ctx, req.clone());
    req.prot = libc::PROT_READ as u64;
    let ro = mm.mmap(&mut ctx, req).unwrap();
    assert_eq!(code(rw), libc::ENODEV);
    assert_eq!(code(mm.mprotect(&mut ctx, ro, P, RW)), libc::EACCES);
}

#[test]
fn maps_text_uses_linux_format() {
    let (_mf, mut mm, mut ctx) = setup();
    let (tmp, file) = temp_file(b"data");
    mm.set_brk_start(0x5000_0000);
    mm.brk(&mut ctx, 0x5000_1000);
    let req = MmapRequest {
        addr: 0x4000_0000,
        len: P,
        prot: (libc::PROT_READ | libc::PROT_EXEC) as u64,
        flags: (libc::MAP_PRIVATE | libc::MAP_FIXED) as u64,
        file: Some(MmapFile {
            file: file.clone(),
            readable: true,
            writable: false,
        }),
        offset: 0,
    };
    mm.mmap(&mut ctx, req).unwrap();
    let text = mm.maps_text();
    let lines: Vec<&str> = text.lines().collect();
    let file_prefix = "40000000-40001000 r-xp 00000000 ".to_string();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with(&file_prefix), "{}", lines[0]);
    assert!(lines[0].ends_with(&format!(" {}", tmp.path().display())));
    assert_eq!(lines[0].find('/').unwrap(), 73);
    assert!(lines[0].contains(&format!(" {} ", file.ino())));
    assert!(lines[1].starts_with("50000000-50001000 rw-p 00000000 00:00 0 "));
    assert!(lines[1].ends_with("[heap]"));
    assert_eq!(mm.usage().virtual_size, 2 * P);
}

#[test]
fn mprotect_never_gives_write_to_a_cow_page() {
    let (mf, mut parent, mut pctx) = setup();
    parent.mmap(&mut pctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"A").unwrap();
    let mut child = parent.fork(&mut pctx).unwrap();
    parent
        .mprotect(&mut pctx, A, P, libc::PROT_READ as u64)
        .unwrap();
    parent.mprotect(&mut pctx, A, P, RW).unwrap();
    let stub_prot = pctx.at(A).unwrap().1;
    pctx.guest_write(&mut parent, &mf, A, b"P").unwrap();
    let mut cctx = TestCtx::new();
    assert_eq!(stub_prot, Prot::R);
    assert_eq!(cctx.guest_read(&mut child, &mf, A, 1).unwrap(), b"A");
}

#[test]
fn map_populate_maps_the_whole_range_up_front() {
    let (mf, mut mm, mut ctx) = setup();
    let mut req = fixed(A, 40 * P, RW, PRIV_ANON);
    req.flags |= libc::MAP_POPULATE as u64;
    mm.mmap(&mut ctx, req).unwrap();
    assert_eq!(ctx.pages.len(), 40);
    assert_eq!(mf.used_bytes(), 40 * P);
}

#[test]
fn unmap_all_empties_the_address_space_and_the_stub() {
    let (mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, 2 * P, RW, PRIV_ANON)).unwrap();
    ctx.guest_write(&mut mm, &mf, A, b"x").unwrap();
    mm.unmap_all(&mut ctx).unwrap();
    assert_eq!(mm.vmas().count(), 0);
    assert!(ctx.pages.is_empty());
    assert_eq!(mf.used_bytes(), 0);
}

#[test]
fn a_known_write_fault_on_a_cow_page_copies_at_once() {
    let (mf, mut parent, mut pctx) = setup();
    parent.mmap(&mut pctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"A").unwrap();
    let old = parent.pte(A).unwrap().off;
    let mut child = parent.fork(&mut pctx).unwrap();
    let mut cctx = TestCtx::new();
    child.handle_fault(&mut cctx, A, Some(true)).unwrap();
    let (off, prot) = cctx.at(A).unwrap();
    assert_ne!(off, old);
    assert_eq!(prot, Prot::RW);
    assert_eq!(mf.refcount(old), 1);
}

#[test]
fn dontfork_and_wipeonfork_shape_the_child() {
    let (mf, mut parent, mut pctx) = setup();
    parent
        .mmap(&mut pctx, fixed(A, 3 * P, RW, PRIV_ANON))
        .unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"a").unwrap();
    pctx.guest_write(&mut parent, &mf, A + P, b"b").unwrap();
    parent
        .madvise(&mut pctx, A, P, libc::MADV_DONTFORK)
        .unwrap();
    parent.madvise(&mut pctx, A + P, P, 18).unwrap();
    let mut child = parent.fork(&mut pctx).unwrap();
    let mut cctx = TestCtx::new();
    let gone = child.handle_fault(&mut cctx, A, None).unwrap_err();
    assert!(matches!(gone, FaultError::NoMapping));
    assert_eq!(cctx.guest_read(&mut child, &mf, A + P, 1).unwrap(), [0]);
    assert_eq!(pctx.guest_read(&mut parent, &mf, A + P, 1).unwrap(), b"b");
    assert_eq!(spans(&parent).len(), 3);
}

#[test]
fn address_spaces_round_trip_through_a_checkpoint() {
    let (mf, mut parent, mut pctx) = setup();
    let (_tmp, file) = temp_file(b"file contents");
    parent
        .mmap(&mut pctx, fixed(A, 2 * P, RW, PRIV_ANON))
        .unwrap();
    let req = MmapRequest {
        addr: A + 10 * P,
        len: P,
        prot: libc::PROT_READ as u64,
        flags: (libc::MAP_PRIVATE | libc::MAP_FIXED) as u64,
        file: Some(MmapFile {
            file,
            readable: true,
            writable: false,
        }),
        offset: 0,
    };
    parent.mmap(&mut pctx, req).unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"before").unwrap();
    let child = parent.fork(&mut pctx).unwrap();
    let maps = parent.maps_text();
    let graph = (mf.clone(), parent, child);
    let saved = checkpoints::state::save(&graph).unwrap();
    let (mf2, mut parent2, mut child2): (Arc<MemoryFile>, MemoryManager, MemoryManager) =
        checkpoints::state::load(&saved).unwrap();
    let stub_after_load = parent2.pte(A).unwrap().stub;
    for (off, len) in mf.used_ranges() {
        mf2.write(off, mf.slice(off, len).unwrap()).unwrap();
    }
    let (mut p2, mut c2) = (TestCtx::new(), TestCtx::new());
    c2.guest_write(&mut child2, &mf2, A, b"child!").unwrap();
    assert!(Arc::ptr_eq(parent2.memory_file(), &mf2));
    assert!(Arc::ptr_eq(child2.memory_file(), &mf2));
    assert_eq!(parent2.maps_text(), maps);
    assert_eq!(p2.guest_read(&mut parent2, &mf2, A, 6).unwrap(), b"before");
    assert_eq!(c2.guest_read(&mut child2, &mf2, A, 6).unwrap(), b"child!");
    assert_eq!(
        p2.guest_read(&mut parent2, &mf2, A + 10 * P, 4).unwrap(),
        b"file"
    );
    assert_eq!(stub_after_load, None, "a restored stub starts empty");
}

/// All threads of a restored process start at once and may fault on the
/// same page before one of them maps it: each thread gets its own retry,
/// and a thread faulting twice in a row on a mapped page is denied.
#[test]
fn every_thread_gets_one_retry_on_a_page_a_sibling_mapped() {
    let (_mf, mut mm, mut ctx) = setup();
    mm.mmap(&mut ctx, fixed(A, P, RW, PRIV_ANON)).unwrap();
    let mut threads = [None; 4];
    mm.handle_thread_fault(&mut ctx, A, None, &mut threads[0])
        .unwrap();
    for t in &mut threads[1..] {
        mm.handle_thread_fault(&mut ctx, A + 8, Some(false), t)
            .unwrap();
    }
    mm.handle_thread_fault(&mut ctx, A, Some(false), &mut threads[0])
        .unwrap();
    assert!(matches!(
        mm.handle_thread_fault(&mut ctx, A, Some(false), &mut threads[1])
            .unwrap_err(),
        FaultError::AccessDenied
    ));
}

/// An overlay over an empty temporary directory, with one regular file
/// `/f` holding `contents`, as a mapped file.
fn overlay_file(contents: &[u8]) -> (tempfile::TempDir, Arc<crate::vfs::overlay::Node>) {
    use crate::vfs::overlay::{NewNode, Overlay};
    let tmp = tempfile::tempdir().unwrap();
    let ov = Overlay::new(tmp.path()).unwrap();
    let node = ov
        .create(ov.root(), b"f", NewNode::Regular, 0o644, 0, 0)
        .unwrap();
    node.write_at(0, contents).unwrap();
    (tmp, node)
}

fn shared_file(
    node: &Arc<crate::vfs::overlay::Node>,
    addr: u64,
    len: u64,
    writable: bool,
) -> MmapRequest {
    MmapRequest {
        addr,
        len,
        prot: if writable { RW } else { libc::PROT_READ as u64 },
        flags: (libc::MAP_SHARED | libc::MAP_FIXED) as u64,
        file: Some(MmapFile {
            file: MappedFile::overlay(node.clone(), "/f".into()),
            readable: true,
            writable,
        }),
        offset: 0,
    }
}

fn file_bytes(node: &crate::vfs::overlay::Node, off: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let n = node.read_at(off, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn shared_file_mapping_stores_reach_read_and_writes_reach_the_mapping() {
    let (mf, mut mm, mut ctx) = setup();
    let (_tmp, node) = overlay_file(&vec![b'.'; 2 * P as usize]);
    mm.mmap(&mut ctx, shared_file(&node, A, 2 * P, true))
        .unwrap();
    ctx.guest_write(&mut mm, &mf, A + 10, b"stored").unwrap();
    node.write_at(P + 5, b"written").unwrap();
    let seen = ctx.guest_read(&mut mm, &mf, A + P + 5, 7).unwrap();
    assert_eq!(file_bytes(&node, 8, 10), b"..stored..");
    assert_eq!(seen, b"written");
    assert_eq!(ctx.at(A).unwrap().1, Prot::RW, "mapped writable at once");
}

#[test]
fn two_mappings_of_a_file_alias_and_a_fork_shares_them() {
    let (mf, mut parent, mut pctx) = setup();
    let (_tmp, node) = overlay_file(&[0u8; 100]);
    parent
        .mmap(&mut pctx, shared_file(&node, A, P, true))
        .unwrap();
    parent
        .mmap(&mut pctx, shared_file(&node, A + 8 * P, P, true))
        .unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"one").unwrap();
    let alias = pctx.guest_read(&mut parent, &mf, A + 8 * P, 3).unwrap();
    let mut child = parent.fork(&mut pctx).unwrap();
    let mut cctx = TestCtx::new();
    cctx.guest_write(&mut child, &mf, A + 8 * P, b"two")
        .unwrap();
    let in_parent = pctx.guest_read(&mut parent, &mf, A, 3).unwrap();
    assert_eq!(alias, b"one");
    assert_eq!(in_parent, b"two", "no copy-on-write for shared pages");
    assert_eq!(
        parent.pte(A).unwrap().off,
        child.pte(A + 8 * P).unwrap().off
    );
    assert_eq!(node.shared_pages(), 1);
}

#[test]
fn shared_file_pages_are_freed_with_the_last_mapping_and_the_file() {
    let (mf, mut mm, mut ctx) = setup();
    let (tmp, node) = overlay_file(&[1u8; 10]);
    mm.mmap(&mut ctx, shared_file(&node, A, P, true)).unwrap();
    ctx.guest_write(&mut mm, &mf, A, b"x").unwrap();
    let page = mm.pte(A).unwrap().off;
    mm.munmap(&mut ctx, A, P).unwrap();
    let after_munmap = mf.refcount(page);
    drop(node);
    drop(tmp);
    assert_eq!(after_munmap, 1, "the file keeps its page");
    assert_eq!(mf.refcount(page), 0, "released with the file");
}

#[test]
fn shared_file_mapping_of_a_read_only_fd_never_gets_write() {
    let (_mf, mut mm, mut ctx) = setup();
    let (_tmp, node) = overlay_file(b"data");
    let mut rw_of_ro = shared_file(&node, A, P, false);
    rw_of_ro.prot = RW;
    let refused = mm.mmap(&mut ctx, rw_of_ro);
    mm.mmap(&mut ctx, shared_file(&node, A, P, false)).unwrap();
    mm.mmap(&mut ctx, shared_file(&node, A + P, P, true))
        .unwrap();
    mm.mprotect(&mut ctx, A + P, P, libc::PROT_READ as u64)
        .unwrap();
    assert_eq!(code(refused), libc::EACCES);
    assert_eq!(code(mm.mprotect(&mut ctx, A, P, RW)), libc::EACCES);
    assert!(mm.mprotect(&mut ctx, A + P, P, RW).is_ok());
}

/// Linux unmaps truncated pages everywhere; the sentry keeps a still
/// mapped page in the file (zeroed), so mapping and file keep agreeing
/// when the file grows again, frees it once nobody maps it, and faults
/// beyond the end of file are `SIGBUS`.
#[test]
fn truncate_keeps_mapped_pages_coherent_and_frees_unmapped_ones() {
    let (mf, mut mm, mut ctx) = setup();
    let (_tmp, node) = overlay_file(&[b'a'; 2 * P as usize]);
    mm.mmap(&mut ctx, shared_file(&node, A, 2 * P, true))
        .unwrap();
    ctx.guest_write(&mut mm, &mf, A + P, b"old").unwrap();
    let page = mm.pte(A + P).unwrap().off;
    node.truncate(P + 2).unwrap();
    let cut = file_bytes(&node, P, 8);
    node.truncate(P).unwrap();
    node.write_at(P + 1, b"new").unwrap();
    let seen = ctx.guest_read(&mut mm, &mf, A + P, 4).unwrap();
    node.truncate(P).unwrap();
    let kept_while_mapped = mf.refcount(page);
    mm.munmap(&mut ctx, A, 2 * P).unwrap();
    node.truncate(P).unwrap();
    assert_eq!(cut, b"ol", "the partial page is cut at the new size");
    assert_eq!(seen, b"\0new", "regrown file and mapping agree");
    assert_eq!(kept_while_mapped, 2, "file and mapping hold it");
    assert_eq!(mf.refcount(page), 0, "freed once nobody maps it");
    assert_eq!(node.shared_pages(), 1);
}

#[test]
fn a_new_fault_beyond_the_end_of_a_shared_file_is_sigbus() {
    let (mf, mut mm, mut ctx) = setup();
    let (_tmp, node) = overlay_file(&[b'a'; 2 * P as usize]);
    mm.mmap(&mut ctx, shared_file(&node, A, 3 * P, true))
        .unwrap();
    ctx.guest_read(&mut mm, &mf, A, 1).unwrap();
    node.truncate(P).unwrap();
    mm.madvise(&mut ctx, A, 3 * P, libc::MADV_DONTNEED).unwrap();
    let second = mm.handle_fault(&mut ctx, A + P, None).unwrap_err();
    let third = mm.handle_fault(&mut ctx, A + 2 * P, None).unwrap_err();
    assert!(matches!(second, FaultError::BeyondEof));
    assert!(matches!(third, FaultError::BeyondEof));
    assert_eq!(second.signal(), Some((libc::SIGBUS, 2)));
}

#[test]
fn copy_out_into_a_shared_file_mapping_reaches_the_file() {
    let (mf, mut mm, mut ctx) = setup();
    let (_tmp, node) = overlay_file(&[0u8; 64]);
    mm.mmap(&mut ctx, shared_file(&node, A, P, true)).unwrap();
    mm.copy_out(&mut ctx, A + 4, b"sentry").unwrap();
    let mapped = ctx.guest_read(&mut mm, &mf, A + 4, 6).unwrap();
    assert_eq!(file_bytes(&node, 4, 6), b"sentry");
    assert_eq!(mapped, b"sentry");
}

#[test]
fn shared_file_pages_round_trip_through_a_checkpoint() {
    let (mf, mut parent, mut pctx) = setup();
    let (_tmp, node) = overlay_file(&[0u8; 64]);
    parent
        .mmap(&mut pctx, shared_file(&node, A, P, true))
        .unwrap();
    pctx.guest_write(&mut parent, &mf, A, b"saved").unwrap();
    let child = parent.fork(&mut pctx).unwrap();
    let graph = (mf.clone(), node.clone(), parent, child);
    let saved = checkpoints::state::save(&graph).unwrap();
    type G = (
        Arc<MemoryFile>,
        Arc<crate::vfs::overlay::Node>,
        MemoryManager,
        MemoryManager,
    );
    let (mf2, node2, mut parent2, mut child2): G = checkpoints::state::load(&saved).unwrap();
    for (off, len) in mf.used_ranges() {
        mf2.write(off, mf.slice(off, len).unwrap()).unwrap();
    }
    let (mut p2, mut c2) = (TestCtx::new(), TestCtx::new());
    c2.guest_write(&mut child2, &mf2, A + 5, b"+child").unwrap();
    let in_parent = p2.guest_read(&mut parent2, &mf2, A, 11).unwrap();
    assert_eq!(in_parent, b"saved+child");
    assert_eq!(file_bytes(&node2, 0, 11), b"saved+child");
    assert_eq!(mf2.refcount(parent2.pte(A).unwrap().off), 3);
}
