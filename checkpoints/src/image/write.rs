//! Writing an image: the section encoder shared by the directory and the
//! stream form, and the two entry points.
//!
//! The memory section is planned as spans of at most `chunk_size` bytes of
//! used memory; worker threads scan a span for zero pages, gather and
//! compress its non-zero pages and checksum the result (with compression
//! `None`, scan and checksum are one pass); the caller's thread takes the
//! spans in order and assigns each chunk its file offset (so the output is
//! deterministic), with at most two chunks per worker in flight. Compressed
//! chunks are written by the caller's thread; in the directory form raw
//! chunks are written by writer threads at their offsets, straight from
//! the memory with `O_DIRECT` (see [`RawSink`]), while the next spans are
//! scanned.

use std::fs::File;
use std::io::Write;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::atomic::TempDir;
use super::compress::{compress_state, Compression};
use super::error::WriteError;
use super::layout::{check_ranges, nonzero_runs, nonzero_runs_crc, plan_spans};
use super::manifest::{
    ChunkInfo, Codec, ImageMeta, Manifest, ManifestHead, MemoryLayout, PageRange, PageRun,
    StateInfo,
};
use super::pipeline::{run_fed, run_ordered, thread_count};
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
    /// Directory form only: write raw chunks of `memory.bin` with
    /// `O_DIRECT` from several threads, which runs at the
    /// disk's speed and leaves the page cache alone; on file systems
    /// without `O_DIRECT`, or when `false`, every chunk goes through the
    /// page cache in order. The bytes are the same either way. `false`
    /// keeps the image in the page cache, which a restore on the same host
    /// soon after reads instead of the disk, at the price of filling fresh
    /// page-cache pages during the checkpoint.
    pub direct: bool,
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
            direct: true,
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
    /// Where raw chunks may be written instead of through [`Backend::chunk`]:
    /// at their `file_offset`, from several threads, in any order. `None`
    /// (the stream): every chunk goes through `chunk`, in order.
    fn raw_sink(&self) -> Option<Arc<RawSink>> {
        None
    }
}

/// Writes the image as a directory at `path` (which must not exist),
/// atomically: on error nothing is left behind.
pub fn write_dir(
    path: &Path,
    input: &ImageInput<'_>,
    opts: &WriteOptions<'_>,
) -> Result<WriteStats, WriteError> {
    check_input(input, opts)?;
    let backend = DirBackend::open(path, opts.sync, opts.writeback_step, opts.direct)?;
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

impl Encoded {
    /// A raw chunk of `runs`, whose bytes have checksum `crc32c`.
    fn raw(runs: Vec<PageRun>, crc32c: u32) -> Encoded {
        Encoded {
            raw_len: runs.iter().map(PageRun::len).sum(),
            runs,
            codec: Codec::Raw,
            crc32c,
            packed: None,
        }
    }
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
    let Worker { compressor, gather } = worker;
    let Some(compressor) = compressor else {
        // Compression `None`: one pass finds the pages and checksums them.
        let (runs, crc32c) = nonzero_runs_crc(memory, *span);
        return Ok((!runs.is_empty()).then(|| Encoded::raw(runs, crc32c)));
    };
    let runs = nonzero_runs(memory, *span);
    if runs.is_empty() {
        return Ok(None);
    }
    let raw_len: u64 = runs.iter().map(PageRun::len).sum();
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
    // Incompressible: stored raw; `src` is the runs' bytes back to back.
    let crc = crc32c::crc32c(src);
    Ok(Some(Encoded::raw(runs, crc)))
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
    let sink = backend.raw_sink();
    // Scans spans on `threads` workers and consumes them in order on this
    // thread: file offsets are assigned here; raw chunks go to `send` (the
    // raw sink's writers) when there is one, others to the backend.
    let mut scan = |mut send: Option<&mut dyn FnMut(RawJob) -> bool>| {
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
                    let info = ChunkInfo {
                        file_offset,
                        codec: e.codec,
                        raw_len: e.raw_len,
                        stored_len,
                        crc32c: e.crc32c,
                        runs: e.runs,
                    };
                    match (&e.packed, send.as_mut()) {
                        (Some(packed), _) => backend.chunk(&info, &[packed])?,
                        (None, None) => {
                            let pieces: Vec<&[u8]> = info
                                .runs
                                .iter()
                                .map(|r| run_slice(input.memory, r))
                                .collect();
                            backend.chunk(&info, &pieces)?;
                        }
                        (None, Some(send)) => {
                            let job = RawJob {
                                file_offset,
                                runs: info.runs.clone(),
                            };
                            if !send(job) {
                                // A writer failed; `run_fed` returns its
                                // error instead of this one.
                                return Err(WriteError::Cancelled);
                            }
                        }
                    }
                    if let (Some(p), Ok(mut pool)) = (e.packed, pool.lock()) {
                        pool.push(p);
                    }
                    pos = file_offset + stored_len;
                    stats.memory_stored_raw_bytes += e.raw_len;
                    chunks.push(info);
                }
                done += spans[idx].len;
                // With a raw sink, `done` counts chunks handed to its
                // writers (at most `2 * writers` ahead of the disk).
                report(opts.progress, done, total)
            },
        )
    };
    match &sink {
        Some(sink) => {
            run_fed(
                threads,
                2 * threads,
                || Ok(Gather::default()),
                |gather, job: RawJob| job.write(sink, input.memory, gather),
                |send| scan(Some(send)),
            )?;
        }
        None => scan(None)?,
    }
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

