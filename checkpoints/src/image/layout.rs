//! Planning the memory section: splitting used ranges into chunk spans and
//! finding the non-zero pages of a span.

use super::error::WriteError;
use super::manifest::{PageRange, PageRun};
use super::{is_page_aligned, PAGE_SIZE};

/// Checks the caller's used ranges against the memory slice: page-aligned,
/// non-empty, sorted, non-overlapping, inside `memory_len`.
pub(crate) fn check_ranges(ranges: &[PageRange], memory_len: u64) -> Result<(), WriteError> {
    let mut prev_end = 0u64;
    for r in ranges {
        let bad = |reason| WriteError::InvalidRange {
            offset: r.offset,
            len: r.len,
            reason,
        };
        if !is_page_aligned(r.offset) || !is_page_aligned(r.len) {
            return Err(bad("not page-aligned"));
        }
        if r.len == 0 {
            return Err(bad("empty"));
        }
        if r.offset < prev_end {
            return Err(bad("not sorted or overlaps the previous range"));
        }
        match r.end() {
            Some(end) if end <= memory_len => prev_end = end,
            _ => return Err(bad("beyond the end of the memory")),
        }
    }
    Ok(())
}

/// Splits the used ranges into spans of at most `chunk_size` bytes; each
/// span becomes at most one chunk. Deterministic, so every writer of the
/// same input produces the same chunks.
pub(crate) fn plan_spans(ranges: &[PageRange], chunk_size: u64) -> Vec<PageRange> {
    let mut spans = Vec::new();
    for r in ranges {
        let mut offset = r.offset;
        let end = r.offset + r.len;
        while offset < end {
            let len = chunk_size.min(end - offset);
            spans.push(PageRange { offset, len });
            offset += len;
        }
    }
    spans
}

/// Whether a page is all zero. Word-wise OR so the compiler vectorises it.
pub(crate) fn is_zero_page(page: &[u8]) -> bool {
    page.chunks_exact(256).all(|block| {
        block.chunks_exact(8).fold(0u64, |acc, w| {
            acc | u64::from_ne_bytes(super::manifest::le_array(w))
        }) == 0
    }) && page.chunks_exact(256).remainder().iter().all(|&b| b == 0)
}

/// The runs of non-zero pages of `span` (which lies within `memory`).
pub(crate) fn nonzero_runs(memory: &[u8], span: PageRange) -> Vec<PageRun> {
    scan_runs(memory, span, |_| {})
}

/// [`nonzero_runs`] and the CRC-32C of the run bytes concatenated, in one
/// pass: each non-zero page is checksummed right after the zero check has
/// brought it into the cache, so a raw chunk's memory is read once.
pub(crate) fn nonzero_runs_crc(memory: &[u8], span: PageRange) -> (Vec<PageRun>, u32) {
    let mut crc = 0u32;
    let runs = scan_runs(memory, span, |page| crc = crc32c::crc32c_append(crc, page));
    (runs, crc)
}

/// The runs of non-zero pages of `span`; `on_page` sees each non-zero
/// page, in order, right after its zero check.
fn scan_runs(memory: &[u8], span: PageRange, mut on_page: impl FnMut(&[u8])) -> Vec<PageRun> {
    let mut runs: Vec<PageRun> = Vec::new();
    let start = span.offset as usize;
    let bytes = &memory[start..start + span.len as usize];
    for (i, page) in bytes.chunks_exact(PAGE_SIZE as usize).enumerate() {
        if is_zero_page(page) {
            continue;
        }
        on_page(page);
        let offset = span.offset + i as u64 * PAGE_SIZE;
        match runs.last_mut() {
            Some(run) if run.offset + run.len() == offset => run.pages += 1,
            _ => runs.push(PageRun { offset, pages: 1 }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_never_exceed_chunk_size_or_cross_ranges() {
        let ranges = [
            PageRange {
                offset: 0,
                len: 5 * PAGE_SIZE,
            },
            PageRange {
                offset: 8 * PAGE_SIZE,
                len: PAGE_SIZE,
            },
        ];
        let spans = plan_spans(&ranges, 2 * PAGE_SIZE);
        let lens: Vec<u64> = spans.iter().map(|s| s.len / PAGE_SIZE).collect();
        assert_eq!(lens, vec![2, 2, 1, 1]);
        assert_eq!(spans[3].offset, 8 * PAGE_SIZE);
    }

    #[test]
    fn zero_pages_split_runs() {
        let mut mem = vec![0u8; 4 * PAGE_SIZE as usize];
        mem[5] = 1;
        mem[2 * PAGE_SIZE as usize + 4095] = 1;
        mem[3 * PAGE_SIZE as usize] = 1;
        let runs = nonzero_runs(
            &mem,
            PageRange {
                offset: 0,
                len: 4 * PAGE_SIZE,
            },
        );
        assert_eq!(
            runs,
            vec![
                PageRun {
                    offset: 0,
                    pages: 1
                },
                PageRun {
                    offset: 2 * PAGE_SIZE,
                    pages: 2
                }
            ]
        );
    }

    /// The fused pass finds the non-zero runs (the same as
    /// [`nonzero_runs`], which shares its scan) and the checksum of exactly
    /// their bytes (a wrong page set or order changes the CRC).
    #[test]
    fn fused_scan_matches_runs_and_their_checksum() {
        let page = PAGE_SIZE as usize;
        let mut mem = vec![0u8; 6 * page];
        mem[page + 7] = 3;
        mem[2 * page + 4095] = 9;
        mem[4 * page] = 1;
        let span = PageRange {
            offset: PAGE_SIZE,
            len: 5 * PAGE_SIZE,
        };

        let (runs, crc) = nonzero_runs_crc(&mem, span);

        assert_eq!(runs, nonzero_runs(&mem, span));
        assert_eq!(
            runs,
            [
                PageRun {
                    offset: PAGE_SIZE,
                    pages: 2
                },
                PageRun {
                    offset: 4 * PAGE_SIZE,
                    pages: 1
                }
            ]
        );
        let mut raw = mem[page..3 * page].to_vec();
        raw.extend_from_slice(&mem[4 * page..5 * page]);
        assert_eq!(crc, crc32c::crc32c(&raw));
    }

    #[test]
    fn unsorted_ranges_are_refused() {
        let ranges = [
            PageRange {
                offset: PAGE_SIZE,
                len: PAGE_SIZE,
            },
            PageRange {
                offset: 0,
                len: PAGE_SIZE,
            },
        ];
        assert!(matches!(
            check_ranges(&ranges, 4 * PAGE_SIZE),
            Err(WriteError::InvalidRange {
                reason: "not sorted or overlaps the previous range",
                ..
            })
        ));
    }

    #[test]
    fn range_past_memory_is_refused() {
        let ranges = [PageRange {
            offset: 0,
            len: 2 * PAGE_SIZE,
        }];
        assert!(check_ranges(&ranges, PAGE_SIZE).is_err());
    }
}
