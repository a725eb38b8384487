//! Writing an image: the section encoder shared by the directory and the
//! stream form, and the two entry points.
//!
//! The memory section is planned as spans of at most `chunk_size` bytes of
//! used memory; worker threads scan a span for zero pages, gather and
//! compress its non-zero pages and checksum the result; the caller's thread
//! writes chunks in span order (so the output is deterministic), with at
//! most two chunks per worker in flight.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use super::atomic::TempDir;
use super::compress::{compress_state, Compression};
use super::error::WriteError;
use super::layout::{check_ranges, nonzero_runs, plan_spans};
use super::manifest::{
    ChunkInfo, Codec, ImageMeta, Manifest, ManifestHead, MemoryLayout, PageRange, PageRun,
    StateInfo,
};
use super::pipeline::{run_ordered, thread_count};
use super::stats::{Progress, ProgressFn, WriteStats};
use super::stream::StreamBackend;
use super::validate::ChunkChecker;
use super::{
    is_page_aligned, DEFAULT_CHUNK_SIZE, MANIFEST_FILE, MAX_CHUNK_SIZE, MAX_STATE_LEN, MEMORY_FILE,
    PAGE_SIZE, STATE_FILE,
};

/// What to checkpoint.
#[derive(Clone, Copy)]
pub struct ImageInput<'a> {
    /// Identity, schema and CPU requirements.
    pub meta: &'a ImageMeta,
    /// The serialized kernel state (from [`crate::state`]).
    pub state: &'a [u8],
    /// The sentry's mapping of its memory file.
    pub memory: &'a [u8],
    /// Used ranges of `memory`: page-aligned, sorted, non-overlapping.
    pub used_ranges: &'a [PageRange],
}

/// Default [`WriteOptions::writeback_step`]: 16 MiB.
pub const DEFAULT_WRITEBACK_STEP: u64 = 16 << 20;

/// How to write.
#[derive(Clone, Copy)]
pub struct WriteOptions<'a> {
    /// Compression of the state and memory sections.
    pub compression: Compression,
    /// Memory span per chunk (multiple of 4096, at most 64 MiB).
    pub chunk_size: u64,
    /// Compression threads; 0 = one per core.
    pub threads: usize,
    /// fsync files and directories before and after the rename (directory
    /// form only). Off only for benchmarks and tests of throwaway images.
    pub sync: bool,
    /// Directory form only: start writeback of `memory.bin` every this many
    /// bytes written (see [`Writeback`]); 0 = off. Changes neither the
    /// content nor the durability of the image (the final fsync still
    /// happens), only when the disk works: the fsync at the end then waits
    /// for the tail instead of the whole file.
    pub writeback_step: u64,
    /// Progress of the memory section; may cancel.
    pub progress: Option<&'a ProgressFn<'a>>,
}

impl Default for WriteOptions<'_> {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            threads: 0,
            sync: true,
            writeback_step: DEFAULT_WRITEBACK_STEP,
            progress: None,
        }
    }
}

/// Where the encoded sections go: a directory or a stream. Calls come in
/// order: `head`, `state`, `chunk`*, `finish`.
pub(crate) trait Backend {
    fn head(&mut self, head: &ManifestHead) -> Result<(), WriteError>;
    fn state(&mut self, info: &StateInfo, stored: &[u8]) -> Result<(), WriteError>;
    /// `stored` is the chunk's stored bytes, in pieces.
    fn chunk(&mut self, info: &ChunkInfo, stored: &[&[u8]]) -> Result<(), WriteError>;
    fn finish(self, manifest: &Manifest) -> Result<(), WriteError>;
}

/// Writes the image as a directory at `path` (which must not exist),
/// atomically: on error nothing is left behind.
pub fn write_dir(
    path: &Path,
    input: &ImageInput<'_>,
    opts: &WriteOptions<'_>,
) -> Result<WriteStats, WriteError> {
    check_input(input, opts)?;
    let backend = DirBackend::create(path, opts.sync, opts.writeback_step)?;
    let stats = encode(backend, input, opts)?;
    tracing::info!(
        path = %path.display(),
        sandbox = %input.meta.sandbox_id,
        memory_bytes = stats.memory_bytes,
        stored_bytes = stats.memory_stored_bytes + stats.state_stored_bytes,
        zero_pages = stats.zero_pages,
        elapsed_ms = stats.total_time.as_millis() as u64,
        "checkpoint image written"
    );
    Ok(stats)
}

/// Writes the image to a stream (pipe, socket). A stream cut short by an
/// error is refused by the reader (it lacks its trailer).
pub fn write_stream<W: Write>(
    out: W,
    input: &ImageInput<'_>,
    opts: &WriteOptions<'_>,
) -> Result<WriteStats, WriteError> {
    check_input(input, opts)?;
    encode(StreamBackend::new(out), input, opts)
}

