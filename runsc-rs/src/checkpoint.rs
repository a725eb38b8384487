//! `sbx checkpoint`: write a running sandbox to an image directory.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use crate::control::{self, Request};
use crate::state_dir::StateDir;

/// Checkpoint the running sandbox NAME into the image directory DIR (which
/// must not exist). The sandbox stops once the image is written, unless
/// `--leave-running`; if the checkpoint fails it keeps running.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// The sandbox (`sbx run --id NAME`).
    pub name: String,
    /// Image directory to create.
    #[arg(long)]
    pub image: PathBuf,
    /// Keep the sandbox running after the checkpoint.
    #[arg(long)]
    pub leave_running: bool,
    /// Memory and state compression: `none`, `zstd` or `zstd:LEVEL`.
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// Write uncompressed memory with `O_DIRECT`, past the page cache:
    /// faster for large images (the disk works while memory is scanned,
    /// no cache pages are filled) but a restore soon after reads the image
    /// from disk. Without it the image stays cached, which suits restoring
    /// it soon (snapshot pools).
    #[arg(long)]
    pub direct: bool,
    /// Print sizes and per-phase timings as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Log filter (see `sbx run --help`).
    #[arg(long)]
    pub log_level: Option<String>,
}

pub fn checkpoint(args: CheckpointArgs) -> Result<i32> {
    control::parse_compression(&args.compression)?;
    let dir = StateDir::open()?;
    let socket = dir.live_socket(&args.name)?;
    let image = std::path::absolute(&args.image)
        .with_context(|| format!("image path {}", args.image.display()))?;
    let tty = std::io::stderr().is_terminal();
    let result = control::call(
        &socket,
        Request::Checkpoint {
            image: image.clone(),
            leave_running: args.leave_running,
            compression: args.compression.clone(),
            progress: tty,
            direct: args.direct,
        },
        |done, total| crate::restore::show_progress("checkpoint", done, total),
    )
    .with_context(|| {
        format!(
            "checkpoint of {} failed; the sandbox is still running",
            args.name
        )
    });
    if tty {
        eprintln!();
    }
    let result = result?;
    if args.json {
        println!("{result}");
    } else {
        eprintln!(
            "sbx: checkpoint of {} written to {}",
            args.name,
            image.display()
        );
    }
    Ok(0)
}
