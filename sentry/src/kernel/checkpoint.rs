//! Checkpoint: pause the kernel, save its object graph and the used ranges
//! of the memory file as an image directory, then resume or stop.
//!
//! The saved root is [`Snapshot`]: the kernel plus the sandbox monotonic
//! time at the checkpoint, from which restore recomputes the clock offset
//! so `CLOCK_MONOTONIC` never goes backwards (DESIGN.md point 4).
//!
//! Phases (timed in [`CheckpointReport`]): pause, state encode, memory
//! write (scan, compress, write), commit (fsync + rename, by
//! `checkpoints::image::write_dir`). The memory window handed to the
//! writer is page-aligned (the memory file's mapping), so with
//! [`CheckpointOptions::direct`] raw chunks are written with `O_DIRECT`
//! straight from the guest's pages by parallel writers
//! (`WriteOptions::direct`): the disk works while the next spans are
//! scanned, no page-cache page is filled, and the final fsync only
//! flushes. Without it (`sbx checkpoint`'s default) they go through the
//! page cache in order, so a restore soon after reads a cached image. Compressed chunks go through the page cache, with
//! writeback started every 16 MiB (`WriteOptions::writeback_step`).
//! A failure in any phase resumes the kernel and leaves no image behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use checkpoints::image::{
    self, Compression, CpuFeatures, ImageInput, ImageMeta, PageRange, ProgressFn, SchemaInfo,
    WriteOptions, WriteStats,
};
use checkpoints::state::{self, SaveError};
use checkpoints::Stateify;

use super::kernel::Kernel;
use super::pause::PauseError;

/// The root of a saved sandbox.
#[derive(Stateify)]
#[state(name = "sbx::Snapshot")]
pub struct Snapshot {
    /// Sandbox `CLOCK_MONOTONIC` (ns) at the checkpoint.
    pub monotonic_ns: i64,
    /// The kernel.
    pub kernel: Arc<Kernel>,
}

/// What to do with the sandbox once its image is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterCheckpoint {
    /// Resume it (`--leave-running`).
    Resume,
    /// Leave it paused; the caller ends the sandbox.
    Stop,
}

/// How to checkpoint.
pub struct CheckpointOptions<'a> {
    /// Image directory to create (must not exist).
    pub image: PathBuf,
    /// The sandbox's name, recorded in the manifest.
    pub sandbox_id: String,
    pub compression: Compression,
    pub after: AfterCheckpoint,
    /// How long tasks may take to park.
    pub pause_timeout: Duration,
    /// Progress of the memory section.
    pub progress: Option<&'a ProgressFn<'a>>,
    /// Raw chunks with `O_DIRECT` by parallel writers
    /// (`WriteOptions::direct`); otherwise through the page cache, so the
    /// image is cached for a restore soon after.
    pub direct: bool,
}

/// Figures of a checkpoint.
#[derive(Clone, Debug, Default)]
pub struct CheckpointReport {
    pub pause: Duration,
    pub state_encode: Duration,
    /// Memory section: scan, compression, writes.
    pub memory_write: Duration,
    /// fsync of files and directories and the rename.
    pub fsync: Duration,
    pub total: Duration,
    pub tasks: usize,
    pub stats: WriteStats,
}

/// Why a checkpoint failed (the sandbox was resumed).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot pause the sandbox")]
    Pause(#[source] PauseError),
    #[error("cannot encode the kernel state")]
    Encode(#[source] SaveError),
    #[error("cannot read the host CPU features")]
    Cpu(#[source] image::CpuProbeError),
    #[error("the memory file cannot be mapped for reading ({len} bytes)")]
    Memory { len: u64 },
    #[error("cannot write the image {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: image::WriteError,
    },
}

/// The kernel state of a paused kernel, encoded.
pub fn encode_state(kernel: &Arc<Kernel>) -> Result<state::SavedState, SaveError> {
    let snap = Snapshot {
        monotonic_ns: kernel.clocks.monotonic(),
        kernel: kernel.clone(),
    };
    state::save(&snap)
}

/// Checkpoints `kernel` into `opts.image`. With [`AfterCheckpoint::Stop`]
/// and success, the kernel stays paused (the returned guard) and the caller
/// ends the sandbox; otherwise it runs again when this returns.
pub fn checkpoint(
    kernel: &Arc<Kernel>,
    opts: &CheckpointOptions<'_>,
) -> Result<(CheckpointReport, Option<super::pause::PausedKernel>), CheckpointError> {
    let t0 = Instant::now();
    let cpu = CpuFeatures::host().map_err(CheckpointError::Cpu)?;
    let paused = kernel
        .pause(opts.pause_timeout)
        .map_err(CheckpointError::Pause)?;
    let mut report = CheckpointReport {
        pause: paused.took,
        tasks: kernel.tasks().tasks.len(),
        ..Default::default()
    };

    let t = Instant::now();
    let saved = encode_state(kernel).map_err(CheckpointError::Encode)?;
    report.state_encode = t.elapsed();

    let meta = ImageMeta::now(
        opts.sandbox_id.clone(),
        SchemaInfo::new(saved.root_fingerprint, &schema_pairs(&saved.types)),
        cpu,
    );
    let mf = &kernel.mf;
    let len = mf.size();
    let memory = mf.slice(0, len).ok_or(CheckpointError::Memory { len })?;
    let used: Vec<PageRange> = mf
        .used_ranges()
        .into_iter()
        .map(|(offset, len)| PageRange { offset, len })
        .collect();
    let input = ImageInput {
        meta: &meta,
        state: &saved.bytes,
        memory,
        used_ranges: &used,
    };
    let wopts = WriteOptions {
        compression: opts.compression,
        progress: opts.progress,
        direct: opts.direct,
        ..WriteOptions::default()
    };
    let stats = write(&opts.image, &input, &wopts)?;
    report.memory_write = stats.memory_time;
    report.fsync = stats.commit_time;
    report.stats = stats;
    report.total = t0.elapsed();
    tracing::info!(image = %opts.image.display(), took = ?report.total, "checkpoint written");
    match opts.after {
        AfterCheckpoint::Resume => {
            paused.resume();
            Ok((report, None))
        }
        AfterCheckpoint::Stop => Ok((report, Some(paused))),
    }
}

fn write(
    path: &Path,
    input: &ImageInput<'_>,
    opts: &WriteOptions<'_>,
) -> Result<WriteStats, CheckpointError> {
    image::write_dir(path, input, opts).map_err(|source| CheckpointError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The `(name, fingerprint)` table the image manifest records.
pub fn schema_pairs(types: &[state::TypeFingerprint]) -> Vec<(String, u64)> {
    types
        .iter()
        .map(|t| (t.name.clone(), t.fingerprint))
        .collect()
}
