//! `sbx`: the command-line front end of the sandbox.
//!
//! One file per subcommand (youki style); the doc comments are the help
//! text. Errors are `anyhow` chains printed once, at the top, by `main`;
//! the guest's exit status becomes `sbx`'s.
//!
//! Logging policy: `--log-level` (or `RUST_LOG`), default `warn`, to
//! stderr. `info` is lifecycle, `warn` an unimplemented syscall (once per
//! sandbox), `trace` strace-style syscall lines.
#![forbid(unsafe_code)]

mod checkpoint;
mod control;
mod kill;
mod list;
mod restore;
mod run;
mod state_dir;

use clap::{Parser, Subcommand};

/// Run Linux programs in a user-space-kernel sandbox.
#[derive(Debug, Parser)]
#[command(name = "sbx", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunArgs),
    Checkpoint(checkpoint::CheckpointArgs),
    Restore(restore::RestoreArgs),
    List(list::ListArgs),
    Kill(kill::KillArgs),
}

/// Exit status when `sbx` itself fails before the guest ran (like
/// `podman run`/`docker run`: 125 for the runtime's own errors; 126 and 127
/// for a guest program that cannot be executed or found).
const EXIT_SBX_ERROR: i32 = 125;

/// Exit status of `sbx run`/`sbx restore` whose sandbox was checkpointed
/// and stopped (`sbx checkpoint` without `--leave-running`).
pub const EXIT_CHECKPOINTED: i32 = 0;

/// Runs an extra subcommand (everything but `run`): logging, errors
/// printed once, 125 on failure.
fn extra(level: Option<&str>, f: impl FnOnce() -> anyhow::Result<i32>) -> i32 {
    init_logging(level);
    match f() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sbx: {e:#}");
            EXIT_SBX_ERROR
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => {
            init_logging(args.log_level.as_deref());
            match run::run(args) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("sbx: {e:#}");
                    run::exit_code_for(&e).unwrap_or(EXIT_SBX_ERROR)
                }
            }
        }
        Command::Checkpoint(a) => {
            extra(a.log_level.clone().as_deref(), || checkpoint::checkpoint(a))
        }
        Command::Restore(a) => extra(a.log_level.clone().as_deref(), || restore::restore(a)),
        Command::List(a) => extra(None, || list::list(a)),
        Command::Kill(a) => extra(None, || kill::kill(a)),
    };
    std::process::exit(code);
}

/// Installs the stderr subscriber: `level` if given, else `RUST_LOG`,
/// else `warn`.
fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