/// A raw chunk for the raw sink's writers: its runs of the memory slice
/// go to `memory.bin` from `file_offset` on, back to back.
struct RawJob {
    file_offset: u64,
    runs: Vec<PageRun>,
}

impl RawJob {
    /// Writes the job's runs: long runs straight from `memory`, short ones
    /// gathered first, so fragmented memory does not turn into one small
    /// synchronous write per page.
    fn write(&self, sink: &RawSink, memory: &[u8], gather: &mut Gather) -> Result<(), WriteError> {
        let mut offset = self.file_offset;
        for run in &self.runs {
            let bytes = run_slice(memory, run);
            if bytes.len() >= GATHER_BELOW {
                gather.flush(sink)?;
                sink.write_at(bytes, offset)?;
            } else {
                gather.push(sink, bytes, offset)?;
            }
            offset += bytes.len() as u64;
        }
        gather.flush(sink)
    }
}

/// Runs shorter than this are copied into a [`Gather`] buffer.
const GATHER_BELOW: usize = 256 << 10;

/// Capacity of a [`Gather`] buffer.
const GATHER_CAPACITY: usize = 4 << 20;

/// A writer thread's buffer of consecutive short runs, page-aligned so it
/// can be written with `O_DIRECT` (allocated on first use).
#[derive(Default)]
struct Gather {
    /// `GATHER_CAPACITY + PAGE_SIZE` bytes; never reallocated.
    buf: Vec<u8>,
    /// Offset of the first page-aligned byte of `buf`.
    start: usize,
    /// Bytes gathered after `start`.
    len: usize,
    /// File offset of the gathered bytes.
    file_offset: u64,
}

impl Gather {
    /// Appends `bytes`, which go to `offset`: right after the gathered
    /// bytes (runs of one job are back to back in the file).
    fn push(&mut self, sink: &RawSink, bytes: &[u8], offset: u64) -> Result<(), WriteError> {
        if self.len + bytes.len() > GATHER_CAPACITY {
            self.flush(sink)?;
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; GATHER_CAPACITY + PAGE_SIZE as usize];
            // `align_offset` may give up (usize::MAX): then the buffer is
            // unaligned and `write_at` takes the page cache.
            let align = self.buf.as_ptr().align_offset(PAGE_SIZE as usize);
            self.start = if align < PAGE_SIZE as usize { align } else { 0 };
        }
        if self.len == 0 {
            self.file_offset = offset;
        }
        debug_assert_eq!(self.file_offset + self.len as u64, offset);
        let at = self.start + self.len;
        self.buf[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }

    fn flush(&mut self, sink: &RawSink) -> Result<(), WriteError> {
        if self.len > 0 {
            sink.write_at(
                &self.buf[self.start..self.start + self.len],
                self.file_offset,
            )?;
            self.len = 0;
        }
        Ok(())
    }
}

