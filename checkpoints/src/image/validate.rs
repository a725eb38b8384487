//! The consistency rules of FORMAT.md ("Validation"), checked on every
//! manifest before anything in it is used. Shared by the directory reader
//! (whole manifest at once) and the stream reader (chunk by chunk).

use super::error::ImageError;
use super::manifest::{ChunkInfo, Codec, MemoryLayout, StateInfo};
use super::{
    is_page_aligned, page_align_up, MAX_CHUNK_SIZE, MAX_MEMORY_LEN, MAX_STATE_LEN, PAGE_SIZE,
};

fn bound(field: &'static str, value: u64, max: u64) -> Result<(), ImageError> {
    if value > max {
        return Err(ImageError::LengthOutOfBounds { field, value, max });
    }
    Ok(())
}

fn rule(ok: bool, what: &'static str) -> Result<(), ImageError> {
    if ok {
        Ok(())
    } else {
        Err(ImageError::Inconsistent { what })
    }
}

/// Memory file length, chunk size and used ranges.
pub(crate) fn check_layout(layout: &MemoryLayout) -> Result<(), ImageError> {
    bound("memory_len", layout.memory_len, MAX_MEMORY_LEN)?;
    rule(
        is_page_aligned(layout.memory_len),
        "memory_len is not page-aligned",
    )?;
    bound("chunk_size", layout.chunk_size, MAX_CHUNK_SIZE)?;
    rule(
        layout.chunk_size >= PAGE_SIZE && is_page_aligned(layout.chunk_size),
        "chunk_size is not a non-zero multiple of the page size",
    )?;
    super::layout::check_ranges(&layout.used_ranges, layout.memory_len).map_err(|_| {
        ImageError::Inconsistent {
            what: "used ranges are unaligned, empty, unsorted, overlapping or beyond memory_len",
        }
    })
}

/// State section lengths.
pub(crate) fn check_state_info(state: &StateInfo) -> Result<(), ImageError> {
    bound("state raw_len", state.raw_len, MAX_STATE_LEN)?;
    bound("state stored_len", state.stored_len, state.raw_len)?;
    rule(
        state.codec != Codec::Raw || state.stored_len == state.raw_len,
        "raw state section whose stored length differs from its raw length",
    )
}

/// Checks chunks in order against the layout and the `memory.bin`
/// placement rule (raw chunks start page-aligned, zstd chunks right after
/// the previous chunk).
#[derive(Debug, Default)]
pub(crate) struct ChunkChecker {
    /// Index of the used range the next run may start in.
    range: usize,
    /// End of the previous run; runs are strictly increasing.
    prev_run_end: u64,
    /// Where the next chunk's stored bytes end up in `memory.bin`.
    pos: u64,
}

impl ChunkChecker {
    pub(crate) fn new() -> Self {
        ChunkChecker::default()
    }

    /// End of the chunks seen so far in `memory.bin`.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Where a chunk stored with `codec` would start after the chunks seen.
    pub(crate) fn next_offset(pos: u64, codec: Codec) -> Option<u64> {
        match codec {
            Codec::Raw => page_align_up(pos),
            Codec::Zstd => Some(pos),
        }
    }

    pub(crate) fn check(
        &mut self,
        layout: &MemoryLayout,
        chunk: &ChunkInfo,
    ) -> Result<(), ImageError> {
        bound("chunk raw_len", chunk.raw_len, MAX_CHUNK_SIZE)?;
        bound("chunk stored_len", chunk.stored_len, chunk.raw_len)?;
        rule(
            chunk.raw_len <= layout.chunk_size,
            "chunk larger than chunk_size",
        )?;
        rule(
            chunk.codec != Codec::Raw || chunk.stored_len == chunk.raw_len,
            "raw chunk whose stored length differs from its raw length",
        )?;
        rule(!chunk.runs.is_empty(), "chunk without pages")?;
        let mut pages_len = 0u64;
        for run in &chunk.runs {
            rule(run.pages > 0, "empty page run")?;
            rule(
                run.offset >= self.prev_run_end,
                "page runs out of order or overlapping",
            )?;
            let end = run
                .offset
                .checked_add(run.len())
                .ok_or(ImageError::Inconsistent {
                    what: "page run overflows",
                })?;
            while layout
                .used_ranges
                .get(self.range)
                .is_some_and(|r| r.offset + r.len <= run.offset)
            {
                self.range += 1;
            }
            let inside = layout
                .used_ranges
                .get(self.range)
                .is_some_and(|r| r.offset <= run.offset && end <= r.offset + r.len);
            rule(inside, "page run outside the used ranges")?;
            self.prev_run_end = end;
            pages_len += run.len();
        }
        rule(
            pages_len == chunk.raw_len,
            "chunk raw_len differs from its runs' length",
        )?;
        let expected =
            Self::next_offset(self.pos, chunk.codec).ok_or(ImageError::Inconsistent {
                what: "memory.bin offset overflows",
            })?;
        rule(
            chunk.file_offset == expected,
            "chunk not at its memory.bin offset",
        )?;
        self.pos = expected + chunk.stored_len;
        Ok(())
    }

    /// Checks `memory.bin`'s declared length against the chunks.
    pub(crate) fn finish(self, memory_stored_len: u64) -> Result<(), ImageError> {
        rule(
            memory_stored_len == self.pos,
            "memory.bin length differs from the end of its last chunk",
        )
    }
}