fn check_input(input: &ImageInput<'_>, opts: &WriteOptions<'_>) -> Result<(), WriteError> {
    opts.compression.validate()?;
    if opts.chunk_size < PAGE_SIZE
        || !is_page_aligned(opts.chunk_size)
        || opts.chunk_size > MAX_CHUNK_SIZE
    {
        return Err(WriteError::InvalidOption {
            what: "chunk_size must be a multiple of 4096 between 4 KiB and 64 MiB",
        });
    }
    if input.state.len() as u64 > MAX_STATE_LEN {
        return Err(WriteError::TooLarge {
            what: "state",
            len: input.state.len() as u64,
            max: MAX_STATE_LEN,
        });
    }
    // The memory file is recorded as the slice length rounded down to
    // whole pages; ranges must lie within it.
    let memory_len = input.memory.len() as u64 / PAGE_SIZE * PAGE_SIZE;
    check_ranges(input.used_ranges, memory_len)
}

/// A span after scanning and compression.
struct Encoded {
    runs: Vec<PageRun>,
    raw_len: u64,
    codec: Codec,
    crc32c: u32,
    /// Compressed bytes; `None` for raw chunks (written from the memory).
    packed: Option<Vec<u8>>,
}

/// Per-worker reusable state.
struct Worker {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    gather: Vec<u8>,
}

fn run_slice<'m>(memory: &'m [u8], run: &PageRun) -> &'m [u8] {
    // In bounds: runs come from `nonzero_runs` over checked ranges.
    &memory[run.offset as usize..(run.offset + run.len()) as usize]
}

/// Output buffers of compressed chunks, recycled by the writer so workers
/// do not fault in fresh memory for every chunk.
type Pool = std::sync::Mutex<Vec<Vec<u8>>>;

fn encode_span(
    worker: &mut Worker,
    pool: &Pool,
    memory: &[u8],
    span: &PageRange,
) -> Result<Option<Encoded>, WriteError> {
    let runs = nonzero_runs(memory, *span);
    if runs.is_empty() {
        return Ok(None);
    }
    let raw_len: u64 = runs.iter().map(PageRun::len).sum();
    let Worker { compressor, gather } = worker;
    if let Some(compressor) = compressor {
        let src: &[u8] = if let [run] = runs.as_slice() {
            run_slice(memory, run)
        } else {
            gather.clear();
            for run in &runs {
                gather.extend_from_slice(run_slice(memory, run));
            }
            gather
        };
        let mut packed = pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        packed.clear();
        packed.reserve(zstd::zstd_safe::compress_bound(src.len()));
        compressor
            .compress_to_buffer(src, &mut packed)
            .map_err(|source| WriteError::Compress { source })?;
        if packed.len() < src.len() {
            return Ok(Some(Encoded {
                runs,
                raw_len,
                codec: Codec::Zstd,
                crc32c: crc32c::crc32c(&packed),
                packed: Some(packed),
            }));
        }
        if let Ok(mut p) = pool.lock() {
            p.push(packed);
        }
    }
    let crc = runs.iter().fold(0, |crc, run| {
        crc32c::crc32c_append(crc, run_slice(memory, run))
    });
    Ok(Some(Encoded {
        runs,
        raw_len,
        codec: Codec::Raw,
        crc32c: crc,
        packed: None,
    }))
}

fn report(progress: Option<&ProgressFn<'_>>, done: u64, total: u64) -> Result<(), WriteError> {
    match progress.map(|p| p(Progress { done, total })) {
        Some(ControlFlow::Break(())) => Err(WriteError::Cancelled),
        _ => Ok(()),
    }
}

