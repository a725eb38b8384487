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
//! 4. the memory section: every chunk's checksum checked, then (mode
//!    [`MemoryLoad`]) copied into the fresh memfd now (`eager`) or after the
//!    guest started, on first access and in the background (`lazy`,
//!    default) or on first access only (`on-demand`); see
//!    `restore_memory.rs`;
//! 5. the clock offset, so sandbox `CLOCK_MONOTONIC` continues from the
//!    saved value;
//! 6. ([`LoadedImage::start`]) the platform over the new memfd, then one
//!    host thread per task; one fresh context (stub) per address space,
//!    whose other tasks (threads) get sibling stub threads
//!    (`Context::new_thread`); the saved registers and FP state per task;
//!    address spaces fault their pages in; with `lazy`, the background
//!    loader starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoints::image::{self, CpuFeatures, DirImage, ImageError, Manifest, SchemaMismatch};

pub use super::restore_memory::{MemoryLoad, PhaseProgressFn, PHASE_CHECK, PHASE_LOAD};
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
    #[error("the image's memory chunks do not fit the restored memory file")]
    MemoryTable(#[source] crate::mm::lazy::LazyTableError),
    #[error("cannot load the image's memory")]
    MemoryLost(#[source] crate::mm::lazy::ChunkLost),
    #[error("the restored kernel is still shared after load (internal error)")]
    Shared,
    #[error("the restored memory file already has a lazy table (internal error)")]
    LazyTwice,
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
    #[error("cannot spawn the {what} thread")]
    Thread {
        what: &'static str,
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
    /// Checking every memory chunk's checksum.
    pub memory_verify: Duration,
    /// Copying memory in before the guest starts (`eager` only; the other
    /// modes copy while it runs).
    pub memory_load: Duration,
    pub memory_mode: MemoryLoad,
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

/// How to restore.
#[derive(Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    pub memory: MemoryLoad,
    /// Progress of the memory check (phase [`PHASE_CHECK`]) and, with
    /// `eager`, of the copy ([`PHASE_LOAD`]).
    pub progress: Option<&'a PhaseProgressFn<'a>>,
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
pub fn load(path: &Path, opts: &LoadOptions<'_>) -> Result<LoadedImage, RestoreError> {
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

    let mf = snap.kernel.mf.clone();
    report.memory_stored_bytes = img.manifest().memory_stored_len;
    report.memory_mode = opts.memory;
    let figures = super::restore_memory::prepare(img, &mf, opts.memory, opts.progress)?;
    drop(mf);
    report.memory_bytes = figures.bytes;
    report.memory_verify = figures.verify;
    report.memory_load = figures.load;

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
        let mut pending = Vec::new();
        // Every task thread waits at `go` until all contexts exist, so a
        // failure leaves no guest code having run. Any early return below
        // (a thread that cannot be spawned) drops `decide`, which tells the
        // threads already started to give up.
        let go = Arc::new(Gate::default());
        let decide = GateGuard(go.clone());
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
                std::thread::Builder::new()
                    .name(format!("task-{tid}"))
                    .spawn(move || {
                        let Some(runner) = make_runner(kernel, task, origin, &tx) else {
                            return;
                        };
                        let _ = tx.send(Ok(()));
                        if go.wait() {
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
        // Interval timers: their deadlines are kernel state on the sandbox
        // monotonic clock; the host thread that fires them is new. Started
        // before any task runs, so a refusal leaves no guest code run.
        if first_err.is_none() {
            if let Err(source) = self.kernel.start_timers() {
                first_err = Some(RestoreError::Thread {
                    what: "interval-timer",
                    source,
                });
            }
        }
        self.report.first_instruction = t.elapsed();
        decide.open(first_err.is_none());
        if let Some(e) = first_err {
            return Err(e);
        }
        if self.report.memory_mode == MemoryLoad::Lazy {
            super::restore_memory::spawn_background(&self.kernel.mf);
        }
        tracing::info!(tasks = self.report.tasks, "sandbox restored");
        Ok((self.kernel, self.report))
    }
}

/// The one-shot decision every restored task thread waits for: run the
/// guest, or give up because another task could not be restored.
#[derive(Default)]
struct Gate {
    /// `None` until decided.
    decided: std::sync::Mutex<Option<bool>>,
    cv: std::sync::Condvar,
}

impl Gate {
    /// Blocks until decided; `true` means run.
    fn wait(&self) -> bool {
        let mut d = self.decided.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(go) = *d {
                return go;
            }
            d = self.cv.wait(d).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn decide(&self, go: bool) {
        let mut d = self.decided.lock().unwrap_or_else(|e| e.into_inner());
        d.get_or_insert(go);
        self.cv.notify_all();
    }
}

/// Decides the gate: `open` explicitly, or "give up" when dropped first.
struct GateGuard(Arc<Gate>);

impl GateGuard {
    fn open(self, go: bool) {
        self.0.decide(go);
    }
}

impl Drop for GateGuard {
    fn drop(&mut self) {
        self.0.decide(false);
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
