//! What the threads of one stub process share.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::placement::Placement;
use crate::stub::StubPage;
use crate::zygote::Zygote;

/// One stub process (one application address space) and what every
/// context of it needs.
#[derive(Debug)]
pub(crate) struct StubProcess {
    /// The stub's thread-group id (its first thread's tid).
    pub(crate) tgid: i32,
    /// The register template: the host's segment selectors and flags (see
    /// `spawn::template`).
    pub(crate) init: libc::user_regs_struct,
    pub(crate) page: &'static StubPage,
    /// The memory file's fd number, the same in the stub.
    pub(crate) memfd: RawFd,
    /// Size of the XSAVE area (`NT_X86_XSTATE` regset); 0 for the zygote,
    /// which never runs application code.
    pub(crate) fp_size: usize,
    /// `None` for the zygote itself.
    pub(crate) placement: Option<Arc<Placement>>,
    /// Keeps the zygote thread, this stub's parent, alive as long as the
    /// stub (see `zygote.rs`); `None` for stubs forked directly.
    pub(crate) _zygote: Option<Arc<Zygote>>,
    /// Threads of the process that are still the application's: attached
    /// contexts plus seeds not yet attached. The context that brings it to
    /// zero kills the process; the others park their thread. A leaf lock.
    threads: Mutex<usize>,
}

impl StubProcess {
    pub(crate) fn new(
        tgid: i32,
        init: libc::user_regs_struct,
        page: &'static StubPage,
        memfd: RawFd,
        fp_size: usize,
        placement: Option<Arc<Placement>>,
        zygote: Option<Arc<Zygote>>,
    ) -> StubProcess {
        StubProcess {
            tgid,
            init,
            page,
            memfd,
            fp_size,
            placement,
            _zygote: zygote,
            threads: Mutex::new(1),
        }
    }

    fn threads(&self) -> MutexGuard<'_, usize> {
        // The count is always consistent; a panic elsewhere cannot break it.
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new thread joined the process.
    pub(crate) fn add_thread(&self) {
        *self.threads() += 1;
    }

    /// A thread left the application; returns whether it was the last.
    pub(crate) fn remove_thread(&self) -> bool {
        let mut n = self.threads();
        *n = n.saturating_sub(1);
        *n == 0
    }
}