/// Encodes all sections into `backend`.
fn encode<B: Backend>(
    mut backend: B,
    input: &ImageInput<'_>,
    opts: &WriteOptions<'_>,
) -> Result<WriteStats, WriteError> {
    let start = Instant::now();
    let mut stats = WriteStats::default();
    let head = ManifestHead {
        meta: input.meta.clone(),
        layout: MemoryLayout {
            memory_len: input.memory.len() as u64 / PAGE_SIZE * PAGE_SIZE,
            used_ranges: input.used_ranges.to_vec(),
            chunk_size: opts.chunk_size,
        },
        compression: opts.compression,
    };
    backend.head(&head)?;

    let t = Instant::now();
    let (state_info, packed) = compress_state(input.state, opts.compression)?;
    backend.state(&state_info, packed.as_deref().unwrap_or(input.state))?;
    drop(packed);
    stats.state_raw_bytes = state_info.raw_len;
    stats.state_stored_bytes = state_info.stored_len;
    stats.state_time = t.elapsed();

    let t = Instant::now();
    let spans = plan_spans(input.used_ranges, opts.chunk_size);
    let total: u64 = input.used_ranges.iter().map(|r| r.len).sum();
    let threads = thread_count(opts.threads);
    let mut chunks: Vec<ChunkInfo> = Vec::new();
    let mut pos = 0u64;
    let mut done = 0u64;
    report(opts.progress, 0, total)?;
    let level = match opts.compression {
        Compression::None => None,
        Compression::Zstd(level) => Some(level),
    };
    let pool = Pool::default();
    run_ordered(
        &spans,
        threads,
        2 * threads,
        || {
            let compressor = level
                .map(zstd::bulk::Compressor::new)
                .transpose()
                .map_err(|source| WriteError::Compress { source })?;
            Ok(Worker {
                compressor,
                gather: Vec::new(),
            })
        },
        |worker, span| encode_span(worker, &pool, input.memory, span),
        |idx, encoded| {
            if let Some(e) = encoded {
                let file_offset = ChunkChecker::next_offset(pos, e.codec).unwrap_or(pos);
                let stored_len = e.packed.as_ref().map_or(e.raw_len, |p| p.len() as u64);
                let pieces: Vec<&[u8]> = match &e.packed {
                    Some(p) => vec![p.as_slice()],
                    None => e.runs.iter().map(|r| run_slice(input.memory, r)).collect(),
                };
                let info = ChunkInfo {
                    file_offset,
                    codec: e.codec,
                    raw_len: e.raw_len,
                    stored_len,
                    crc32c: e.crc32c,
                    runs: e.runs.clone(),
                };
                backend.chunk(&info, &pieces)?;
                drop(pieces);
                if let (Some(p), Ok(mut pool)) = (e.packed, pool.lock()) {
                    pool.push(p);
                }
                pos = file_offset + stored_len;
                stats.memory_stored_raw_bytes += e.raw_len;
                chunks.push(info);
            }
            done += spans[idx].len;
            report(opts.progress, done, total)
        },
    )?;
    stats.memory_bytes = total;
    stats.memory_stored_bytes = pos;
    stats.zero_pages = (total - stats.memory_stored_raw_bytes) / PAGE_SIZE;
    stats.chunks = chunks.len() as u64;
    stats.memory_time = t.elapsed();

    let t = Instant::now();
    let manifest = Manifest {
        head,
        state: state_info,
        chunks,
        memory_stored_len: pos,
    };
    debug_assert!(
        manifest.validate().is_ok(),
        "writer produced an invalid manifest"
    );
    backend.finish(&manifest)?;
    stats.commit_time = t.elapsed();
    stats.total_time = start.elapsed();
    Ok(stats)
}

/// Directory backend: `state.bin` and `memory.bin` as the sections come,
/// `manifest.bin` last, then the atomic rename.
pub(crate) struct DirBackend {
    dir: TempDir,
    memory: BufWriter<File>,
    memory_pos: u64,
    sync: bool,
    writeback: Writeback,
}

impl DirBackend {
    pub(crate) fn create(
        target: &Path,
        sync: bool,
        writeback_step: u64,
    ) -> Result<DirBackend, WriteError> {
        let dir = TempDir::create(target)?;
        let path = dir.path().join(MEMORY_FILE);
        let memory = File::create_new(&path).map_err(|source| WriteError::Io {
            op: "create",
            path,
            source,
        })?;
        Ok(DirBackend {
            dir,
            memory: BufWriter::with_capacity(1 << 20, memory),
            memory_pos: 0,
            sync,
            writeback: Writeback::new(writeback_step),
        })
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let path = self.dir.path().join(name);
        let io = |op| {
            let path = path.clone();
            move |source| WriteError::Io { op, path, source }
        };
        let mut file = File::create_new(&path).map_err(io("create"))?;
        file.write_all(bytes).map_err(io("write"))?;
        if self.sync {
            file.sync_all().map_err(io("fsync"))?;
        }
        Ok(())
    }

    fn memory_io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> WriteError {
        let path = self.dir.path().join(MEMORY_FILE);
        move |source| WriteError::Io { op, path, source }
    }
}

impl Backend for DirBackend {
    fn head(&mut self, _head: &ManifestHead) -> Result<(), WriteError> {
        Ok(())
    }

    fn state(&mut self, _info: &StateInfo, stored: &[u8]) -> Result<(), WriteError> {
        self.write_file(STATE_FILE, stored)
    }

    fn chunk(&mut self, info: &ChunkInfo, stored: &[&[u8]]) -> Result<(), WriteError> {
        const ZEROS: [u8; PAGE_SIZE as usize] = [0; PAGE_SIZE as usize];
        // Padding is below one page (raw chunks start at the next page).
        let pad = info.file_offset.saturating_sub(self.memory_pos) as usize;
        let err = self.memory_io("write");
        self.memory
            .write_all(&ZEROS[..pad.min(ZEROS.len())])
            .map_err(err)?;
        for piece in stored {
            let err = self.memory_io("write");
            self.memory.write_all(piece).map_err(err)?;
        }
        self.memory_pos = info.file_offset + info.stored_len;
        // Bytes before `in_file` have reached the file (the rest is in
        // the buffer).
        let in_file = self.memory_pos - self.memory.buffer().len() as u64;
        self.writeback.written(self.memory.get_ref(), in_file);
        Ok(())
    }

