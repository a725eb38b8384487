//! Restore: rebuild a kernel from an image directory and start its tasks.
//!
//! Order (DESIGN.md points 4 and 6: everything is validated before any
//! guest code runs):
//! 1. open the image: manifest magic, version, bounds, checksum; section
//!    file sizes (`DirImage::open`);
//! 2. schema fingerprint against this build, CPU features against this
//!    host;
//! 3. state section: checksum, decompression, decode of the object graph
//!    ([`Snapshot`]); `after_load` hooks rebuild host objects (a fresh
//!    memfd grown to the saved length, host stdio re-bound to the
//!    restoring process's, the overlay's root reopened);
//! 4. memory section into the fresh memfd, each chunk checked before it
//!    is written;
//! 5. the clock offset, so sandbox `CLOCK_MONOTONIC` continues from the
//!    saved value;
//! 6. ([`LoadedImage::start`]) the platform over the new memfd, then one
//!    host thread per task; one fresh context (stub) per address space,
//!    whose other tasks (threads) get sibling stub threads
//!    (`Context::new_thread`); the saved registers and FP state per task;
//!    address spaces fault their pages in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoints::image::{
    self, CpuFeatures, DirImage, ImageError, Manifest, ProgressFn, SchemaMismatch,
};
use checkpoints::state::{self, LoadError};

use super::checkpoint::{schema_pairs, Snapshot};
use super::kernel::Kernel;
use super::pid_ns::Pid;
use super::task::{Task, TaskRunner};
use crate::platform::{Platform, PlatformError, ThreadSeed};

