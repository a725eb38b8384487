//! `Kernel`: the root of the sandbox's state.
//!
//! Owns the platform handle, the memory file, the VFS, the task set,
//! clocks, uname data and the once-per-sandbox log of unimplemented
//! syscalls. `Kernel::start` launches init (pid 1) on its own host thread;
//! the sandbox ends when init exits (`Kernel::wait`).
//!
//! Lock order: see [`super::task_set`].

use checkpoints::Stateify;
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use tracing::warn;

use super::creds::Credentials;
use super::limits::Limits;
use super::task::{TaskLocal, TaskRunner};
use super::task_set::{ExitStatus, Process, TaskEntry, TaskSet};
use super::thread_group::{lock, ThreadGroup};
use super::time::Clocks;
use super::Task;
use crate::errno::Errno;
use crate::mm::{MemoryFile, MemoryManager};
use crate::platform::{Platform, PlatformError};
use crate::vfs::Vfs;

/// `uname(2)` strings.
#[derive(Clone, Debug, Stateify)]
pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
    pub domainname: String,
}

impl Default for Uname {
    fn default() -> Self {
        Uname {
            sysname: "Linux".into(),
            nodename: "sbx".into(),
            release: "5.15.0".into(),
            version: "#1 SMP sbx".into(),
            machine: "x86_64".into(),
            domainname: "(none)".into(),
        }
    }
}