    fn finish(mut self, manifest: &Manifest) -> Result<(), WriteError> {
        let err = self.memory_io("write");
        self.memory.flush().map_err(err)?;
        if self.sync {
            let err = self.memory_io("fsync");
            self.memory.get_ref().sync_all().map_err(err)?;
        }
        self.write_file(MANIFEST_FILE, &manifest.encode())?;
        let DirBackend { dir, sync, .. } = self;
        dir.commit(sync)
    }
}

/// Writeback of `memory.bin` while it is written.
///
/// The directory backend writes through the page cache and fsyncs at the
/// end, so without this the disk only starts once the last byte is in and
/// the memory write and the fsync take about as long each. Every `step`
/// bytes that reached the file, writeback of the new ones is started and
/// not waited for, which overlaps the two; the final fsync waits for the
/// tail only.
///
/// Linux's `sync_file_range(SYNC_FILE_RANGE_WRITE)` is the call for this,
/// but neither rustix nor nix wrap it and this crate has no unsafe code.
/// `posix_fadvise(POSIX_FADV_DONTNEED)` does the same start first (Linux
/// `mm/fadvise.c` `generic_fadvise`: `filemap_fdatawrite_range_kick`, i.e.
/// `WB_SYNC_NONE` writeback of the range, no wait), then drops the
/// range's *clean* pages from the page cache. It is only ever given pages
/// written since the last call, which are all dirty (now under writeback)
/// and so stay cached (only pages the kernel's flusher already wrote back
/// in between can be dropped; a restore reads those from disk). If the call
/// fails, writeback stops being started and the write goes on (the image
/// is the same).
struct Writeback {
    /// Bytes between two starts; 0 = off.
    step: u64,
    /// Writeback was started for `memory.bin[..started]` (page-aligned).
    started: u64,
    /// Number of starts (for tests).
    starts: u64,
}

impl Writeback {
    fn new(step: u64) -> Writeback {
        Writeback {
            step,
            started: 0,
            starts: 0,
        }
    }

    /// `file[..in_file]` has been written.
    fn written(&mut self, file: &File, in_file: u64) {
        if self.step == 0 || in_file < self.started.saturating_add(self.step) {
            return;
        }
        // Whole pages only: a partial last page would be written back and
        // dirtied again by the next write.
        let end = in_file / PAGE_SIZE * PAGE_SIZE;
        let advice = rustix::fs::Advice::DontNeed;
        match rustix::fs::fadvise(file, self.started, end - self.started, advice) {
            Ok(()) => {
                self.started = end;
                self.starts += 1;
            }
            Err(e) => {
                tracing::debug!("starting writeback of {MEMORY_FILE} (fadvise): {e}; disabled");
                self.step = 0;
            }
        }
    }
}

#[cfg(test)]
mod writeback_tests {
    use super::*;

    /// Dirty pages of a file are not visible to user space; what is
    /// checked is that starts happen at the step, cover what was written,
    /// never fail on a regular file, and change nothing in the file.
    #[test]
    fn starts_every_step_over_the_written_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut f = File::create_new(&path).unwrap();
        let step = 64 << 10;
        let mut w = Writeback::new(step);
        let block = vec![0xa5u8; 10_000];
        let mut written = 0u64;
        let mut last_started = 0;
        for _ in 0..100 {
            f.write_all(&block).unwrap();
            written += block.len() as u64;
            w.written(&f, written);
            assert_eq!(w.step, step, "fadvise failed on a regular file");
            assert_eq!(w.started % PAGE_SIZE, 0);
            assert!(w.started <= written);
            // Never more than one step (plus a partial page) behind.
            assert!(written - w.started < step + PAGE_SIZE);
            assert!(w.started >= last_started);
            last_started = w.started;
        }
        // 1_000_000 bytes in 64 KiB steps of 10_000-byte writes.
        assert!(w.starts >= 13, "only {} writeback starts", w.starts);
        drop(f);
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len() as u64, written);
        assert!(back.iter().all(|&b| b == 0xa5));
    }

    #[test]
    fn step_zero_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create_new(dir.path().join("m")).unwrap();
        f.write_all(&[1u8; 1 << 20]).unwrap();
        let mut w = Writeback::new(0);
        w.written(&f, 1 << 20);
        assert_eq!((w.started, w.starts), (0, 0));
    }
}
