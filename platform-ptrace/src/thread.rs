//! Application threads: more stub threads in one stub process.
//!
//! `Context::new_thread` runs on the host thread of the task that calls
//! `clone(CLONE_VM | CLONE_THREAD)`: it injects a `clone` of the same kind
//! into its own stub thread. The new stub thread idles, untraced, in the
//! stub page's parking loop (`pause()`). The seed travels to the new
//! task's host thread, which `PTRACE_SEIZE`s the thread and stops it with
//! `PTRACE_INTERRUPT`: from then on it is that host thread's tracee, like
//! any context's stub.
//!
//! When one context of a multi-threaded stub goes away, its thread is
//! parked again and detached (killing it would kill the whole process: a
//! `SIGKILL` is group-wide); the last context kills the process. See
//! `StubProcess::threads`.

use std::sync::Arc;

use nix::unistd::Pid;
use sentry::platform::{Context, PlatformError, ThreadSeed};

use crate::context::PtraceContext;
use crate::inject::Injection;
use crate::placement::Placement;
use crate::process::StubProcess;

/// `clone` flags of an application thread: one address space, fd table,
/// fs info, signal handlers and SysV semaphore undo list (what glibc's
/// `pthread_create` passes, minus the tid/TLS bookkeeping, which is the
/// sentry's business).
const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM) as u64;

/// A new stub thread, parked and untraced, not yet owned by a host thread.
#[derive(Debug)]
pub(crate) struct PtraceThreadSeed {
    tid: i32,
    process: Arc<StubProcess>,
    /// Whether a context took the thread over (then the context accounts
    /// for it in `process`).
    attached: bool,
}

/// Clones the stub thread of `ctx` (the platform half of a guest thread
/// creation).
pub(crate) fn clone_thread(ctx: &mut PtraceContext) -> Result<PtraceThreadSeed, PlatformError> {
    let (entry, done) = ctx.process.page.thread_addrs();
    let args = [THREAD_FLAGS, 0, 0, 0, 0, 0];
    let tid = Injection::new(ctx).call("clone", entry, done, libc::SYS_clone, args, 0)? as i32;
    ctx.process.add_thread();
    Ok(PtraceThreadSeed {
        tid,
        process: ctx.process.clone(),
        attached: false,
    })
}

impl ThreadSeed for PtraceThreadSeed {
    fn attach(mut self: Box<Self>) -> Result<Box<dyn Context>, PlatformError> {
        let cpus = match &self.process.placement {
            Some(placement) => placement
                .pin_calling_thread()
                .map_err(PlatformError::CreateStub)?,
            None => None,
        };
        Placement::place_stub(self.tid, &cpus);
        crate::spawn::seize_thread(self.tid)?;
        self.attached = true;
        Ok(Box::new(PtraceContext::new(self.tid, self.process.clone())))
    }
}

impl Drop for PtraceThreadSeed {
    fn drop(&mut self) {
        if self.attached {
            return;
        }
        // Never attached: the thread stays parked. If it was the last one
        // the application had, the process goes.
        if self.process.remove_thread() {
            let tgid = self.process.tgid;
            let _ = nix::sys::signal::kill(Pid::from_raw(tgid), nix::sys::signal::SIGKILL);
            let _ = crate::sys::wait_raw(tgid);
        }
    }
}
