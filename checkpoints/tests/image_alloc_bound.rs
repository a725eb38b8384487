//! Reading a hostile image never allocates by trusting a length field: the
//! largest single allocation while refusing a corrupt image stays far
//! below the lengths it claims.
//!
//! One test function: the counting allocator is process-wide, so the cases
//! must not run concurrently with other tests of this binary.

mod image_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use checkpoints::image::{
    read_dir, read_stream, write_dir, write_stream, Compression, ImageError, Manifest, ReadOptions,
    WriteOptions, PAGE_SIZE,
};
use image_common::*;

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// The library forbids unsafe code; this test binary needs one `unsafe impl`
// because counting allocations requires a `GlobalAlloc`.
// SAFETY: every method forwards to `System` unchanged, so `System`'s
// guarantees are ours; the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds alloc's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds realloc's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Largest single allocation while running `f`.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::SeqCst);
    f();
    LARGEST.load(Ordering::SeqCst)
}

/// Allowance for fixed-size buffers (zstd contexts, 1 MiB read and write
/// buffers, thread stacks bookkeeping).
const FIXED: usize = 2 << 20;

#[test]
fn hostile_lengths_do_not_drive_allocations() {
    let (mem, ranges) = memory(32, 31);
    let meta = meta();
    let state = state_bytes(4000);
    let opts = WriteOptions {
        compression: Compression::Zstd(1),
        chunk_size: 4 * PAGE_SIZE,
        threads: 1,
        sync: false,
        progress: None,
        ..WriteOptions::default()
    };
    let mut stream = Vec::new();
    write_stream(&mut stream, &input(&meta, &state, &mem, &ranges), &opts).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("img");
    write_dir(&dir, &input(&meta, &state, &mem, &ranges), &opts).unwrap();
    let read_opts = ReadOptions {
        threads: 1,
        progress: None,
    };
    let mut dst = vec![0u8; mem.len()];

    // Stream: every frame's payload length claims 2^60, then 2^40 and
    // 2^26 (within the chunk bound but beyond the stream) after resealing.
    let mut off = 24;
    let mut cases = 0;
    while off < stream.len() {
        let desc_len = u64::from_le_bytes(stream[off + 4..off + 12].try_into().unwrap()) as usize;
        let payload_len =
            u64::from_le_bytes(stream[off + 12..off + 20].try_into().unwrap()) as usize;
        for claim in [1u64 << 60, 1 << 40, 1 << 26] {
            for field in [4usize, 12] {
                let mut bytes = stream.clone();
                bytes[off + field..off + field + 8].copy_from_slice(&claim.to_le_bytes());
                let end = off + 20 + desc_len;
                let crc = crc32c::crc32c(&bytes[off..end]);
                bytes[end..end + 4].copy_from_slice(&crc.to_le_bytes());
                let mut result = None;
                let largest = largest_allocation(|| {
                    result = Some(read_stream(bytes.as_slice(), &mut dst, &read_opts))
                });
                assert!(result.unwrap().is_err());
                assert!(
                    largest < stream.len() + FIXED,
                    "claim {claim} at {}: allocated {largest}",
                    off + field
                );
                cases += 1;
            }
        }
        off += 20 + desc_len + 4 + payload_len;
    }
    assert!(cases >= 6 * 4);

    // Directory: the manifest claims huge sections (resealed, so only the
    // bounds stop them).
    let original = std::fs::read(dir.join("manifest.bin")).unwrap();
    let edits: [fn(&mut Manifest); 4] = [
        |m| m.state.raw_len = 1 << 60,
        |m| m.state.raw_len = 1 << 31,
        |m| m.chunks[0].raw_len = 1 << 60,
        |m| m.head.layout.memory_len = 1 << 60,
    ];
    for edit in edits {
        let mut m = Manifest::decode(&original).unwrap();
        edit(&mut m);
        std::fs::write(dir.join("manifest.bin"), m.encode()).unwrap();
        let mut result = None;
        let largest = largest_allocation(|| result = Some(read_dir(&dir, &mut dst, &read_opts)));
        let err = result.unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::LengthOutOfBounds { .. }
                    | ImageError::StateDecompress { .. }
                    | ImageError::Inconsistent { .. }
                    | ImageError::DestinationTooSmall { .. }
            ),
            "{err:?}"
        );
        assert!(
            largest < FIXED + (4 << 20) + 1,
            "allocated {largest} for {err:?}"
        );
    }
}