/// Why an image cannot be restored. Nothing of the guest ran.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("invalid image")]
    Image {
        path: PathBuf,
        #[source]
        source: ImageError,
    },
    #[error("the image was written by an incompatible sbx build")]
    Schema(#[source] SchemaMismatch),
    #[error("cannot read the host CPU features")]
    CpuProbe(#[source] image::CpuProbeError),
    #[error("the image needs CPU features this host lacks")]
    Cpu(#[source] image::CpuCompatError),
    #[error("cannot decode the kernel state")]
    Decode(#[source] LoadError),
    #[error("cannot write memory at offset {offset:#x} of the memory file")]
    MemoryWrite { offset: u64 },
    #[error("the restored kernel is still shared after load (internal error)")]
    Shared,
    #[error("the restored state has no init process")]
    NoInit,
    #[error("host file {path} changed or vanished since the checkpoint: {errno}")]
    HostFileChanged {
        path: String,
        errno: crate::errno::Errno,
    },
    #[error("cannot create the platform")]
    Platform(#[source] PlatformError),
    #[error("cannot create the context of task {tid}")]
    Context {
        tid: Pid,
        #[source]
        source: PlatformError,
    },
    #[error("cannot spawn the host thread of task {tid}")]
    Spawn {
        tid: Pid,
        #[source]
        source: std::io::Error,
    },
    #[error("task {tid}'s saved FP state was rejected by this host")]
    FpState {
        tid: Pid,
        #[source]
        source: PlatformError,
    },
}

/// Figures of a restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreReport {
    /// Manifest, schema and CPU checks.
    pub validate: Duration,
    pub state_decode: Duration,
    pub memory_load: Duration,
    /// From `start` until every task's context exists and its registers
    /// are set: the first instruction runs right after.
    pub first_instruction: Duration,
    pub state_bytes: u64,
    pub memory_bytes: u64,
    pub memory_stored_bytes: u64,
    pub tasks: usize,
    pub sandbox_id: String,
}

/// A kernel rebuilt from an image whose tasks do not run yet.
pub struct LoadedImage {
    pub kernel: Arc<Kernel>,
    pub report: RestoreReport,
}

impl std::fmt::Debug for LoadedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedImage")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

fn image_err(path: &Path) -> impl FnOnce(ImageError) -> RestoreError + '_ {
    move |source| RestoreError::Image {
        path: path.to_owned(),
        source,
    }
}

/// Checks that an image can be restored by this build on this host.
pub fn validate(manifest: &Manifest) -> Result<(), RestoreError> {
    let schema = state::schema_of::<Snapshot>();
    let pairs = schema_pairs(&schema.types);
    manifest
        .head
        .meta
        .schema
        .check_against(schema.root_fingerprint, &pairs)
        .map_err(RestoreError::Schema)?;
    let host = CpuFeatures::host().map_err(RestoreError::CpuProbe)?;
    manifest
        .head
        .meta
        .cpu
        .check_runnable_on(&host)
        .map_err(RestoreError::Cpu)
}

/// Steps 1–5 of the module docs.
pub fn load(path: &Path, progress: Option<&ProgressFn<'_>>) -> Result<LoadedImage, RestoreError> {
    let t = Instant::now();
    let img = DirImage::open(path).map_err(image_err(path))?;
    validate(img.manifest())?;
    let mut report = RestoreReport {
        validate: t.elapsed(),
        sandbox_id: img.manifest().head.meta.sandbox_id.clone(),
        ..Default::default()
    };

    let t = Instant::now();
    let bytes = img.read_state().map_err(image_err(path))?;
    report.state_bytes = bytes.len() as u64;
    let snap: Snapshot = state::load(&bytes).map_err(RestoreError::Decode)?;
    drop(bytes);
    report.state_decode = t.elapsed();

    let t = Instant::now();
    let mf = snap.kernel.mf.clone();
    report.memory_stored_bytes = img.manifest().memory_stored_len;
    report.memory_bytes = load_memory(&img, &mf, progress)?;
    drop(mf);
    report.memory_load = t.elapsed();

    let Snapshot {
        monotonic_ns,
        mut kernel,
    } = snap;
    let k = Arc::get_mut(&mut kernel).ok_or(RestoreError::Shared)?;
    let host_now = k.clocks.monotonic() - k.clocks.monotonic_offset;
    k.clocks.monotonic_offset = monotonic_ns - host_now;
    {
        let ts = kernel.tasks();
        if !ts.procs.contains_key(&1) {
            return Err(RestoreError::NoInit);
        }
        report.tasks = ts.tasks.len();
    }
    check_host_files(&kernel)?;
    Ok(LoadedImage { kernel, report })
}

/// Reopens every host file the restored sandbox uses (open overlay files
/// not copied up, and files mapped into address spaces) so one that
/// changed since the checkpoint (size or mtime; checked by the overlay
/// and `MappedFile`) or disappeared refuses the restore, naming it,
/// instead of failing later with `EIO` inside the guest.
fn check_host_files(kernel: &Kernel) -> Result<(), RestoreError> {
    use crate::vfs::FileKind;
    let groups: Vec<_> = kernel
        .tasks()
        .procs
        .values()
        .map(|p| p.tg.clone())
        .collect();
    for tg in groups {
        if let Some(fds) = tg.fds() {
            for fd in fds.fds() {
                let Ok(f) = fds.get(fd) else { continue };
                if let FileKind::Regular(node) = f.kind() {
                    node.read_at(0, &mut [])
                        .map_err(|errno| RestoreError::HostFileChanged {
                            path: String::from_utf8_lossy(f.path()).into_owned(),
                            errno,
                        })?;
                }
            }
        }
        if let Some(mm) = tg.mm() {
            let mm = super::thread_group::lock(&mm);
            for vma in mm.vmas() {
                if let crate::mm::VmaBacking::File { file, .. } = &vma.backing {
                    file.read_at(0, &mut [])
                        .map_err(|errno| RestoreError::HostFileChanged {
                            path: file.path_name(),
                            errno,
                        })?;
                }
            }
        }
    }
    Ok(())
}

impl LoadedImage {
    /// Installs `platform` and starts every task on its own host thread
    /// with a fresh context. Returns once every context exists.
    pub fn start(
        mut self,
        platform: Arc<dyn Platform>,
    ) -> Result<(Arc<Kernel>, RestoreReport), RestoreError> {
        let t = Instant::now();
        self.kernel.set_platform(platform);
        let tasks: Vec<_> = self
            .kernel
            .tasks()
            .tasks
            .values()
            .map(|e| e.task.clone())
            .collect();
        // Tasks sharing an address space (the threads of a process) share
        // one stub: the first task of each group creates it with
        // `new_context` and, on its own host thread (the tracer rule),
        // makes one sibling stub thread per other task with `new_thread`;
        // each of those tasks attaches its seed on its own host thread. Mappings live in the shared stub and fault
        // in; registers and FP state are per task.
        let mut groups: Vec<(usize, Vec<Arc<Task>>)> = Vec::new();
        for task in tasks {
            let key = task.tg.mm().map_or(0, |mm| Arc::as_ptr(&mm) as usize);
            match groups.iter_mut().find(|(k, _)| key != 0 && *k == key) {
                Some((_, g)) => g.push(task),
                None => groups.push((key, vec![task])),
            }
        }
        let total: usize = groups.iter().map(|(_, g)| g.len()).sum();
        let mut pending = Vec::new();
        // Every task thread waits at `go` until all contexts exist, so a
        // failure leaves no guest code having run.
        let go = Arc::new(std::sync::Barrier::new(total + 1));
        let ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for (_, group) in groups {
            let mut seed_txs = Vec::new();
            let mut origins = Vec::new();
            for (i, task) in group.into_iter().enumerate() {
                let origin = if i == 0 {
                    Origin::New(Vec::new())
                } else {
                    let (stx, srx) = std::sync::mpsc::channel::<SeedMsg>();
                    seed_txs.push(stx);
                    Origin::Seed(srx)
                };
                origins.push((task, origin));
            }
            if let Some((_, Origin::New(txs))) = origins.first_mut() {
                *txs = seed_txs;
            }
            for (task, origin) in origins {
                let tid = task.tid;
                let (tx, rx) = std::sync::mpsc::channel::<Result<(), RestoreError>>();
                let kernel = self.kernel.clone();
                let go = go.clone();
                let ok = ok.clone();
                std::thread::Builder::new()
                    .name(format!("task-{tid}"))
                    .spawn(move || {
                        let Some(runner) = make_runner(kernel, task, origin, &tx) else {
                            go.wait();
                            return;
                        };
                        let _ = tx.send(Ok(()));
                        go.wait();
                        if ok.load(std::sync::atomic::Ordering::Acquire) {
                            runner.run();
                        }
                        // Otherwise the restore failed: the runner (and its
                        // stub) is dropped without running guest code.
                    })
                    .map_err(|source| RestoreError::Spawn { tid, source })?;
                pending.push(rx);
            }
        }
        let mut first_err = None;
        for rx in pending {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(RestoreError::Context {
                        tid: 0,
                        source: PlatformError::Unsupported {
                            what: "task thread died during restore",
                        },
                    });
                }
            }
        }
        ok.store(first_err.is_none(), std::sync::atomic::Ordering::Release);
        self.report.first_instruction = t.elapsed();
        go.wait();
        if let Some(e) = first_err {
            return Err(e);
        }
        // Interval timers: their deadlines are kernel state on the sandbox
        // monotonic clock; the host thread that fires them is new.
        self.kernel.start_timers();
        tracing::info!(tasks = self.report.tasks, "sandbox restored");
        Ok((self.kernel, self.report))
    }
}

