//! Restoring the memory section: checking and decompressing chunks on
//! worker threads, writing them into a slice or through a caller's sink.
//! Shared by the directory and the stream reader; the caller's thread
//! produces `(chunk, stored bytes, target)` jobs, workers consume them.

use std::io;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::error::ImageError;
use super::manifest::{ChunkInfo, Codec, PageRange};
use super::pipeline::{run_fed, thread_count};
use super::stats::{Progress, ProgressFn};

/// Where restored memory goes when it is not a slice: e.g. `pwrite` into
/// the sentry's memfd. Called concurrently from worker threads with
/// disjoint ranges, only with checksum-verified data. Zero pages are never
/// written.
pub trait MemorySink: Sync {
    /// Writes `data` at memory-file offset `offset`.
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

impl<F: Fn(u64, &[u8]) -> io::Result<()> + Sync> MemorySink for F {
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self(offset, data)
    }
}

/// How to read.
#[derive(Clone, Copy, Default)]
pub struct ReadOptions<'a> {
    /// Decompression threads; 0 = one per core.
    pub threads: usize,
    /// Progress of the memory section; may cancel.
    pub progress: Option<&'a ProgressFn<'a>>,
}

/// Where one chunk's pages go.
pub(crate) enum Target<'d> {
    /// The part of the destination slice from the chunk's first page
    /// (`base`) to its last page's end.
    Region { base: u64, buf: &'d mut [u8] },
    /// The caller's sink.
    Sink(&'d dyn MemorySink),
}

/// Splits `dst` (at least `needed` bytes, the image's `memory_len`) into
/// one [`Target::Region`] per chunk, in chunk order: the returned function
/// must be called with chunks that are disjoint, increasing and inside
/// `memory_len` (the readers check that before calling it).
pub(crate) fn region_targets<'d>(
    dst: &'d mut [u8],
    needed: u64,
) -> Result<impl FnMut(&ChunkInfo) -> Target<'d>, ImageError> {
    if (dst.len() as u64) < needed {
        return Err(ImageError::DestinationTooSmall {
            needed,
            actual: dst.len() as u64,
        });
    }
    let mut rest = dst;
    let mut rest_base = 0u64;
    Ok(move |info: &ChunkInfo| {
        let start = info.runs.first().map_or(rest_base, |r| r.offset);
        let end = info.runs.last().map_or(start, |r| r.offset + r.len());
        let tail = std::mem::take(&mut rest);
        let (_, tail) = tail.split_at_mut((start - rest_base) as usize);
        let (region, tail) = tail.split_at_mut((end - start) as usize);
        rest = tail;
        rest_base = end;
        Target::Region {
            base: start,
            buf: region,
        }
    })
}

/// Recycled payload buffers (at most one per job in flight).
#[derive(Default)]
pub(crate) struct Buffers(Mutex<Vec<Vec<u8>>>);

impl Buffers {
    pub(crate) fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default()
    }

    fn give(&self, buf: Vec<u8>) {
        if let Ok(mut v) = self.0.lock() {
            v.push(buf);
        }
    }
}

/// Per-worker decoder state.
pub(crate) struct Decoder {
    dctx: zstd::bulk::Decompressor<'static>,
    scratch: Vec<u8>,
}

impl Decoder {
    pub(crate) fn new() -> Result<Decoder, ImageError> {
        let dctx =
            zstd::bulk::Decompressor::new().map_err(|source| ImageError::ChunkDecompress {
                chunk: 0,
                source: Some(source),
            })?;
        Ok(Decoder {
            dctx,
            scratch: Vec::new(),
        })
    }
}

/// Totals of a restore.
pub(crate) struct Counts {
    /// Raw bytes handed out.
    pub raw: u64,
}

/// Sends one job: (chunk index, chunk, stored bytes, target). Returns
/// `false` when the pool stopped on an error.
pub(crate) type Send<'s, 'd> = dyn FnMut(u64, ChunkInfo, Vec<u8>, Target<'d>) -> bool + 's;

/// Used bytes of `ranges` below successive end offsets (progress counts
/// zero pages as done once the restore has passed them).
struct UsedCursor<'r> {
    ranges: &'r [PageRange],
    /// First range not entirely below the last end.
    idx: usize,
    /// Length of `ranges[..idx]`.
    passed: u64,
    /// Used bytes below the last end.
    below: u64,
}

impl UsedCursor<'_> {
    /// Used bytes in `[last end, end)`; `end` never decreases (chunks are
    /// increasing).
    fn advance_to(&mut self, end: u64) -> u64 {
        while let Some(r) = self.ranges.get(self.idx) {
            if r.offset + r.len > end {
                break;
            }
            self.passed += r.len;
            self.idx += 1;
        }
        let partial = self
            .ranges
            .get(self.idx)
            .map_or(0, |r| end.saturating_sub(r.offset));
        let below = self.passed + partial;
        let delta = below.saturating_sub(self.below);
        self.below = below;
        delta
    }
}

