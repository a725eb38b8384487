//! The task set: every process and thread of the sandbox, the process
//! tree, sessions and process groups, and all signal state.
//!
//! One lock (`Kernel::tasks`, a `Mutex<TaskSet>`) protects all of it, like
//! gVisor's `TaskSet.mu` (which there also covers the process tree) merged
//! with the per-group `signalMutex`: on two cores and with syscalls that
//! cost tens of microseconds in the platform, one uncontended mutex is
//! simpler and cheap. The tree is kept by pid rather than by pointers so
//! parent/child links need no `Weak` and checkpoint trivially.
//!
//! Lock order: `Kernel::tasks` → `ThreadGroup::*` → `Task::local` →
//! memory manager → vfs locks. A task's own host thread may take
//! `Task::local` without `tasks`.

use checkpoints::Stateify;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::pid_ns::{Pid, PidNamespace};
use super::signal::{SigActions, SigInfo, SigQueue, SigSet, Signal};
use super::task::Task;
use super::thread_group::ThreadGroup;

/// How a process ended, as `wait` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum ExitStatus {
    /// `_exit(code)`.
    Exited(i32),
    /// Killed by a signal; `core` if its default action dumps core.
    Signaled { sig: Signal, core: bool },
}

impl ExitStatus {
    /// The `wait` status word (`WIFEXITED`: code << 8; signaled: sig |
    /// 0x80 if core).
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => (c & 0xff) << 8,
            ExitStatus::Signaled { sig, core } => sig | if core { 0x80 } else { 0 },
        }
    }

    /// The exit status of `sbx` for this guest status: the code, or 128+N
    /// for signal N (the shell convention).
    pub fn shell_status(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c & 0xff,
            ExitStatus::Signaled { sig, .. } => 128 + sig,
        }
    }

    /// `si_code` and `si_status` of the SIGCHLD / `waitid` report.
    pub fn child_code(self) -> (i32, i32) {
        use super::signal::queue::{CLD_DUMPED, CLD_EXITED, CLD_KILLED};
        match self {
            ExitStatus::Exited(c) => (CLD_EXITED, c & 0xff),
            ExitStatus::Signaled { sig, core: true } => (CLD_DUMPED, sig),
            ExitStatus::Signaled { sig, core: false } => (CLD_KILLED, sig),
        }
    }
}

/// Job-control state of a process, for `wait` with `WUNTRACED` /
/// `WCONTINUED`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Stateify)]
pub enum JobState {
    #[default]
    Running,
    /// Stopped by `sig`; `reported` once a `wait` consumed it.
    Stopped { sig: Signal, reported: bool },
    /// Continued and not yet reported to a `WCONTINUED` waiter.
    Continued,
}

/// One process (thread group) in the tree.
#[derive(Debug, Stateify)]
pub struct Process {
    pub tg: Arc<ThreadGroup>,
    /// 0 for init (its parent is outside the sandbox).
    pub ppid: Pid,
    pub pgid: Pid,
    pub sid: Pid,
    /// Children, living or zombie.
    pub children: BTreeSet<Pid>,
    /// Tids of the live threads; the leader's tid is the pid.
    pub threads: Vec<Pid>,
    /// Signal sent to the parent at exit (low byte of clone flags).
    pub exit_signal: Signal,
    /// Set once the whole group is exiting (`exit_group`, fatal signal);
    /// its threads exit at their next check.
    pub group_exit: Option<ExitStatus>,
    /// `Some` once every thread exited and the process awaits reaping.
    pub zombie: Option<ExitStatus>,
    pub job: JobState,
    /// Shared dispositions (Linux `sighand_struct`).
    pub actions: SigActions,
    /// Signals sent to the process as a whole.
    pub pending: SigQueue,
    /// Sandbox monotonic time at creation (CPU-time approximation).
    pub start_time: i64,
    /// Whether it has exec'd since fork (for `setpgid` EACCES).
    pub did_exec: bool,
    /// The armed `ITIMER_REAL` (also `alarm`), if any. Not inherited by
    /// fork children; kept across execve.
    pub itimer_real: Option<super::itimer::ITimer>,
}

/// Per-thread signal state.
#[derive(Debug, Stateify)]
pub struct TaskEntry {
    pub task: Arc<Task>,
    pub mask: SigSet,
    /// Mask to restore after the next handler frame (sigsuspend, ppoll,
    /// pselect6: Linux `saved_sigmask`).
    pub saved_mask: Option<SigSet>,
    pub pending: SigQueue,
    /// Tid of a vfork child this task waits for (Linux `vfork_done`).
    pub vfork_child: Option<Pid>,
    /// This thread alone must exit (another thread of its process called
    /// execve: Linux `de_thread` kills the others).
    pub exit_requested: bool,
}

