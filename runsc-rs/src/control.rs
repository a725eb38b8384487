//! The control protocol between `sbx checkpoint`/`kill`/`list` and a
//! running sandbox, and its server.
//!
//! Wire format (version [`PROTOCOL_VERSION`]): each message is a 4-byte
//! big-endian length followed by that many bytes of JSON, at most
//! [`MAX_MESSAGE`]. A request is `{"version": 1, "request": {...}}`; the
//! server answers with zero or more `progress` replies then exactly one
//! `ok` or `error` reply, and closes the connection. A malformed,
//! oversized or wrong-version request gets an `error` reply.
//!
//! Access: the socket lives in the 0700 state directory with mode 0600,
//! and the server refuses a peer whose `SO_PEERCRED` uid is not the
//! sandbox owner's (the uid running it).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use checkpoints::image::{Compression, Progress};
use sentry::kernel::checkpoint::{self, AfterCheckpoint, CheckpointOptions};
use sentry::kernel::signal::SigInfo;
use sentry::kernel::Kernel;
use serde::{Deserialize, Serialize};

use crate::state_dir::Registration;

/// Version of the control protocol.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest message, either direction.
pub const MAX_MESSAGE: u32 = 64 * 1024;
/// How long tasks may take to park for a checkpoint.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The sandbox's id and pid.
    Info,
    /// Send `signal` to the sandbox's init.
    Kill { signal: i32 },
    /// Checkpoint into `image` (a directory that must not exist).
    Checkpoint {
        image: PathBuf,
        leave_running: bool,
        /// `none`, `zstd` or `zstd:LEVEL`.
        compression: String,
        /// Send progress replies.
        progress: bool,
        /// Write raw memory with `O_DIRECT`, past the page cache (absent
        /// in requests of older clients: `false`).
        #[serde(default)]
        direct: bool,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    version: u32,
    request: Request,
}

/// A reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Progress { done: u64, total: u64 },
    Ok { result: serde_json::Value },
    Error { message: String },
}

fn write_msg(w: &mut impl Write, v: &impl Serialize) -> Result<()> {
    let body = serde_json::to_vec(v).context("encoding a control message")?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_MESSAGE)
        .context("control message too large")?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&body)?;
    w.flush()?;
    Ok(())
}

/// Reads one length-prefixed message; bounded by [`MAX_MESSAGE`].
fn read_frame(r: &mut impl Read) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).context("reading a message length")?;
    let len = u32::from_be_bytes(len);
    if len > MAX_MESSAGE {
        bail!("message of {len} bytes exceeds the limit of {MAX_MESSAGE}");
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).context("reading a message body")?;
    Ok(body)
}

/// Parses a `--compression` value.
pub fn parse_compression(s: &str) -> Result<Compression> {
    let c = match s {
        "none" => Compression::None,
        "zstd" => Compression::Zstd(1),
        _ => match s.strip_prefix("zstd:") {
            Some(l) => Compression::Zstd(
                l.parse()
                    .with_context(|| format!("bad zstd level in {s:?}"))?,
            ),
            None => bail!("unknown compression {s:?} (none, zstd or zstd:LEVEL)"),
        },
    };
    c.validate().context("compression")?;
    Ok(c)
}

// ---- client ----

/// Sends `req` to the sandbox at `socket`; `on_progress` sees progress
/// replies. Returns the `ok` result or the server's error.
pub fn call(
    socket: &Path,
    req: Request,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<serde_json::Value> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    write_msg(
        &mut s,
        &Envelope {
            version: PROTOCOL_VERSION,
            request: req,
        },
    )?;
    loop {
        let body = read_frame(&mut s).context("the sandbox closed the connection")?;
        let reply: Reply =
            serde_json::from_slice(&body).context("malformed reply from the sandbox")?;
        match reply {
            Reply::Progress { done, total } => on_progress(done, total),
            Reply::Ok { result } => return Ok(result),
            Reply::Error { message } => bail!("{message}"),
        }
    }
}

// ---- server ----

/// Removes the sandbox's socket and record when dropped (the server
/// thread itself runs until the process exits).
#[derive(Debug)]
pub struct ServerGuard(Arc<Registration>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.cleanup();
    }
}

/// Serves the control socket of `kernel` on a background thread. The
/// registration (socket, record) is removed when the returned guard is
/// dropped, or by the server before the process exits through a
/// checkpoint-and-stop.
pub fn spawn_server(reg: Registration, kernel: Arc<Kernel>) -> Result<ServerGuard> {
    let reg = Arc::new(reg);
    let listener = reg
        .listener
        .try_clone()
        .context("duplicating the control socket")?;
    let r = reg.clone();
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || serve(listener, &r, &kernel))
        .context("spawning the control thread")?;
    Ok(ServerGuard(reg))
}

fn serve(listener: UnixListener, reg: &Registration, kernel: &Arc<Kernel>) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        if let Err(e) = handle(&mut s, reg, kernel) {
            let _ = write_msg(
                &mut s,
                &Reply::Error {
                    message: format!("{e:#}"),
                },
            );
        }
    }
}

