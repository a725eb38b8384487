//! `sbx restore`: run a sandbox again from an image directory, in the
//! foreground (the caller's stdio becomes the sandbox's; the exit status is
//! the guest init's, as with `run`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use platform_ptrace::PtracePlatform;
use sentry::kernel::restore;

use crate::state_dir::StateDir;

/// Restore the sandbox saved in DIR and run it until its init exits. The
/// image is checked completely (manifest, schema, CPU features, every
/// checksum) before any guest code runs. The same image can be restored
/// any number of times, also concurrently.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The image directory (`sbx checkpoint --image`).
    #[arg(long)]
    pub image: PathBuf,
    /// Name of the restored sandbox (default: generated).
    #[arg(long)]
    pub id: Option<String>,
    /// Print sizes and per-phase timings as one JSON line on stderr once
    /// the sandbox runs.
    #[arg(long)]
    pub json: bool,
    /// When guest memory is copied in from the image: `lazy` (default:
    /// the guest starts once every chunk's checksum is checked; a chunk is
    /// copied on first access and the rest in the background), `eager`
    /// (all of it before the guest starts) or `on-demand` (on first access
    /// only; the image stays open while the sandbox runs).
    #[arg(long, default_value = "lazy", value_parser = parse_memory_load)]
    pub memory: restore::MemoryLoad,
    /// Log filter (see `sbx run --help`).
    #[arg(long)]
    pub log_level: Option<String>,
}

fn parse_memory_load(s: &str) -> Result<restore::MemoryLoad, String> {
    s.parse()
}

/// Draws `what: NN% (done/total MiB)` on stderr (a terminal).
pub fn show_progress(what: &str, done: u64, total: u64) {
    let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let mut e = std::io::stderr().lock();
    let _ = write!(
        e,
        "\r{what}: {pct:3}% ({} / {} MiB)",
        done >> 20,
        total >> 20
    );
    let _ = e.flush();
}

pub fn restore(args: RestoreArgs) -> Result<i32> {
    let t0 = Instant::now();
    // Before any thread exists (loading spawns some), like `sbx run`.
    let forwarded = crate::run::block_forwarded()?;
    let dir = StateDir::open()?;
    let tty = std::io::stderr().is_terminal();
    // One line per phase (checking, then loading with --memory eager).
    let shown = std::sync::Mutex::new("");
    let progress = |phase: &'static str, p: checkpoints::image::Progress| {
        let mut last = shown.lock().unwrap_or_else(|e| e.into_inner());
        if !last.is_empty() && *last != phase {
            eprintln!();
        }
        *last = phase;
        show_progress(&format!("restore: {phase}"), p.done, p.total);
        std::ops::ControlFlow::Continue(())
    };
    let opts = restore::LoadOptions {
        memory: args.memory,
        progress: if tty { Some(&progress) } else { None },
    };
    let loaded = restore::load(&args.image, &opts)
        .with_context(|| format!("cannot restore {}", args.image.display()));
    if tty {
        eprintln!();
    }
    let loaded = loaded?;
    let reg = dir.register(
        args.id.as_deref(),
        format!("(restored from {})", args.image.display()),
        Some(args.image.display().to_string()),
    )?;
    let memfd = loaded
        .kernel
        .mf
        .fd()
        .try_clone_to_owned()
        .context("duplicating the memory file fd")?;
    let platform = PtracePlatform::new(memfd).context("starting the ptrace platform")?;
    let (kernel, report) = loaded
        .start(Arc::new(platform))
        .with_context(|| format!("cannot restore {}", args.image.display()))?;
    let _server = crate::control::spawn_server(reg, kernel.clone())?;
    crate::run::spawn_forwarder(forwarded, kernel.clone())?;
    if args.json {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let j = serde_json::json!({
            "image": args.image,
            "image_sandbox_id": report.sandbox_id,
            "tasks": report.tasks,
            "state_bytes": report.state_bytes,
            "memory_bytes": report.memory_bytes,
            "memory_stored_bytes": report.memory_stored_bytes,
            "memory_mode": report.memory_mode.name(),
            "time_ms": {
                "validate": ms(report.validate),
                "state_decode": ms(report.state_decode),
                "memory_verify": ms(report.memory_verify),
                "memory_load": ms(report.memory_load),
                "first_instruction": ms(report.first_instruction),
                "total": ms(t0.elapsed()),
            },
        });
        eprintln!("{j}");
    }
    let status = kernel.wait();
    tracing::info!(?status, "restored sandbox finished");
    Ok(status.shell_status())
}
