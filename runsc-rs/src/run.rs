//! `sbx run`: start a sandbox running one program and wait for it.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use platform_ptrace::PtracePlatform;
use sentry::errno::Errno;
use sentry::kernel::creds::Credentials;
use sentry::kernel::{InitSpec, Kernel, StartError};
use sentry::mm::MemoryFile;
use sentry::vfs::{At, FileType, NoProcesses, Vfs};

/// Run PROG in a new sandbox; exits with PROG's exit status (128+N if it
/// was killed by signal N).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Host directory seen (read-only, through an in-memory writable
    /// overlay) as the sandbox's `/`.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Name of the sandbox (for `list`, `checkpoint`, `kill`).
    #[arg(long)]
    pub id: Option<String>,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a
    /// tracing directive); default: `RUST_LOG`, else `warn`.
    #[arg(long)]
    pub log_level: Option<String>,
    /// The program (a bare name is searched in the guest's `PATH`) and
    /// its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// Default `PATH` when the caller has none (Linux login default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Host signals `sbx run` forwards to the sandbox instead of dying of them
/// (see [`Kernel::signal_from_host`]).
const FORWARDED: [nix::sys::signal::Signal; 7] = {
    use nix::sys::signal::Signal::*;
    [SIGINT, SIGQUIT, SIGTSTP, SIGWINCH, SIGTERM, SIGHUP, SIGUSR1]
};

/// Blocks [`FORWARDED`] in the calling thread, so every thread created
/// after it inherits the mask and only the forwarder receives them (stubs
/// reset their own mask).
pub(crate) fn block_forwarded() -> Result<nix::sys::signal::SigSet> {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block()
        .context("blocking the forwarded signals")?;
    Ok(set)
}

/// Forwards signals sent to `sbx` into the sandbox until the process
/// exits.
pub(crate) fn spawn_forwarder(set: nix::sys::signal::SigSet, kernel: Arc<Kernel>) -> Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(sig) => {
                    tracing::debug!(?sig, "forwarding a host signal into the sandbox");
                    kernel.signal_from_host(sig as i32);
                }
                Err(e) => {
                    tracing::error!("sigwait failed, no more signal forwarding: {e}");
                    return;
                }
            }
        })
        .context("spawning the signal forwarder")?;
    Ok(())
}

pub fn run(args: RunArgs) -> Result<i32> {
    let forwarded = block_forwarded()?;
    let root = args
        .root
        .canonicalize()
        .with_context(|| format!("sandbox root {}", args.root.display()))?;
    let mf = MemoryFile::new().context("creating the memory file")?;
    let memfd = mf
        .fd()
        .try_clone_to_owned()
        .context("duplicating the memory file fd")?;
    let platform = PtracePlatform::new(memfd).context("starting the ptrace platform")?;
    let vfs = Vfs::new(&root).with_context(|| format!("opening the root {}", root.display()))?;
    let kernel = Kernel::new(Arc::new(platform), mf, Arc::new(vfs));

    // The guest's cwd: the caller's when the sandbox root is the host's
    // `/` (so relative paths mean the same inside), else `/`.
    let cwd = if root == std::path::Path::new("/") {
        std::env::current_dir()
            .map(|p| p.into_os_string().into_vec())
            .unwrap_or_else(|_| b"/".to_vec())
    } else {
        b"/".to_vec()
    };
    let envp: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut e = k.into_vec();
            e.push(b'=');
            e.extend(v.into_vec());
            e
        })
        .collect();
    let argv: Vec<Vec<u8>> = args.command.iter().map(|a| a.as_bytes().to_vec()).collect();
    let prog = argv.first().cloned().unwrap_or_default();
    let path_var = std::env::var_os("PATH")
        .map(|p| p.into_vec())
        .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
    let filename = resolve_program(&kernel.vfs, &cwd, &prog, &path_var)?;

    let creds = Credentials::new(
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    tracing::info!(id = args.id.as_deref().unwrap_or(""), prog = %String::from_utf8_lossy(&filename), "starting sandbox");
    // The control socket (issue 4): refuses a duplicate live --id.
    let reg = crate::state_dir::StateDir::open()?.register(
        args.id.as_deref(),
        argv_display(&args.command),
        None,
    )?;
    kernel
        .start(InitSpec {
            filename,
            argv,
            envp,
            cwd,
            creds,
        })
        .map_err(anyhow::Error::new)?;
    let _control = crate::control::spawn_server(reg, kernel.clone())?;
    spawn_forwarder(forwarded, kernel.clone())?;
    let status = kernel.wait();
    tracing::info!(?status, "sandbox finished");
    Ok(status.shell_status())
}

/// Finds `prog` the way `execvp` does, but inside the sandbox: names with
/// a `/` are used as given; bare names are searched in `PATH`.
fn resolve_program(vfs: &Vfs, cwd: &[u8], prog: &[u8], path_var: &[u8]) -> Result<Vec<u8>> {
    if prog.is_empty() {
        bail!("empty program name");
    }
    if prog.contains(&b'/') {
        return Ok(prog.to_vec());
    }
    let mut ctx = vfs.new_context();
    // A cwd missing in the sandbox is reported at start; search from `/`.
    let _ = vfs.chdir(&mut ctx, cwd, &NoProcesses);
    for dir in path_var.split(|c| *c == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut cand = dir.to_vec();
        cand.push(b'/');
        cand.extend_from_slice(prog);
        if let Ok(st) = vfs.stat(&ctx, At::Cwd, &cand, 0, &NoProcesses) {
            if st.file_type() == Some(FileType::Regular) && st.mode & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(anyhow::Error::new(StartError::Exec {
        path: String::from_utf8_lossy(prog).into_owned(),
        errno: Errno::ENOENT.because("not found in PATH"),
    }))
}

/// Shell-style status for errors that are about the guest program.
pub fn exit_code_for(e: &anyhow::Error) -> Option<i32> {
    match e.downcast_ref::<StartError>()? {
        StartError::Exec { errno, .. } if errno.code() == libc::ENOENT => Some(127),
        StartError::Exec { .. } => Some(126),
        _ => None,
    }
}

/// The command line for `sbx list`.
fn argv_display(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