/// A sibling thread's seed (or why there is none), from the host thread
/// of the first task of its address space.
type SeedMsg = Result<Box<dyn ThreadSeed>, PlatformError>;

/// How a restored task gets its context.
enum Origin {
    /// A fresh address space; then one seed per sibling task, sent to it.
    New(Vec<std::sync::mpsc::Sender<SeedMsg>>),
    /// A sibling thread of another task's stub, attached here.
    Seed(std::sync::mpsc::Receiver<SeedMsg>),
}

/// On the task's own host thread: creates (or attaches) its context, makes
/// the siblings' seeds if it is the first of its address space, and sets
/// its FP state. Reports an error on `tx` and returns `None` on failure.
fn make_runner(
    kernel: Arc<Kernel>,
    task: Arc<Task>,
    origin: Origin,
    tx: &std::sync::mpsc::Sender<Result<(), RestoreError>>,
) -> Option<TaskRunner> {
    let tid = task.tid;
    let ctx = match origin {
        Origin::New(siblings) => match kernel.platform().new_context() {
            Ok(mut ctx) => {
                for s in siblings {
                    // A failed seed is reported by the sibling that gets it.
                    let _ = s.send(ctx.new_thread());
                }
                Ok(ctx)
            }
            Err(source) => {
                for s in siblings {
                    let _ = s.send(Err(PlatformError::Unsupported {
                        what: "a thread of an address space that failed to restore",
                    }));
                }
                Err(source)
            }
        },
        Origin::Seed(rx) => match rx.recv() {
            Ok(Ok(seed)) => seed.attach(),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(PlatformError::Unsupported {
                what: "a thread whose address space's first task died during restore",
            }),
        },
    };
    let mut ctx = match ctx {
        Ok(c) => c,
        Err(source) => {
            let _ = tx.send(Err(RestoreError::Context { tid, source }));
            return None;
        }
    };
    let (regs, fp) = {
        let mut l = task.local();
        (l.regs, l.fp.take())
    };
    if let Some(fp) = fp {
        if let Err(source) = ctx.set_fp(&fp) {
            let _ = tx.send(Err(RestoreError::FpState { tid, source }));
            return None;
        }
    }
    Some(TaskRunner::new(kernel, task, ctx, regs))
}