/// What init runs.
#[derive(Clone, Debug)]
pub struct InitSpec {
    /// Guest path of the program (already resolved against PATH).
    pub filename: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    /// Guest working directory.
    pub cwd: Vec<u8>,
    pub creds: Credentials,
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot execute {path}: {errno}")]
    Exec { path: String, errno: Errno },
    #[error("cannot create init's context")]
    Platform(#[source] PlatformError),
    #[error("cannot spawn init's host thread")]
    Spawn(#[source] std::io::Error),
    #[error("cannot start the interval-timer thread")]
    Timers(#[source] std::io::Error),
    #[error("cannot set the working directory {path}: {errno}")]
    Cwd { path: String, errno: Errno },
}

/// The sandbox kernel. See the module docs.
#[derive(Stateify)]
pub struct Kernel {
    /// The execution platform. Host object: not saved (loaded empty); the
    /// restoring `sbx` installs a fresh one with `set_platform` before any
    /// task runs.
    #[state(nosave)]
    platform: OnceLock<Arc<dyn Platform>>,
    /// Guest memory.
    pub mf: Arc<MemoryFile>,
    /// The mount namespace (overlay root, /dev, /proc).
    pub vfs: Arc<Vfs>,
    /// Processes, threads, signals. See [`TaskSet`].
    tasks: Mutex<TaskSet>,
    pub clocks: Clocks,
    pub uname: Mutex<Uname>,
    /// Warnings already logged, as (kind, syscall number): kind
    /// [`LOG_UNIMPLEMENTED`] or [`LOG_UNSUPPORTED`], so that each kind of
    /// warning appears once per syscall.
    unimplemented: Mutex<BTreeSet<(u8, u64)>>,
    /// Futex wait queues (private, per address space: keyed by pid and
    /// address). Host objects; waiters re-register after restore.
    #[state(nosave)]
    pub futexes: super::futex::Futexes,
    /// Init's exit status once it exited. Host-side completion signal:
    /// not saved (loaded empty).
    #[state(nosave)]
    outcome: Mutex<Option<ExitStatus>>,
    #[state(nosave)]
    outcome_cv: Condvar,
    /// Wakes the interval-timer thread. Host object: not saved (a restored
    /// kernel calls `start_timers` again).
    #[state(nosave)]
    pub timers: super::itimer::TimerWake,
    /// Kernel pause coordination (checkpoint). Host-side: not saved.
    #[state(nosave)]
    pub(crate) pause: super::pause::Pause,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").finish_non_exhaustive()
    }
}

/// Kind of a log-once warning: an unimplemented syscall.
const LOG_UNIMPLEMENTED: u8 = 0;
/// Kind of a log-once warning: a syscall hit an unsupported feature.
const LOG_UNSUPPORTED: u8 = 1;

/// Whether warning `kind` for syscall `nr` is logged for the first time
/// (and records it).
fn first_time(set: &Mutex<BTreeSet<(u8, u64)>>, kind: u8, nr: u64) -> bool {
    lock(set).insert((kind, nr))
}

impl Kernel {
    pub fn new(platform: Arc<dyn Platform>, mf: Arc<MemoryFile>, vfs: Arc<Vfs>) -> Arc<Kernel> {
        let cell = OnceLock::new();
        let _ = cell.set(platform);
        Arc::new(Kernel {
            platform: cell,
            mf,
            vfs,
            tasks: Mutex::new(TaskSet::default()),
            clocks: Clocks::default(),
            uname: Mutex::new(Uname::default()),
            unimplemented: Mutex::new(BTreeSet::new()),
            futexes: Default::default(),
            outcome: Mutex::new(None),
            outcome_cv: Condvar::new(),
            pause: Default::default(),
            timers: Default::default(),
        })
    }

    /// The task set (see the lock order in [`super::task_set`]).
    pub fn tasks(&self) -> MutexGuard<'_, TaskSet> {
        lock(&self.tasks)
    }

    /// The platform.
    ///
    /// # Panics
    /// Never for a kernel made by [`Kernel::new`]; a restored kernel must
    /// get [`Kernel::set_platform`] before anything runs.
    pub fn platform(&self) -> &Arc<dyn Platform> {
        #[allow(clippy::expect_used)]
        self.platform
            .get()
            .expect("platform installed by Kernel::new or set_platform before use")
    }

    /// Installs the platform of a restored kernel. Returns `false` if one
    /// was already set.
    pub fn set_platform(&self, p: Arc<dyn Platform>) -> bool {
        self.platform.set(p).is_ok()
    }

    /// Size of the XSAVE area of this host.
    pub fn fp_state_size(&self) -> usize {
        self.platform().fp_state_size()
    }

    /// Logs an unimplemented syscall, once per sandbox per number.
    pub fn log_unimplemented(&self, nr: u64, name: &str) {
        if first_time(&self.unimplemented, LOG_UNIMPLEMENTED, nr) {
            warn!(nr, name, "unimplemented syscall: returning ENOSYS");
        }
    }

    /// Logs that a syscall hit a feature the sandbox lacks (`why`), once
    /// per sandbox per syscall number (independently of
    /// [`Self::log_unimplemented`]).
    pub fn log_unsupported(&self, nr: u64, name: &str, why: &str) {
        if first_time(&self.unimplemented, LOG_UNSUPPORTED, nr) {
            warn!(nr, name, "unsupported: {why}");
        }
    }

    /// A fresh, empty address space.
    pub fn new_mm(&self) -> MemoryManager {
        MemoryManager::new(self.mf.clone(), self.platform().max_user_address())
    }

    /// Starts init: creates pid 1 on its own host thread, execs `spec`
    /// there, and returns once the exec succeeded (or with why not).
    pub fn start(self: &Arc<Self>, spec: InitSpec) -> Result<(), StartError> {
        let mut fs = self.vfs.new_context();
        let src = super::procfs::KernelProc {
            kernel: self,
            current: 1,
        };
        self.vfs
            .chdir(&mut fs, &spec.cwd, &src)
            .map_err(|errno| StartError::Cwd {
                path: String::from_utf8_lossy(&spec.cwd).into_owned(),
                errno,
            })?;
        let fds = crate::vfs::FdTable::new();
        // The guest's 0, 1, 2 are the sentry's own (passed through). Note
        // that Rust's runtime reopens a closed 0-2 on /dev/null before
        // `main`, so a stdio fd `sbx` was started without is /dev/null in
        // the guest (and never another host file that took its number).
        for n in 0..3 {
            if let Ok(f) = crate::vfs::FileDescription::host_stdio(n) {
                let _ = fds.install(f, false, n);
            }
        }
        let mut ts = self.tasks();
        let pid = ts.ns.alloc().map_err(|errno| StartError::Exec {
            path: String::new(),
            errno,
        })?;
        let tg = ThreadGroup::new(
            pid,
            Arc::new(Mutex::new(self.new_mm())),
            Arc::new(fds),
            fs,
            Limits::default(),
        );
        let now = self.clocks.monotonic();
        let task = Task::new(
            pid,
            tg.clone(),
            TaskLocal {
                creds: spec.creds.clone(),
                comm: Vec::new(),
                altstack: super::signal::AltStack::disabled(),
                start_time: now,
                ..Default::default()
            },
        );
        ts.procs.insert(
            pid,
            Process {
                tg,
                ppid: 0,
                pgid: pid,
                sid: pid,
                children: Default::default(),
                threads: vec![pid],
                exit_signal: super::signal::SIGCHLD,
                group_exit: None,
                zombie: None,
                job: Default::default(),
                actions: Default::default(),
                pending: Default::default(),
                start_time: now,
                did_exec: false,
                itimer_real: None,
            },
        );
        ts.tasks.insert(
            pid,
            TaskEntry {
                task: task.clone(),
                mask: Default::default(),
                saved_mask: None,
                pending: Default::default(),
                vfork_child: None,
                exit_requested: false,
            },
        );
        ts.foreground_pgrp = pid;
        drop(ts);
        self.start_timers().map_err(StartError::Timers)?;

        let (tx, rx) = std::sync::mpsc::channel::<Result<(), StartError>>();
        let kernel = self.clone();
        std::thread::Builder::new()
            .name(format!("task-{pid}"))
            .spawn(move || {
                let ctx = match kernel.platform().new_context() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(StartError::Platform(e)));
                        return;
                    }
                };
                let mut runner = TaskRunner::new(kernel, task, ctx, Default::default());
                // The exec loads into this context rather than a second one.
                runner.ctx_pristine = true;
                match runner.execve(spec.filename.clone(), spec.argv, spec.envp) {
                    Ok(()) => {
                        let _ = tx.send(Ok(()));
                        runner.run();
                    }
                    Err(errno) => {
                        let _ = tx.send(Err(StartError::Exec {
                            path: String::from_utf8_lossy(&spec.filename).into_owned(),
                            errno,
                        }));
                    }
                }
            })
            .map_err(StartError::Spawn)?;
        rx.recv().unwrap_or(Err(StartError::Exec {
            path: String::from_utf8_lossy(&[]).into_owned(),
            errno: Errno::EIO.because("init thread died"),
        }))
    }

    /// Called by init's thread when init exited: records the status and
    /// kills every other task.
    pub(crate) fn init_exited(&self, status: ExitStatus) {
        {
            let mut ts = self.tasks();
            super::task::exit::kill_all(&mut ts);
        }
        *lock(&self.outcome) = Some(status);
        self.outcome_cv.notify_all();
    }

    /// Delivers a signal from outside the sandbox, the way a terminal and
    /// a container runtime would: keyboard and window signals (`SIGINT`,
    /// `SIGQUIT`, `SIGTSTP`, `SIGWINCH`) go to the terminal's foreground
    /// process group (Linux `n_tty` → `kill_pgrp`), everything else to
    /// init. `si_code` is `SI_USER` from pid 0 (outside the namespace).
    /// Returns whether any process received it.
    pub fn signal_from_host(&self, sig: super::signal::Signal) -> bool {
        use super::signal::{queue::SI_USER, SigInfo, SIGINT, SIGQUIT, SIGTSTP, SIGWINCH};
        let info = SigInfo::user(sig, SI_USER, 0, 0);
        let mut ts = self.tasks();
        let targets = if [SIGINT, SIGQUIT, SIGTSTP, SIGWINCH].contains(&sig) {
            let fg = ts.pgrp_members(ts.foreground_pgrp);
            if fg.is_empty() {
                vec![1]
            } else {
                fg
            }
        } else {
            vec![1]
        };
        let mut any = false;
        for p in targets {
            any |= ts.send_to_process(p, info);
        }
        any
    }

    /// Blocks until init exits; returns its status.
    pub fn wait(&self) -> ExitStatus {
        let mut o = lock(&self.outcome);
        loop {
            if let Some(s) = *o {
                return s;
            }
            o = self.outcome_cv.wait(o).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_warning_kind_is_logged_once_per_syscall() {
        let set = Mutex::new(BTreeSet::new());
        assert!(first_time(&set, LOG_UNIMPLEMENTED, 41));
        assert!(first_time(&set, LOG_UNSUPPORTED, 41));
        assert!(!first_time(&set, LOG_UNIMPLEMENTED, 41));
        assert!(!first_time(&set, LOG_UNSUPPORTED, 41));
        assert!(first_time(&set, LOG_UNSUPPORTED, 42));
    }
}
