//! The memory half of a restore: every chunk of the image is checked
//! before any guest code runs; copying the chunks into the new memory file
//! happens before the guest starts (`eager`), or after it, on first access
//! and in the background (`lazy`, the default), or on first access only
//! (`on-demand`). See `crate::mm::lazy` for the access rule that makes the
//! last two safe.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use checkpoints::image::{ChunkScratch, DirImage, ImageError, Progress, ReadOptions};

use super::restore::RestoreError;
use crate::mm::lazy::{ChunkLoad, ChunkLoadError, LazyMemory, RunWriter};
use crate::mm::MemoryFile;

/// When the memory of a restored sandbox is copied into its memory file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MemoryLoad {
    /// All of it before the first guest instruction.
    Eager,
    /// A chunk on the first access to one of its pages, the rest by a
    /// background thread while the guest runs.
    #[default]
    Lazy,
    /// A chunk on the first access to one of its pages only: memory the
    /// guest never touches is never copied (the image stays open).
    OnDemand,
}

impl MemoryLoad {
    /// The name used on the command line and in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            MemoryLoad::Eager => "eager",
            MemoryLoad::Lazy => "lazy",
            MemoryLoad::OnDemand => "on-demand",
        }
    }
}

impl std::str::FromStr for MemoryLoad {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "eager" => Ok(MemoryLoad::Eager),
            "lazy" => Ok(MemoryLoad::Lazy),
            "on-demand" => Ok(MemoryLoad::OnDemand),
            _ => Err(format!(
                "unknown memory load mode {s:?} (eager, lazy or on-demand)"
            )),
        }
    }
}

/// Progress of one phase of the memory half, by name; may cancel.
pub type PhaseProgressFn<'a> =
    dyn Fn(&'static str, Progress) -> std::ops::ControlFlow<()> + Sync + 'a;

/// Phase name: every chunk's checksum is checked (bytes are stored bytes).
pub const PHASE_CHECK: &str = "checking";
/// Phase name: memory is copied in before the guest starts (`eager`).
pub const PHASE_LOAD: &str = "loading";

/// Figures of the memory half.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryFigures {
    /// Checking every chunk's checksum.
    pub verify: Duration,
    /// Copying before the guest starts (`eager` only).
    pub load: Duration,
    /// Bytes of memory in the image's chunks (zero pages not counted).
    pub bytes: u64,
}

/// The image's chunks, loaded one at a time with per-thread scratch.
struct ImageChunks {
    img: DirImage,
    /// Idle scratch buffers (at most one per thread that ever loaded at
    /// once); freed with the loader when the restore completes.
    scratch: Mutex<Vec<ChunkScratch>>,
}

impl ChunkLoad for ImageChunks {
    fn load(&self, index: usize, write: RunWriter<'_>) -> Result<(), ChunkLoadError> {
        let idle = self.scratch.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut scratch = match idle {
            Some(s) => s,
            None => ChunkScratch::new()?,
        };
        let result = self.img.load_chunk(index, &mut scratch, &write);
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(scratch);
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.img.path().display()).into()),
        }
    }
}

/// Checks every chunk of `img` and installs its table into `mf`; with
/// `Eager`, also copies everything in. Afterwards, with `Lazy`, call
/// [`spawn_background`] once the guest runs.
pub fn prepare(
    img: DirImage,
    mf: &MemoryFile,
    mode: MemoryLoad,
    progress: Option<&PhaseProgressFn<'_>>,
) -> Result<MemoryFigures, RestoreError> {
    let path: PathBuf = img.path().to_owned();
    let image_err = |source: ImageError| RestoreError::Image {
        path: path.clone(),
        source,
    };
    let t = Instant::now();
    let check =
        |p: Progress| progress.map_or(std::ops::ControlFlow::Continue(()), |f| f(PHASE_CHECK, p));
    img.verify_memory(&ReadOptions {
        threads: 0,
        progress: progress.is_some().then_some(&check),
    })
    .map_err(image_err)?;
    let mut figures = MemoryFigures {
        verify: t.elapsed(),
        bytes: img.manifest().chunks.iter().map(|c| c.raw_len).sum(),
        ..Default::default()
    };
    let table: Vec<Vec<(u64, u64)>> = img
        .manifest()
        .chunks
        .iter()
        .map(|c| c.runs.iter().map(|r| (r.offset, r.len())).collect())
        .collect();
    let source = Arc::new(ImageChunks {
        img,
        scratch: Mutex::new(Vec::new()),
    });
    let total = figures.bytes;
    let lazy =
        Arc::new(LazyMemory::new(table, mf.size(), source).map_err(RestoreError::MemoryTable)?);
    if !mf.set_lazy(lazy.clone()) {
        return Err(RestoreError::LazyTwice);
    }
    if mode == MemoryLoad::Eager {
        let t = Instant::now();
        let load = |done: u64| {
            if let Some(f) = progress {
                // Cancelling is not offered once copying started.
                let _ = f(PHASE_LOAD, Progress { done, total });
            }
        };
        load_all_parallel(mf, &lazy, &load)?;
        figures.load = t.elapsed();
    }
    Ok(figures)
}

/// Copies every chunk in with one thread per core, reporting the bytes
/// copied so far after each chunk.
fn load_all_parallel(
    mf: &MemoryFile,
    lazy: &LazyMemory,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), RestoreError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let work = || {
        while mf.load_next_chunk() {
            progress(lazy.stats().bytes_loaded);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            // A helper the host refuses leaves its share to this thread.
            let _ = std::thread::Builder::new().spawn_scoped(s, work);
        }
        work();
    });
    debug_assert!(lazy.is_complete());
    // Reports the first failed chunk (each failure was logged with its
    // cause when it happened).
    mf.load_all().map_err(RestoreError::MemoryLost)
}

/// Starts the thread that copies the chunks the guest has not touched
/// yet. It holds the memory file only while loading one chunk, so it ends
/// early when the sandbox is gone. If the thread cannot start, pages still
/// load on first access.
pub fn spawn_background(mf: &Arc<MemoryFile>) {
    let weak: Weak<MemoryFile> = Arc::downgrade(mf);
    let spawned = std::thread::Builder::new()
        .name("lazy-restore".into())
        .spawn(move || {
            let t = Instant::now();
            while let Some(mf) = weak.upgrade() {
                if !mf.load_next_chunk() {
                    if let Some(l) = mf.lazy() {
                        tracing::info!(
                            elapsed_ms = t.elapsed().as_millis() as u64,
                            stats = ?l.stats(),
                            "lazy restore: all memory loaded"
                        );
                    }
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the background memory loader: {e}; pages load on access");
    }
}
