//! Shared fixtures of the image tests: realistic memory (zero pages,
//! random pages, repeated pages, unused gaps) and a manifest meta.
#![allow(dead_code)]

use checkpoints::image::{CpuFeatures, ImageInput, ImageMeta, PageRange, SchemaInfo, PAGE_SIZE};

pub const PAGE: usize = PAGE_SIZE as usize;

/// Deterministic pseudo-random bytes (xorshift64).
pub fn xorshift_fill(seed: u64, out: &mut [u8]) {
    let mut x = seed | 1;
    for word in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        word.copy_from_slice(&bytes[..word.len()]);
    }
}

/// A memory file of `pages` pages and its used ranges. Page `i` is:
/// zero if `i % 4 == 1`; a copy of page 0 if `i % 4 == 2` (repetition for
/// zstd); random otherwise. Pages `i % 16 == 15` are outside the used
/// ranges and hold a poison pattern that a restore must not copy.
pub fn memory(pages: usize, seed: u64) -> (Vec<u8>, Vec<PageRange>) {
    let mut mem = vec![0u8; pages * PAGE];
    let mut first = vec![0u8; PAGE];
    xorshift_fill(seed, &mut first);
    let mut ranges: Vec<PageRange> = Vec::new();
    for i in 0..pages {
        let page = &mut mem[i * PAGE..(i + 1) * PAGE];
        if i % 16 == 15 {
            page.fill(0xAB);
            continue;
        }
        match i % 4 {
            1 => {}
            2 => page.copy_from_slice(&first),
            _ => xorshift_fill(seed ^ (i as u64).wrapping_mul(0x9E37_79B9), page),
        }
        let offset = (i * PAGE) as u64;
        match ranges.last_mut() {
            Some(r) if r.offset + r.len == offset => r.len += PAGE_SIZE,
            _ => ranges.push(PageRange {
                offset,
                len: PAGE_SIZE,
            }),
        }
    }
    (mem, ranges)
}

/// Number of used pages that are all-zero in [`memory`].
pub fn zero_pages(pages: usize) -> u64 {
    (0..pages).filter(|i| i % 16 != 15 && i % 4 == 1).count() as u64
}

/// `mem` with the unused pages cleared: what a restore into a zeroed
/// destination must produce.
pub fn expected_restore(mem: &[u8], ranges: &[PageRange]) -> Vec<u8> {
    let mut out = vec![0u8; mem.len()];
    for r in ranges {
        let (a, b) = (r.offset as usize, (r.offset + r.len) as usize);
        out[a..b].copy_from_slice(&mem[a..b]);
    }
    out
}

pub fn schema_table() -> Vec<(String, u64)> {
    vec![
        ("sentry::kernel::Task".to_string(), 0x1111),
        ("sentry::vfs::FdTable".to_string(), 0x2222),
        ("sentry::mm::MemoryManager".to_string(), 0x3333),
    ]
}

pub fn meta() -> ImageMeta {
    ImageMeta {
        sandbox_id: "test-sandbox".into(),
        created_unix_secs: 1_790_000_000,
        created_subsec_nanos: 123,
        schema: SchemaInfo::new(0xABCD, &schema_table()),
        cpu: CpuFeatures::host().expect("host CPU features"),
    }
}

/// State bytes with some structure (compressible, not trivially).
pub fn state_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7) % 251) as u8 ^ ((i / 1000) as u8))
        .collect()
}

pub fn input<'a>(
    meta: &'a ImageMeta,
    state: &'a [u8],
    mem: &'a [u8],
    ranges: &'a [PageRange],
) -> ImageInput<'a> {
    ImageInput {
        meta,
        state,
        memory: mem,
        used_ranges: ranges,
    }
}
