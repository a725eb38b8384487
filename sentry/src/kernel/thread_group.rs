//! `ThreadGroup`: the resources a process's threads share.
//!
//! The process's place in the tree, its signal dispositions and pending
//! group signals live in the [`super::TaskSet`] (under the task-set lock);
//! this object holds what the process's own threads use on their fast
//! paths: the address space, the fd table, the fs context (cwd, root,
//! umask), the rlimits and a wait queue for child state changes.
//! Compare Linux `struct signal_struct` + `mm_struct` + `files_struct` +
//! `fs_struct`, and gVisor `kernel/thread_group.go`.

use checkpoints::Stateify;
use std::sync::{Arc, Mutex};

use super::limits::Limits;
use super::pid_ns::Pid;
use crate::mm::MemoryManager;
use crate::vfs::{FdTable, FsContext};
use crate::waiter::WaitQueue;

/// A process's shared resources.
#[derive(Debug, Stateify)]
pub struct ThreadGroup {
    /// The pid (= the leader's tid). Immutable.
    pub pid: Pid,
    /// The address space; replaced by execve, taken (`None`) at exit so the
    /// memory is released while the zombie waits to be reaped.
    pub mm: Mutex<Option<Arc<Mutex<MemoryManager>>>>,
    /// The fd table; taken at exit so pipes see their ends close.
    pub fds: Mutex<Option<Arc<FdTable>>>,
    /// cwd, root, umask.
    pub fs: Mutex<FsContext>,
    pub limits: Mutex<Limits>,
    /// The executable's guest path (`/proc/<pid>/exe`) and argv
    /// (`/proc/<pid>/cmdline`, NUL-separated).
    pub exe: Mutex<String>,
    pub cmdline: Mutex<Vec<u8>>,
    /// Notified when a child exits, stops or continues (wait4/waitid sleep
    /// here). Host object: not saved (loaded empty); a task blocked in
    /// wait is rewound to restart its syscall and re-registers.
    #[state(nosave)]
    pub child_events: WaitQueue,
}

impl ThreadGroup {
    pub fn new(
        pid: Pid,
        mm: Arc<Mutex<MemoryManager>>,
        fds: Arc<FdTable>,
        fs: FsContext,
        limits: Limits,
    ) -> Arc<ThreadGroup> {
        Arc::new(ThreadGroup {
            pid,
            mm: Mutex::new(Some(mm)),
            fds: Mutex::new(Some(fds)),
            fs: Mutex::new(fs),
            limits: Mutex::new(limits),
            exe: Mutex::new(String::new()),
            cmdline: Mutex::new(Vec::new()),
            child_events: WaitQueue::new(),
        })
    }

    /// The current address space, if the process has not exited.
    pub fn mm(&self) -> Option<Arc<Mutex<MemoryManager>>> {
        lock(&self.mm).clone()
    }

    /// The fd table, if the process has not exited.
    pub fn fds(&self) -> Option<Arc<FdTable>> {
        lock(&self.fds).clone()
    }
}

/// Locks a mutex, ignoring poisoning: a panicking sentry thread is a bug
/// already reported by the panic; the data it guarded is plain state.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
