//! The zygote: stubs are forked from a tiny stub, not from the sentry.
//!
//! Forking the sentry copies its page tables (and makes its private memory
//! copy-on-write until the child has unmapped it), so that way a stub's
//! creation grows with the sentry's heap: about 0.1 ms for a small sentry,
//! 30 ms with 512 MiB of touched heap (see the `syscall_rtt` example). The
//! zygote is a stub created once that way; every further stub is an
//! injected `clone` of it, whose cost does not depend on the sentry. This
//! is what gVisor does (`subprocess_linux.go: createStub`).
//!
//! The zygote is traced by a dedicated host thread (only a tracer may
//! inject system calls). A thread that needs a stub sends it a request; it
//! injects `clone(CLONE_PARENT | SIGCHLD)` into the zygote. The child runs
//! the clone sequence of the stub page: `PR_SET_PDEATHSIG`, a `getppid`
//! check, then `SIGSTOP` (group-stop, untraced). Thanks to `CLONE_PARENT`
//! its parent is the zygote thread itself, so the zygote thread waits for
//! that stop (`WUNTRACED`), and when the requesting thread later reaps the
//! stub as its tracer, the reap is complete (tracer and parent are in one
//! thread group: Linux `kernel/exit.c: wait_task_zombie()`,
//! `ptrace_reparented()`). The requester then `PTRACE_SEIZE`s the child.
//!
//! Lifetime: the zygote thread is the parent of every stub it made, and a
//! stub dies with its parent thread (`PR_SET_PDEATHSIG`). The thread
//! therefore runs as long as anyone holds its [`Zygote`] handle: the
//! platform and every context created through it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use sentry::platform::PlatformError;

use crate::context::PtraceContext;
use crate::inject::Injection;
use crate::process::StubProcess;
use crate::spawn;
use crate::stub::StubPage;

/// A request for one new stub; the reply is its pid, stopped and untraced.
type Reply = mpsc::SyncSender<Result<i32, PlatformError>>;

/// Handle on the zygote thread. Dropping the last handle ends the thread
/// and the zygote.
#[derive(Debug)]
pub(crate) struct Zygote {
    requests: mpsc::Sender<Reply>,
    /// The current zygote stub's pid (diagnostics), kept by its thread.
    pid: Arc<AtomicI32>,
}

impl Zygote {
    /// Starts the zygote thread and its zygote stub.
    pub(crate) fn start(
        page: &'static StubPage,
        memfd: RawFd,
    ) -> Result<Arc<Zygote>, PlatformError> {
        let (requests, rx) = mpsc::channel::<Reply>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let pid = Arc::new(AtomicI32::new(0));
        let pid2 = pid.clone();
        std::thread::Builder::new()
            .name("sbx-stub-zygote".into())
            .spawn(move || serve(page, memfd, rx, ready_tx, &pid2))
            .map_err(PlatformError::CreateStub)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Arc::new(Zygote { requests, pid })),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(PlatformError::CreateStub(io::Error::other(
                "zygote thread ended during start-up",
            ))),
        }
    }

    /// The zygote stub's host pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// A new stub: a child of the zygote thread in group-stop, untraced.
    pub(crate) fn new_stub(&self) -> Result<i32, PlatformError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let gone = || PlatformError::CreateStub(io::Error::other("zygote thread is gone"));
        self.requests.send(reply).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

/// The zygote thread's loop.
fn serve(
    page: &'static StubPage,
    memfd: RawFd,
    requests: mpsc::Receiver<Reply>,
    ready: mpsc::SyncSender<Result<(), PlatformError>>,
    pid: &AtomicI32,
) {
    let mut zygote = match spawn_zygote(page, memfd) {
        Ok(z) => z,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    pid.store(zygote.stub_pid(), Ordering::Relaxed);
    let _ = ready.send(Ok(()));
    drop(ready);
    for reply in requests {
        let mut result = clone_stub(&mut zygote, page);
        if matches!(result, Err(PlatformError::StubDied { .. })) {
            // The zygote itself died (killed from outside): make another.
            tracing::warn!("stub zygote died; recreating it");
            result = spawn_zygote(page, memfd).and_then(|z| {
                zygote = z;
                pid.store(zygote.stub_pid(), Ordering::Relaxed);
                clone_stub(&mut zygote, page)
            });
        }
        let _ = reply.send(result);
    }
    // All handles are gone: `zygote` drops here and is killed.
}

fn spawn_zygote(page: &'static StubPage, memfd: RawFd) -> Result<PtraceContext, PlatformError> {
    let (tid, init) = spawn::fork_and_adopt(page, memfd)?;
    let process = StubProcess::new(tid, init, page, memfd, 0, None, None);
    Ok(PtraceContext::new(tid, Arc::new(process)))
}

/// `CLONE_PARENT` (Linux `include/uapi/linux/sched.h`).
const CLONE_PARENT: u64 = 0x0000_8000;

/// Clones the zygote and waits for the child's self-stop.
fn clone_stub(zygote: &mut PtraceContext, page: &StubPage) -> Result<i32, PlatformError> {
    let (entry, done) = page.clone_addrs();
    let sentry_pid = nix::unistd::getpid().as_raw() as u64;
    let flags = CLONE_PARENT | libc::SIGCHLD as u64;
    let pid = Injection::new(zygote).call(
        "clone",
        entry,
        done,
        libc::SYS_clone,
        [flags, 0, 0, 0, 0, 0],
        sentry_pid,
    )? as i32;
    let status = crate::sys::wait_stopped(pid).map_err(PlatformError::CreateStub)?;
    if !libc::WIFSTOPPED(status) || libc::WSTOPSIG(status) != libc::SIGSTOP {
        return Err(PlatformError::CreateStub(io::Error::other(
            "cloned stub exited before its first stop",
        )));
    }
    Ok(pid)
}