/// See the module docs.
#[derive(Debug, Default, Stateify)]
pub struct TaskSet {
    pub ns: PidNamespace,
    pub procs: BTreeMap<Pid, Process>,
    pub tasks: BTreeMap<Pid, TaskEntry>,
    /// The sandbox terminal's foreground process group
    /// (`TIOCGPGRP`/`TIOCSPGRP` on the passed-through tty).
    pub foreground_pgrp: Pid,
    /// Set once init exited: no new tasks, everything is being torn down.
    pub shutting_down: bool,
    /// A kernel pause (checkpoint) is in progress: every blocking wait
    /// returns to park its task (see `kernel::pause`). Host-side
    /// coordination: not saved (a restored kernel starts unpaused).
    #[state(nosave)]
    pub pausing: bool,
}

impl TaskSet {
    /// The process a thread belongs to.
    pub fn pid_of(&self, tid: Pid) -> Option<Pid> {
        self.tasks.get(&tid).map(|e| e.task.tg.pid)
    }

    /// Whether a blocking wait of `tid` must return: a kernel pause, or
    /// [`TaskSet::signal_pending`].
    pub fn interrupted(&self, tid: Pid) -> bool {
        self.pausing || self.signal_pending(tid)
    }

    /// Whether `tid` has an unblocked signal pending, or must stop/exit
    /// (Linux `signal_pending`): what interrupts a wait, a kernel pause
    /// aside. Waits that Linux ends with EINTR rather than a restart
    /// (`ep_poll`, `do_sigtimedwait`) tell the two apart with it.
    pub fn signal_pending(&self, tid: Pid) -> bool {
        let Some(e) = self.tasks.get(&tid) else {
            return true;
        };
        let Some(p) = self.procs.get(&e.task.tg.pid) else {
            return true;
        };
        if p.group_exit.is_some() || e.exit_requested || matches!(p.job, JobState::Stopped { .. }) {
            return true;
        }
        let pending = e.pending.set().0 | p.pending.set().0;
        pending & !e.mask.0 != 0
    }

    /// Whether `tid`, a thread of `pid`, is being killed: its process is
    /// gone or exiting as a group, or SIGKILL is pending for the thread or
    /// the process (Linux `fatal_signal_pending`). What ends the waits
    /// that nothing else interrupts (a group stop, a vfork parent's).
    pub fn fatal_pending(&self, pid: Pid, tid: Pid) -> bool {
        use super::signal::SIGKILL;
        self.procs
            .get(&pid)
            .is_none_or(|p| p.group_exit.is_some() || p.pending.set().has(SIGKILL))
            || self
                .tasks
                .get(&tid)
                .is_some_and(|e| e.pending.set().has(SIGKILL))
    }

    /// Queues a signal on one thread and wakes it. Applies Linux
    /// `prepare_signal`/`sig_ignored`: ignored unblocked signals are
    /// dropped; SIGCONT/stop signals cancel each other.
    pub fn send_to_task(&mut self, tid: Pid, info: SigInfo) -> bool {
        let Some(pid) = self.pid_of(tid) else {
            return false;
        };
        if !self.prepare(pid, tid, &info) {
            return false;
        }
        if let Some(e) = self.tasks.get_mut(&tid) {
            e.pending.enqueue(info);
            let t = e.task.clone();
            t.kick();
        }
        true
    }

    /// Queues a signal on a process and wakes a thread that can take it.
    pub fn send_to_process(&mut self, pid: Pid, info: SigInfo) -> bool {
        let Some(p) = self.procs.get(&pid) else {
            return false;
        };
        if p.zombie.is_some() {
            return true;
        }
        let leader = p.threads.first().copied().unwrap_or(pid);
        if !self.prepare(pid, leader, &info) {
            return false;
        }
        let Some(p) = self.procs.get_mut(&pid) else {
            return false;
        };
        p.pending.enqueue(info);
        let threads = p.threads.clone();
        // Wake a thread that does not block it, else all (Linux
        // complete_signal picks one; a wake-up too many is harmless).
        let target = threads
            .iter()
            .find(|t| self.tasks.get(t).is_some_and(|e| !e.mask.has(info.signo)));
        match target {
            Some(t) => {
                if let Some(e) = self.tasks.get(t) {
                    e.task.kick();
                }
            }
            None => {
                for t in &threads {
                    if let Some(e) = self.tasks.get(t) {
                        e.task.kick();
                    }
                }
            }
        }
        true
    }