/// Runs `produce` on this thread, restoring every chunk it sends on
/// worker threads. Progress counts used memory (of `ranges`) passed.
pub(crate) fn restore_fed<'d>(
    opts: &ReadOptions<'_>,
    ranges: &[PageRange],
    produce: impl FnOnce(&mut Send<'_, 'd>, &Buffers) -> Result<(), ImageError>,
) -> Result<Counts, ImageError> {
    let threads = thread_count(opts.threads);
    let buffers = Buffers::default();
    let total: u64 = ranges.iter().map(|r| r.len).sum();
    let done = AtomicU64::new(0);
    let raw = AtomicU64::new(0);
    let report = |now: u64| match opts.progress.map(|p| p(Progress { done: now, total })) {
        Some(ControlFlow::Break(())) => Err(ImageError::Cancelled),
        _ => Ok(()),
    };
    let mut cursor = UsedCursor {
        ranges,
        idx: 0,
        passed: 0,
        below: 0,
    };
    run_fed(
        threads,
        threads,
        Decoder::new,
        |dec, (index, info, stored, target, covered): (u64, ChunkInfo, Vec<u8>, Target<'d>, u64)| {
            // Recycled buffers may be longer than this chunk.
            let result = match stored.get(..info.stored_len as usize) {
                Some(bytes) => restore_chunk(dec, index, &info, bytes, target),
                None => Err(ImageError::Inconsistent {
                    what: "chunk payload shorter than its stored length",
                }),
            };
            buffers.give(stored);
            result?;
            raw.fetch_add(info.raw_len, Ordering::Relaxed);
            report(done.fetch_add(covered, Ordering::Relaxed) + covered)
        },
        |send| {
            let mut send_job = |index, info: ChunkInfo, stored, target| {
                let end = info.runs.last().map_or(0, |r| r.offset + r.len());
                let covered = cursor.advance_to(end);
                send((index, info, stored, target, covered))
            };
            produce(&mut send_job, &buffers)
        },
    )?;
    if done.into_inner() < total {
        report(total)?;
    }
    Ok(Counts {
        raw: raw.into_inner(),
    })
}

/// Checks a chunk's stored bytes against its checksum.
pub(crate) fn check_chunk_crc(
    index: u64,
    info: &ChunkInfo,
    stored: &[u8],
) -> Result<(), ImageError> {
    check_crc(index, info, crc32c::crc32c(stored))
}

/// Checks `crc`, the CRC-32C of chunk `index`'s stored bytes, against the
/// manifest's.
pub(crate) fn check_crc(index: u64, info: &ChunkInfo, crc: u32) -> Result<(), ImageError> {
    if crc != info.crc32c {
        return Err(ImageError::ChunkChecksumMismatch {
            chunk: index,
            memory_offset: info.runs.first().map_or(0, |r| r.offset),
        });
    }
    Ok(())
}

/// Checks, decompresses and writes one chunk.
/// Preconditions: `info` passed the layout checks; a `Region` target spans
/// exactly the chunk's first to last page.
pub(crate) fn restore_chunk(
    dec: &mut Decoder,
    index: u64,
    info: &ChunkInfo,
    stored: &[u8],
    mut target: Target<'_>,
) -> Result<(), ImageError> {
    check_chunk_crc(index, info, stored)?;
    let short = |source| ImageError::ChunkDecompress {
        chunk: index,
        source,
    };
    let data: &[u8] = match info.codec {
        Codec::Raw => stored,
        Codec::Zstd => {
            if let (Target::Region { buf, .. }, [_single_run]) = (&mut target, info.runs.as_slice())
            {
                // The region is exactly the run: decompress in place.
                let n = dec
                    .dctx
                    .decompress_to_buffer(stored, &mut buf[..])
                    .map_err(|e| short(Some(e)))?;
                return if n as u64 == info.raw_len {
                    Ok(())
                } else {
                    Err(short(None))
                };
            }
            dec.scratch.clear();
            // raw_len <= chunk_size <= MAX_CHUNK_SIZE (checked).
            dec.scratch.reserve(info.raw_len as usize);
            let n = dec
                .dctx
                .decompress_to_buffer(stored, &mut dec.scratch)
                .map_err(|e| short(Some(e)))?;
            if n as u64 != info.raw_len {
                return Err(short(None));
            }
            &dec.scratch
        }
    };
    let mut pos = 0usize;
    for run in &info.runs {
        let len = run.len() as usize;
        let bytes = data.get(pos..pos + len).ok_or_else(|| short(None))?;
        match &mut target {
            Target::Region { base, buf } => {
                let at = (run.offset - *base) as usize;
                buf[at..at + len].copy_from_slice(bytes);
            }
            Target::Sink(sink) => {
                sink.write(run.offset, bytes)
                    .map_err(|source| ImageError::Sink {
                        offset: run.offset,
                        source,
                    })?
            }
        }
        pos += len;
    }
    Ok(())
}