/// `memory.bin` opened for positional writes from several threads: raw
/// chunks are written with `O_DIRECT` straight from the memory slice when
/// the slice, the length and the file offset are page-aligned (they are
/// for a page-aligned memory mapping such as the sentry's), through the
/// page cache otherwise.
///
/// Why direct: written through the page cache, every byte of the image is
/// first copied into freshly allocated page-cache pages, and on these VMs
/// the first touch of a fresh page is what costs (the balloon gives freed
/// memory back to the host): perf put 67% of a 1 GiB checkpoint in that
/// copy (`copy_folio_from_iter_atomic`). A direct write hands the guest's
/// own pages to the device (Linux `fs/iomap/direct-io.c`), allocates
/// nothing, and leaves the page cache to other users. It is not durable by
/// itself: the final fsync still flushes the device cache and the journal
/// (the allocation and unwritten-extent conversions), as for buffered
/// writes.
///
/// If a direct write is refused with `EINVAL` (a file system or device
/// with stricter alignment, or no `O_DIRECT`), that piece and all later
/// ones are written through the page cache instead; the bytes are the same.
///
/// Direct and buffered writes never share a page of the file: raw chunks
/// start and end on page boundaries (FORMAT.md), so a compressed chunk
/// written through the page cache by [`Backend::chunk`] never overlaps the
/// range of a direct write.
pub(crate) struct RawSink {
    path: PathBuf,
    buffered: File,
    /// `O_DIRECT` descriptor of the same file, if the open succeeded.
    direct: Option<File>,
    /// Cleared on the first `EINVAL` from a direct write.
    direct_ok: AtomicBool,
    /// Bytes written directly (for tests).
    direct_bytes: AtomicU64,
}

impl RawSink {
    /// Wraps `buffered` (the file at `path`); with `direct`, also opens
    /// it with `O_DIRECT`.
    fn open(path: PathBuf, buffered: File, direct: bool) -> RawSink {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::WRONLY | OFlags::DIRECT | OFlags::CLOEXEC;
        let direct = match direct.then(|| rustix::fs::open(&path, flags, Mode::empty())) {
            Some(Ok(fd)) => Some(File::from(fd)),
            Some(Err(e)) => {
                tracing::debug!("{MEMORY_FILE} cannot be opened with O_DIRECT: {e}");
                None
            }
            None => None,
        };
        RawSink {
            path,
            direct_ok: AtomicBool::new(direct.is_some()),
            buffered,
            direct,
            direct_bytes: AtomicU64::new(0),
        }
    }

    fn io(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
        move |source| WriteError::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }

    /// Writes `bytes` at `offset`; may be called from several threads for
    /// disjoint ranges.
    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<(), WriteError> {
        let usable = is_page_aligned(bytes.as_ptr() as u64)
            && is_page_aligned(bytes.len() as u64)
            && is_page_aligned(offset)
            && self.direct_ok.load(Ordering::Relaxed);
        if let Some(direct) = self.direct.as_ref().filter(|_| usable) {
            match direct.write_all_at(bytes, offset) {
                Ok(()) => {
                    self.direct_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    // Part of the range may be written already; the
                    // buffered write below writes the same bytes again.
                    tracing::debug!(
                        "O_DIRECT write to {MEMORY_FILE} refused ({e}); buffered from now on"
                    );
                    self.direct_ok.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(self.io("write")(e)),
            }
        }
        self.buffered
            .write_all_at(bytes, offset)
            .map_err(self.io("write"))
    }
}

/// Directory backend: `state.bin` and `memory.bin` as the sections come,
/// `manifest.bin` last, then the atomic rename.
///
/// `memory.bin` is written with positional writes: by [`Backend::chunk`]
/// on the encoder's thread, through the page cache, and, when `O_DIRECT` is
/// on, raw chunks by the raw sink's writer threads instead. Padding before
/// a raw chunk is never written: it is a hole (or preallocated unwritten
/// space), which reads as zeros.
pub(crate) struct DirBackend {
    dir: TempDir,
    sink: Arc<RawSink>,
    /// `memory.bin` was preallocated to an upper bound of its size and is
    /// cut to its real size in `finish`.
    preallocated: bool,
    sync: bool,
    writeback: Writeback,
}

impl DirBackend {
    /// A backend that writes every chunk through the page cache.
    pub(crate) fn create(
        target: &Path,
        sync: bool,
        writeback_step: u64,
    ) -> Result<DirBackend, WriteError> {
        DirBackend::open(target, sync, writeback_step, false)
    }