    /// Linux `prepare_signal`: job-control side effects at send time and
    /// whether the signal is worth queueing at all.
    fn prepare(&mut self, pid: Pid, tid: Pid, info: &SigInfo) -> bool {
        use super::signal::{SIGCONT, SIGKILL, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU};
        let sig = info.signo;
        let Some(p) = self.procs.get_mut(&pid) else {
            return false;
        };
        if p.group_exit.is_some() || p.zombie.is_some() {
            return sig == SIGKILL;
        }
        let stops = [SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU];
        if stops.contains(&sig) {
            p.pending.discard(SIGCONT);
            for t in p.threads.clone() {
                if let Some(e) = self.tasks.get_mut(&t) {
                    e.pending.discard(SIGCONT);
                }
            }
        }
        let Some(p) = self.procs.get_mut(&pid) else {
            return false;
        };
        if sig == SIGCONT || sig == SIGKILL {
            for s in stops {
                p.pending.discard(s);
            }
            let was_stopped = matches!(p.job, JobState::Stopped { .. });
            if was_stopped {
                p.job = JobState::Continued;
                let ppid = p.ppid;
                let threads = p.threads.clone();
                for t in threads {
                    if let Some(e) = self.tasks.get_mut(&t) {
                        for s in stops {
                            e.pending.discard(s);
                        }
                        e.task.kick();
                    }
                }
                if sig == SIGCONT {
                    self.notify_parent_job(pid, ppid, super::signal::queue::CLD_CONTINUED, SIGCONT);
                }
            }
        }
        let Some(p) = self.procs.get(&pid) else {
            return false;
        };
        let blocked = self.tasks.get(&tid).is_some_and(|e| e.mask.has(sig));
        !p.actions.get(sig).ignores(sig) || blocked || sig == SIGKILL
    }

    /// Tells the parent about a stop/continue of `pid` (SIGCHLD unless
    /// SA_NOCLDSTOP, and a wake-up of its waiters).
    pub fn notify_parent_job(&mut self, pid: Pid, ppid: Pid, code: i32, status: i32) {
        use super::signal::action::SA_NOCLDSTOP;
        use super::signal::SIGCHLD;
        let Some(parent) = self.procs.get(&ppid) else {
            return;
        };
        parent.tg.child_events.notify(crate::waiter::EVENT_ALL);
        let act = parent.actions.get(SIGCHLD);
        if act.flags & SA_NOCLDSTOP == 0 {
            self.send_to_process(ppid, SigInfo::child(pid, 0, code, status));
        }
    }

    /// Ids of the processes in process group `pgid`.
    pub fn pgrp_members(&self, pgid: Pid) -> Vec<Pid> {
        self.procs
            .iter()
            .filter(|(_, p)| p.pgid == pgid && p.zombie.is_none())
            .map(|(pid, _)| *pid)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::signal::SIGUSR1;
    use crate::kernel::task::TaskLocal;

    /// A task set with one process (pid 1) whose task shares its thread
    /// group, a pending signal and a child zombie.
    fn sample(dir: &std::path::Path) -> TaskSet {
        let vfs = crate::vfs::Vfs::new(dir).expect("vfs over a temp dir");
        let mf = crate::mm::MemoryFile::with_capacity(1 << 24).expect("memory file");
        let tg = ThreadGroup::new(
            1,
            Arc::new(std::sync::Mutex::new(crate::mm::MemoryManager::new(
                mf,
                1 << 40,
            ))),
            Arc::new(crate::vfs::FdTable::new()),
            vfs.new_context(),
            Default::default(),
        );
        let task = Task::new(1, tg.clone(), TaskLocal::default());
        let mut ts = TaskSet::default();
        ts.ns.alloc().expect("pid 1");
        let mut pending = SigQueue::default();
        pending.enqueue(SigInfo::kernel(SIGUSR1));
        ts.procs.insert(
            1,
            Process {
                tg,
                ppid: 0,
                pgid: 1,
                sid: 1,
                children: [2].into_iter().collect(),
                threads: vec![1],
                exit_signal: 17,
                group_exit: None,
                zombie: None,
                job: JobState::Running,
                actions: Default::default(),
                pending,
                start_time: 5,
                did_exec: true,
                itimer_real: None,
            },
        );
        ts.tasks.insert(
            1,
            TaskEntry {
                task,
                mask: SigSet(0x200),
                saved_mask: None,
                pending: Default::default(),
                vfork_child: None,
                exit_requested: false,
            },
        );
        ts
    }

    #[test]
    fn task_set_round_trips_and_keeps_thread_groups_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ts = sample(dir.path());
        let saved = checkpoints::state::save(&ts).expect("save");
        let back: TaskSet = checkpoints::state::load(&saved.bytes).expect("load");
        let p = &back.procs[&1];
        let e = &back.tasks[&1];
        assert!(
            Arc::ptr_eq(&p.tg, &e.task.tg),
            "thread group shared by process and task"
        );
        assert_eq!(p.pending.set(), SigSet::of(SIGUSR1));
        assert_eq!(e.mask, SigSet(0x200));
        assert_eq!(p.children.iter().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(back.ns.last, 1);
    }

    #[test]
    fn wait_status_words_match_linux_macros() {
        assert_eq!(ExitStatus::Exited(3).wait_status(), 0x300);
        assert_eq!(
            ExitStatus::Signaled {
                sig: 11,
                core: true
            }
            .wait_status(),
            0x8b
        );
        assert_eq!(
            ExitStatus::Signaled {
                sig: 9,
                core: false
            }
            .shell_status(),
            137
        );
    }
}