fn handle(s: &mut UnixStream, reg: &Registration, kernel: &Arc<Kernel>) -> Result<()> {
    let cred = rustix::net::sockopt::get_socket_peercred(&*s).context("SO_PEERCRED")?;
    // The (bounded) request is read before anything is decided, so that a
    // refused client reads the refusal instead of failing its own write
    // with EPIPE on a connection the server already closed.
    let body = read_frame(s);
    let me = rustix::process::getuid();
    if cred.uid != me {
        bail!(
            "permission denied: uid {} is not the sandbox owner",
            cred.uid.as_raw()
        );
    }
    let body = body?;
    let env: Envelope = serde_json::from_slice(&body).context("malformed request")?;
    if env.version != PROTOCOL_VERSION {
        bail!(
            "control protocol version {} not supported (this sandbox speaks {PROTOCOL_VERSION})",
            env.version
        );
    }
    match env.request {
        Request::Info => write_msg(
            s,
            &Reply::Ok {
                result: serde_json::json!({ "id": reg.id, "pid": std::process::id() }),
            },
        ),
        Request::Kill { signal } => {
            if !(1..=64).contains(&signal) {
                bail!("invalid signal {signal}");
            }
            if kernel.tasks().pid_of(1).is_none() {
                bail!("the sandbox's init is gone");
            }
            // Reply first: a signal that ends the sandbox makes this
            // process exit, possibly before a reply written afterwards
            // reached the caller. An init that exits in between makes the
            // signal a no-op, as Linux kill(2) of an exiting process.
            write_msg(
                s,
                &Reply::Ok {
                    result: serde_json::json!({}),
                },
            )?;
            kernel.tasks().send_to_process(1, SigInfo::kernel(signal));
            Ok(())
        }
        Request::Checkpoint {
            image,
            leave_running,
            compression,
            progress,
            direct,
        } => do_checkpoint(
            s,
            reg,
            kernel,
            CheckpointRequest {
                image,
                leave_running,
                compression: &compression,
                progress,
                direct,
            },
        ),
    }
}

/// The fields of a [`Request::Checkpoint`].
struct CheckpointRequest<'a> {
    image: PathBuf,
    leave_running: bool,
    compression: &'a str,
    progress: bool,
    direct: bool,
}

fn do_checkpoint(
    s: &mut UnixStream,
    reg: &Registration,
    kernel: &Arc<Kernel>,
    req: CheckpointRequest<'_>,
) -> Result<()> {
    let CheckpointRequest {
        image,
        leave_running,
        compression,
        progress,
        direct,
    } = req;
    let compression = parse_compression(compression)?;
    if !image.is_absolute() {
        bail!("the image path must be absolute");
    }
    // Progress replies go through a clone of the socket from worker
    // threads; a closed client only stops the replies.
    let out = std::sync::Mutex::new(s.try_clone().context("cloning the control socket")?);
    let last = std::sync::atomic::AtomicU64::new(0);
    let on_progress = |p: Progress| {
        // At most ~50 updates.
        let step = (p.total / 50).max(1);
        let prev = last.load(std::sync::atomic::Ordering::Relaxed);
        if p.done == p.total || p.done >= prev + step {
            last.store(p.done, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut w) = out.lock() {
                let _ = write_msg(
                    &mut *w,
                    &Reply::Progress {
                        done: p.done,
                        total: p.total,
                    },
                );
            }
        }
        std::ops::ControlFlow::Continue(())
    };
    let opts = CheckpointOptions {
        image: image.clone(),
        sandbox_id: reg.id.clone(),
        compression,
        after: if leave_running {
            AfterCheckpoint::Resume
        } else {
            AfterCheckpoint::Stop
        },
        pause_timeout: PAUSE_TIMEOUT,
        progress: if progress { Some(&on_progress) } else { None },
        direct,
    };
    let (r, paused) = checkpoint::checkpoint(kernel, &opts).map_err(anyhow::Error::new)?;
    let st = &r.stats;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let result = serde_json::json!({
        "id": reg.id,
        "image": image,
        "tasks": r.tasks,
        "left_running": leave_running,
        "direct": direct,
        "state_bytes": st.state_raw_bytes,
        "state_stored_bytes": st.state_stored_bytes,
        "memory_bytes": st.memory_bytes,
        "memory_stored_bytes": st.memory_stored_bytes,
        "zero_pages_skipped": st.zero_pages,
        "chunks": st.chunks,
        "memory_compression_ratio": st.memory_compression_ratio(),
        "time_ms": {
            "pause": ms(r.pause),
            "state_encode": ms(r.state_encode),
            "memory_write": ms(r.memory_write),
            "fsync": ms(r.fsync),
            "total": ms(r.total),
        },
    });
    let sent = out
        .lock()
        .map_err(|_| anyhow::anyhow!("control socket lock poisoned"))
        .and_then(|mut w| write_msg(&mut *w, &Reply::Ok { result }));
    if let Some(_paused) = paused {
        // Checkpointed without --leave-running: the sandbox ends here.
        // Its stubs die with this process (PDEATHSIG / EXITKILL).
        tracing::info!(id = reg.id, "sandbox checkpointed and stopped");
        reg.cleanup();
        std::process::exit(crate::EXIT_CHECKPOINTED);
    }
    sent
}