/// The memory load, in parallel over chunks: a raw chunk goes from
/// `memory.bin` into the memory file with `sendfile(2)` (one in-kernel
/// copy, no user buffers) and its crc32c is then checked over the memory
/// file's copy; a zstd chunk is read, checked (crc32c of the stored bytes)
/// and decompressed through a scratch buffer, which is then written to the
/// memory file. Nothing may use the memory before this
/// returns `Ok` (no guest code has run yet). Returns the bytes restored.
fn load_memory(
    img: &DirImage,
    mf: &crate::mm::MemoryFile,
    progress: Option<&ProgressFn<'_>>,
) -> Result<u64, RestoreError> {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let m = img.manifest();
    let mem_len = mf.size();
    let total: u64 = m.chunks.iter().map(|c| c.raw_len).sum();
    let next = AtomicUsize::new(0);
    let copy_lock = std::sync::Mutex::new(());
    let done = AtomicU64::new(0);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
        .min(m.chunks.len().max(1));
    let bad = |source: ImageError| RestoreError::Image {
        path: img.path().to_owned(),
        source,
    };
    let corrupt = |chunk: usize, c: &image::ChunkInfo| {
        bad(ImageError::ChunkChecksumMismatch {
            chunk: chunk as u64,
            memory_offset: c.runs.first().map_or(0, |r| r.offset),
        })
    };
    let work = || -> Result<(), RestoreError> {
        // An own description of the memfd: sendfile writes at its file
        // position, which must not be shared with other workers.
        let proc_path = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&mf.fd())
        );
        let out = rustix::fs::open(
            proc_path.as_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|_| RestoreError::MemoryWrite { offset: 0 })?;
        let mut dctx: Option<zstd::bulk::Decompressor<'static>> = None;
        let mut stored = Vec::new();
        let mut scratch = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(c) = m.chunks.get(i) else {
                return Ok(());
            };
            let runs_len: u64 = c.runs.iter().map(|r| r.len()).sum();
            if runs_len != c.raw_len
                || c.runs
                    .iter()
                    .any(|r| r.offset.checked_add(r.len()).is_none_or(|e| e > mem_len))
            {
                return Err(corrupt(i, c));
            }
            match c.codec {
                image::Codec::Raw => {
                    if c.stored_len != c.raw_len {
                        return Err(corrupt(i, c));
                    }
                    let mut src = c.file_offset;
                    // One copier at a time: writes to the memfd serialize
                    // on its inode lock anyway (`shmem_file_write_iter`),
                    // and a second writer would spin on it; waiting here
                    // instead leaves the other core to the checksum of the
                    // previous chunk.
                    let copying = copy_lock.lock().unwrap_or_else(|p| p.into_inner());
                    for r in &c.runs {
                        rustix::fs::seek(&out, rustix::fs::SeekFrom::Start(r.offset))
                            .map_err(|_| RestoreError::MemoryWrite { offset: r.offset })?;
                        let mut left = r.len();
                        while left > 0 {
                            let n = rustix::fs::sendfile(
                                &out,
                                img.memory_file(),
                                Some(&mut src),
                                left as usize,
                            )
                            .map_err(|_| RestoreError::MemoryWrite { offset: r.offset })?;
                            if n == 0 {
                                return Err(corrupt(i, c));
                            }
                            left -= n as u64;
                        }
                    }
                    drop(copying);
                    let mut crc = 0u32;
                    for r in &c.runs {
                        let data = mf
                            .slice(r.offset, r.len())
                            .ok_or(RestoreError::MemoryWrite { offset: r.offset })?;
                        crc = crc32c::crc32c_append(crc, data);
                    }
                    if crc != c.crc32c {
                        return Err(corrupt(i, c));
                    }
                }
                image::Codec::Zstd => {
                    // Bounded by the manifest checks (MAX_CHUNK_SIZE).
                    stored.resize(c.stored_len as usize, 0);
                    std::os::unix::fs::FileExt::read_exact_at(
                        img.memory_file(),
                        &mut stored,
                        c.file_offset,
                    )
                    .map_err(|_| corrupt(i, c))?;
                    if crc32c::crc32c(&stored) != c.crc32c {
                        return Err(corrupt(i, c));
                    }
                    let d = match &mut dctx {
                        Some(d) => d,
                        None => dctx.insert(
                            zstd::bulk::Decompressor::new()
                                .map_err(|_| RestoreError::MemoryWrite { offset: 0 })?,
                        ),
                    };
                    let short = |source: Option<std::io::Error>| {
                        bad(ImageError::ChunkDecompress {
                            chunk: i as u64,
                            source,
                        })
                    };
                    scratch.resize(c.raw_len as usize, 0);
                    let n = d
                        .decompress_to_buffer(&stored, &mut scratch[..])
                        .map_err(|e| short(Some(e)))?;
                    if n as u64 != c.raw_len {
                        return Err(short(None));
                    }
                    let mut at = 0usize;
                    for r in &c.runs {
                        let len = r.len() as usize;
                        mf.write(r.offset, &scratch[at..at + len])
                            .map_err(|_| RestoreError::MemoryWrite { offset: r.offset })?;
                        at += len;
                    }
                }
            }
            let d = done.fetch_add(c.raw_len, Ordering::Relaxed) + c.raw_len;
            if let Some(p) = progress {
                if p(image::Progress { done: d, total }).is_break() {
                    return Err(RestoreError::MemoryWrite { offset: 0 });
                }
            }
        }
    };
    let results: Vec<Result<(), RestoreError>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(RestoreError::MemoryWrite { offset: 0 }))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(total)
}