    /// With `direct`, raw chunks go to a [`RawSink`] with `O_DIRECT` if the
    /// file system allows it.
    fn open(
        target: &Path,
        sync: bool,
        writeback_step: u64,
        direct: bool,
    ) -> Result<DirBackend, WriteError> {
        let dir = TempDir::create(target)?;
        let path = dir.path().join(MEMORY_FILE);
        let memory = File::create_new(&path).map_err(|source| WriteError::Io {
            op: "create",
            path: path.clone(),
            source,
        })?;
        Ok(DirBackend {
            dir,
            sink: Arc::new(RawSink::open(path, memory, direct)),
            preallocated: false,
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

    /// With compression `None` every chunk is raw, so `memory.bin` will be
    /// at most the used bytes plus less than a page of padding per span.
    /// Allocating that up front (Linux `fallocate(2)`, unwritten extents)
    /// makes the direct writes overwrites of allocated blocks, which ext4
    /// runs concurrently under a shared inode lock; writes past the end of
    /// the file take the lock exclusively and run one at a time
    /// (`fs/ext4/file.c` `ext4_dio_write_checks`). Not done for zstd: the
    /// bound would be far above the compressed size. Failure (no space for
    /// the bound, no fallocate) only loses the concurrency.
    fn preallocate(&mut self, head: &ManifestHead) {
        if head.compression != Compression::None || self.sink.direct.is_none() {
            return;
        }
        let layout = &head.layout;
        let bound: u64 = layout
            .used_ranges
            .iter()
            .map(|r| r.len + r.len.div_ceil(layout.chunk_size) * PAGE_SIZE)
            .sum();
        if bound == 0 {
            return;
        }
        let mode = rustix::fs::FallocateFlags::empty();
        match rustix::fs::fallocate(&self.sink.buffered, mode, 0, bound) {
            Ok(()) => self.preallocated = true,
            Err(e) => tracing::debug!("preallocating {bound} bytes of {MEMORY_FILE}: {e}"),
        }
    }
}

impl Backend for DirBackend {
    fn head(&mut self, head: &ManifestHead) -> Result<(), WriteError> {
        self.preallocate(head);
        Ok(())
    }

    fn state(&mut self, _info: &StateInfo, stored: &[u8]) -> Result<(), WriteError> {
        self.write_file(STATE_FILE, stored)
    }

    fn chunk(&mut self, info: &ChunkInfo, stored: &[&[u8]]) -> Result<(), WriteError> {
        let file = &self.sink.buffered;
        let mut offset = info.file_offset;
        for piece in stored {
            file.write_all_at(piece, offset)
                .map_err(self.sink.io("write"))?;
            offset += piece.len() as u64;
        }
        // Chunks come here in file order; writeback may start up to the
        // end of this one.
        self.writeback.written(file, offset);
        Ok(())
    }

    fn raw_sink(&self) -> Option<Arc<RawSink>> {
        self.sink.direct.is_some().then(|| self.sink.clone())
    }

    fn finish(self, manifest: &Manifest) -> Result<(), WriteError> {
        let file = &self.sink.buffered;
        if self.preallocated {
            file.set_len(manifest.memory_stored_len)
                .map_err(self.sink.io("truncate"))?;
        }
        if self.sync {
            file.sync_all().map_err(self.sink.io("fsync"))?;
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

#[cfg(test)]
mod raw_sink_tests {
    use super::*;
    use crate::image::{read_dir, CpuFeatures, ReadOptions, SchemaInfo};

    const PAGE: usize = PAGE_SIZE as usize;

    /// A page-aligned window of `len` bytes inside `buf` (like the
    /// sentry's mapping of its memory file).
    fn aligned(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
        buf.resize(len + PAGE, 0);
        let start = buf.as_ptr().align_offset(PAGE);
        &mut buf[start..start + len]
    }

    /// The same bytes at an address that is not page-aligned: the writer
    /// must use the page cache for them.
    fn unaligned<'b>(buf: &'b mut Vec<u8>, src: &[u8]) -> &'b mut [u8] {
        buf.resize(src.len() + 1, 0);
        buf[1..].copy_from_slice(src);
        &mut buf[1..]
    }

    /// Memory of `pages` pages: page `i` is zero when `i % 5 == 2`, and
    /// `compressible` pages repeat one byte; the others are xorshift data.
    /// Runs are then short (gathered); a long run at the end is written
    /// straight from memory.
    fn fill(mem: &mut [u8], long_run_from: usize, compressible: bool) {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for (i, page) in mem.chunks_exact_mut(PAGE).enumerate() {
            if i < long_run_from && i % 5 == 2 {
                continue;
            }
            if compressible && i % 3 == 0 {
                page.fill(i as u8 | 1);
                continue;
            }
            for w in page.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
        }
    }

    /// Writes `memory` as a directory image at `path`; returns the
    /// manifest's stored length and the bytes the sink wrote directly.
    fn write(path: &Path, memory: &[u8], compression: Compression, direct: bool) -> (u64, u64) {
        let meta = ImageMeta {
            created_unix_secs: 1,
            created_subsec_nanos: 2,
            ..ImageMeta::now("t", SchemaInfo::default(), CpuFeatures::default())
        };
        let ranges = [PageRange {
            offset: 0,
            len: memory.len() as u64,
        }];
        let input = ImageInput {
            meta: &meta,
            state: b"state",
            memory,
            used_ranges: &ranges,
        };
        let opts = WriteOptions {
            compression,
            chunk_size: 256 << 10,
            sync: false,
            ..WriteOptions::default()
        };
        let backend = DirBackend::open(path, opts.sync, opts.writeback_step, direct).unwrap();
        let sink = backend.raw_sink();
        assert_eq!(
            sink.is_some(),
            direct,
            "O_DIRECT refused on this file system"
        );
        let stats = encode(backend, &input, &opts).unwrap();
        let direct_bytes = sink.map_or(0, |s| s.direct_bytes.load(Ordering::Relaxed));
        (stats.memory_stored_bytes, direct_bytes)
    }

    fn files(dir: &Path) -> Vec<Vec<u8>> {
        [MANIFEST_FILE, STATE_FILE, MEMORY_FILE]
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect()
    }

    /// 2 MiB of memory: 4 spans of 256 KiB with a zero page in every five
    /// (short runs), then 1 MiB of one long run per span.
    const PAGES: usize = 512;
    const LONG_RUN_FROM: usize = 256;

    #[test]
    fn aligned_memory_goes_direct_and_the_image_is_byte_identical() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut a, mut u) = (Vec::new(), Vec::new());
        let mem = aligned(&mut a, PAGES * PAGE);
        fill(mem, LONG_RUN_FROM, false);
        let copy = unaligned(&mut u, mem);

        let (stored, direct) = write(&tmp.path().join("a"), mem, Compression::None, true);
        let (_, buffered_direct) = write(&tmp.path().join("u"), copy, Compression::None, true);
        let (_, off) = write(&tmp.path().join("c"), mem, Compression::None, false);

        // Every stored byte went to the disk directly (gathered or not);
        // of the unaligned copy's only the gathered short runs (copied to
        // an aligned buffer), not the long run.
        // Pages 2, 7, …, 252 of the first 256.
        let zero_pages = 51;
        assert_eq!(stored, (PAGES as u64 - zero_pages) * PAGE_SIZE);
        let long_run = (PAGES - LONG_RUN_FROM) as u64 * PAGE_SIZE;
        assert_eq!((direct, buffered_direct), (stored, stored - long_run));
        assert_eq!(off, 0);
        assert_eq!(files(&tmp.path().join("a")), files(&tmp.path().join("u")));
        assert_eq!(files(&tmp.path().join("a")), files(&tmp.path().join("c")));
        // Preallocation was cut back to the stored length.
        let len = std::fs::metadata(tmp.path().join("a").join(MEMORY_FILE))
            .unwrap()
            .len();
        assert_eq!(len, stored);
        let mut back = vec![0u8; PAGES * PAGE];
        read_dir(&tmp.path().join("a"), &mut back, &ReadOptions::default()).unwrap();
        assert!(back == *mem);
    }

    #[test]
    fn zstd_chunks_are_buffered_raw_ones_direct_and_the_image_is_byte_identical() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut a, mut u) = (Vec::new(), Vec::new());
        let mem = aligned(&mut a, PAGES * PAGE);
        fill(mem, LONG_RUN_FROM, true);
        // The long run: incompressible, so its spans are stored raw.
        let mut x = 7u64;
        for w in mem[LONG_RUN_FROM * PAGE..].chunks_exact_mut(8) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            w.copy_from_slice(&x.to_le_bytes());
        }
        let copy = unaligned(&mut u, mem);

        let (stored, direct) = write(&tmp.path().join("a"), mem, Compression::Zstd(1), true);
        let (_, buffered_direct) = write(&tmp.path().join("u"), copy, Compression::Zstd(1), true);

        // The long run's 1 MiB is raw and direct; the short-run spans
        // compress and go through the page cache.
        assert_eq!(direct, (PAGES - LONG_RUN_FROM) as u64 * PAGE_SIZE);
        assert!(stored > direct, "no compressed chunk: {stored} stored");
        assert_eq!(buffered_direct, 0);
        assert_eq!(files(&tmp.path().join("a")), files(&tmp.path().join("u")));
        let mut back = vec![0u8; PAGES * PAGE];
        read_dir(&tmp.path().join("a"), &mut back, &ReadOptions::default()).unwrap();
        assert!(back == *mem);
    }
}
