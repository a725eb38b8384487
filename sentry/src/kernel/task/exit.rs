//! Exit, zombies, reparenting and reaping (Linux `kernel/exit.c`:
//! `do_exit`, `do_group_exit`, `exit_notify`, `forget_original_parent`,
//! `do_wait`).

use tracing::{debug, info};

use super::super::pid_ns::Pid;
use super::super::signal::action::{SA_NOCLDWAIT, SIG_IGN};
use super::super::signal::{SigInfo, SIGCHLD, SIGKILL};
use super::super::task_set::{ExitStatus, JobState, TaskSet};
use super::super::thread_group::lock;
use std::sync::Arc;

use super::super::kernel::Kernel;
use super::run::TaskRunner;
use super::Task;
use crate::errno::{Errno, SysResult};
use crate::waiter::{Registration, EVENT_ALL};

pub const WNOHANG: u32 = 1;
pub const WUNTRACED: u32 = 2;
pub const WSTOPPED: u32 = 2;
pub const WEXITED: u32 = 4;
pub const WCONTINUED: u32 = 8;
pub const WNOWAIT: u32 = 0x0100_0000;
pub const WNOTHREAD: u32 = 0x2000_0000;
pub const WALL: u32 = 0x4000_0000;
pub const WCLONE: u32 = 0x8000_0000;

/// Which children a wait selects (`wait4` pid argument / `waitid` idtype).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitTarget {
    Any,
    Pid(Pid),
    Pgid(Pid),
}

/// What a successful wait found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitResult {
    pub pid: Pid,
    /// `si_code` (CLD_*) and `si_status`.
    pub code: i32,
    pub status: i32,
    /// The `wait4` status word.
    pub wstatus: i32,
}

impl TaskRunner {
    /// Ends this thread (and, with `group`, its whole process).
    pub(super) fn exit(&mut self, status: ExitStatus, group: bool) {
        // clear_child_tid: zero the word (and wake futex waiters, Linux
        // mm_release); errors are ignored like Linux.
        let ctid = self.task.local().clear_child_tid;
        if ctid != 0 {
            let _ = self.copy_out(ctid, &0u32.to_le_bytes());
            crate::syscalls::futex_wake_addr(self, ctid, 1);
        }
        self.task.set_interrupter(None);
        exit_task(&self.kernel, &self.task, status, group);
    }

    /// Releases a parent sleeping in vfork for this task (exec or exit;
    /// Linux `mm_release` → `complete_vfork_done`).
    pub(super) fn release_vfork_parent_locked(&self, ts: &mut TaskSet) {
        release_vfork_parent(ts, self.tid());
    }

    /// `wait4`/`waitid` (Linux `do_wait`): sleeps until a selected child
    /// changes state unless `WNOHANG`. `Ok(None)` = WNOHANG and nothing.
    pub fn wait_child(
        &mut self,
        target: WaitTarget,
        options: u32,
    ) -> SysResult<Option<WaitResult>> {
        let tg = self.task.tg.clone();
        let waiter = self.task.waiter.clone();
        let _reg = Registration::new(&tg.child_events, &waiter, EVENT_ALL);
        loop {
            {
                let mut ts = self.kernel.tasks();
                if let Some(r) = try_wait(&mut ts, self.pid(), target, options)? {
                    return Ok(Some(r));
                }
                if options & WNOHANG != 0 {
                    return Ok(None);
                }
                if ts.interrupted(self.tid()) {
                    return Err(Errno::ERESTARTSYS);
                }
            }
            waiter.wait(None);
        }
    }
}

/// One pass over the children of `pid`.
fn try_wait(
    ts: &mut TaskSet,
    pid: Pid,
    target: WaitTarget,
    options: u32,
) -> SysResult<Option<WaitResult>> {
    let Some(me) = ts.procs.get(&pid) else {
        return Err(Errno::ECHILD);
    };
    let children: Vec<Pid> = me.children.iter().copied().collect();
    let mut any = false;
    for c in children {
        let Some(cp) = ts.procs.get_mut(&c) else {
            continue;
        };
        let selected = match target {
            WaitTarget::Any => true,
            WaitTarget::Pid(p) => p == c,
            WaitTarget::Pgid(g) => cp.pgid == g,
        };
        // __WCLONE selects "clone" children (exit signal not SIGCHLD);
        // __WALL selects both.
        let clone_child = cp.exit_signal != SIGCHLD;
        let kind_ok = options & WALL != 0 || (options & WCLONE != 0) == clone_child;
        if !selected || !kind_ok {
            continue;
        }
        any = true;
        if let Some(st) = cp.zombie {
            if options & WEXITED == 0 {
                continue;
            }
            let (code, status) = st.child_code();
            let r = WaitResult {
                pid: c,
                code,
                status,
                wstatus: st.wait_status(),
            };
            if options & WNOWAIT == 0 {
                reap(ts, pid, c);
            }
            return Ok(Some(r));
        }
        if options & WUNTRACED != 0 {
            if let JobState::Stopped {
                sig,
                reported: false,
            } = cp.job
            {
                if options & WNOWAIT == 0 {
                    cp.job = JobState::Stopped {
                        sig,
                        reported: true,
                    };
                }
                return Ok(Some(WaitResult {
                    pid: c,
                    code: super::super::signal::queue::CLD_STOPPED,
                    status: sig,
                    wstatus: (sig << 8) | 0x7f,
                }));
            }
        }
        if options & WCONTINUED != 0 && cp.job == JobState::Continued {
            if options & WNOWAIT == 0 {
                cp.job = JobState::Running;
            }
            return Ok(Some(WaitResult {
                pid: c,
                code: super::super::signal::queue::CLD_CONTINUED,
                status: super::super::signal::SIGCONT,
                wstatus: 0xffff,
            }));
        }
    }
    if any {
        Ok(None)
    } else {
        Err(Errno::ECHILD)
    }
}

/// Removes zombie `child` of `parent` from the tree and frees its pid.
fn reap(ts: &mut TaskSet, parent: Pid, child: Pid) {
    if let Some(p) = ts.procs.get_mut(&parent) {
        p.children.remove(&child);
    }
    ts.procs.remove(&child);
    ts.ns.free(child);
}

/// Linux `exit_notify`: reparent children to init, become a zombie, tell
/// the parent (or auto-reap when it ignores SIGCHLD / has SA_NOCLDWAIT).
fn exit_notify(ts: &mut TaskSet, pid: Pid, status: ExitStatus) {
    let Some(p) = ts.procs.get_mut(&pid) else {
        return;
    };
    p.zombie = Some(status);
    p.job = JobState::Running;
    let children: Vec<Pid> = std::mem::take(&mut p.children).into_iter().collect();
    let ppid = p.ppid;
    let exit_signal = p.exit_signal;
    // Orphans go to init (pid 1); when init itself exits everything dies.
    let mut zombie_orphans = false;
    if pid != 1 {
        for c in &children {
            if let Some(cp) = ts.procs.get_mut(c) {
                cp.ppid = 1;
                zombie_orphans |= cp.zombie.is_some();
            }
        }
        if let Some(init) = ts.procs.get_mut(&1) {
            init.children.extend(children.iter().copied());
            if zombie_orphans {
                init.tg.child_events.notify(EVENT_ALL);
            }
        }
    } else {
        for c in &children {
            if let Some(cp) = ts.procs.get_mut(c) {
                cp.ppid = 0;
            }
        }
    }
    let Some(parent) = ts.procs.get(&ppid) else {
        return;
    };
    let act = parent.actions.get(SIGCHLD);
    let autoreap =
        exit_signal == SIGCHLD && (act.handler == SIG_IGN || act.flags & SA_NOCLDWAIT != 0);
    parent.tg.child_events.notify(EVENT_ALL);
    if autoreap {
        reap(ts, ppid, pid);
        return;
    }
    if exit_signal > 0 {
        let (code, st) = status.child_code();
        ts.send_to_process(ppid, SigInfo::child(pid, 0, code, st));
    }
}

/// Kills every task of the sandbox (init exited).
pub fn kill_all(ts: &mut TaskSet) {
    ts.shutting_down = true;
    let pids: Vec<Pid> = ts.procs.keys().copied().collect();
    for p in pids {
        if let Some(pr) = ts.procs.get_mut(&p) {
            if pr.zombie.is_none() && pr.group_exit.is_none() {
                pr.group_exit = Some(ExitStatus::Signaled {
                    sig: SIGKILL,
                    core: false,
                });
            }
            for t in pr.threads.clone() {
                if let Some(e) = ts.tasks.get(&t) {
                    e.task.kick();
                }
            }
        }
    }
}

/// Releases a parent sleeping in vfork for `child`.
fn release_vfork_parent(ts: &mut TaskSet, child: Pid) {
    for e in ts.tasks.values_mut() {
        if e.vfork_child == Some(child) {
            e.vfork_child = None;
            e.task.kick();
        }
    }
}

/// The kernel side of a thread's exit (Linux `do_exit` after
/// `exit_mm`): leaves the task set; the last thread of a process makes it
/// a zombie, releases its memory and files, and notifies the parent; init's
/// exit ends the sandbox. Needs no platform context, so it also cleans up
/// after a task thread that died unexpectedly.
pub fn exit_task(kernel: &Kernel, task: &Arc<Task>, status: ExitStatus, group: bool) {
    let tid = task.tid;
    let pid = task.tg.pid;
    let mut ts = kernel.tasks();
    if group {
        if let Some(p) = ts.procs.get_mut(&pid) {
            if p.group_exit.is_none() {
                p.group_exit = Some(status);
            }
            for t in p.threads.clone() {
                if t != tid {
                    if let Some(e) = ts.tasks.get(&t) {
                        e.task.kick();
                    }
                }
            }
        }
    }
    if ts.tasks.remove(&tid).is_none() {
        return;
    }
    if tid != pid {
        ts.ns.free(tid);
    }
    let Some(p) = ts.procs.get_mut(&pid) else {
        return;
    };
    p.threads.retain(|t| *t != tid);
    if !p.threads.is_empty() {
        // A sibling may wait for the thread count to drop (execve's
        // de_thread).
        for t in p.threads.clone() {
            if let Some(e) = ts.tasks.get(&t) {
                e.task.waiter.wake();
            }
        }
        return;
    }
    let final_status = p.group_exit.unwrap_or(status);
    // Release the address space and the files now: pipe ends close,
    // memory is freed, before anyone reaps the zombie.
    let tg = p.tg.clone();
    let mm = lock(&tg.mm).take();
    let fds = lock(&tg.fds).take();
    release_vfork_parent(&mut ts, tid);
    exit_notify(&mut ts, pid, final_status);
    let init_gone = pid == 1;
    drop(ts);
    drop(mm);
    // Linux `locks_remove_posix` at exit: the process's record locks go
    // (the table may still be shared, so only the locks are touched).
    if let Some(table) = &fds {
        for fd in table.fds() {
            if let Ok(f) = table.get(fd) {
                f.release_posix_locks(pid);
            }
        }
    }
    drop(fds);
    debug!(pid, ?final_status, "process exited");
    if init_gone {
        info!(?final_status, "init exited; shutting the sandbox down");
        kernel.init_exited(final_status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::task_set::Process;
    use crate::kernel::thread_group::ThreadGroup;
    use std::sync::Mutex;

    /// A task set with parent 1 and the given children `(pid, pgid,
    /// zombie status)`; processes only (no tasks needed by `try_wait`).
    fn tree(dir: &std::path::Path, kids: &[(Pid, Pid, Option<ExitStatus>)]) -> TaskSet {
        let vfs = crate::vfs::Vfs::new(dir).expect("vfs");
        let mf = crate::mm::MemoryFile::with_capacity(1 << 24).expect("memory file");
        let mut ts = TaskSet::default();
        let add = |ts: &mut TaskSet, pid: Pid, ppid: Pid, pgid: Pid, zombie: Option<ExitStatus>| {
            ts.ns.used.insert(pid);
            let tg = ThreadGroup::new(
                pid,
                Arc::new(Mutex::new(crate::mm::MemoryManager::new(
                    mf.clone(),
                    1 << 40,
                ))),
                Arc::new(crate::vfs::FdTable::new()),
                vfs.new_context(),
                Default::default(),
            );
            ts.procs.insert(
                pid,
                Process {
                    tg,
                    ppid,
                    pgid,
                    sid: 1,
                    children: Default::default(),
                    threads: if zombie.is_some() { vec![] } else { vec![pid] },
                    exit_signal: SIGCHLD,
                    group_exit: None,
                    zombie,
                    job: JobState::Running,
                    actions: Default::default(),
                    pending: Default::default(),
                    start_time: 0,
                    did_exec: false,
                    itimer_real: None,
                },
            );
        };
        add(&mut ts, 1, 0, 1, None);
        for (pid, pgid, z) in kids {
            add(&mut ts, *pid, 1, *pgid, *z);
            ts.procs.get_mut(&1).expect("init").children.insert(*pid);
        }
        ts
    }

    #[test]
    fn running_child_with_wnohang_is_none_and_zombie_is_reaped_once() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut ts = tree(
            d.path(),
            &[(2, 1, None), (3, 1, Some(ExitStatus::Exited(4)))],
        );
        let r = try_wait(&mut ts, 1, WaitTarget::Any, WEXITED | WNOHANG).expect("wait");
        let r = r.expect("the zombie is found");
        assert_eq!((r.pid, r.wstatus), (3, 4 << 8));
        assert!(!ts.procs.contains_key(&3), "reaped");
        assert!(!ts.ns.used.contains(&3), "pid freed");
        assert_eq!(
            try_wait(&mut ts, 1, WaitTarget::Any, WEXITED | WNOHANG).map_err(|e| e.code()),
            Ok(None)
        );
    }

    #[test]
    fn wnowait_leaves_the_zombie_and_no_children_is_echild() {
        let d = tempfile::tempdir().expect("tempdir");
        let killed = ExitStatus::Signaled {
            sig: 9,
            core: false,
        };
        let mut ts = tree(d.path(), &[(5, 1, Some(killed))]);
        let r = try_wait(&mut ts, 1, WaitTarget::Pid(5), WEXITED | WNOWAIT).expect("wait");
        assert_eq!(
            r.map(|r| (r.pid, r.code, r.status)),
            Some((5, crate::kernel::signal::queue::CLD_KILLED, 9))
        );
        assert!(ts.procs.contains_key(&5), "WNOWAIT keeps the zombie");
        assert_eq!(
            try_wait(&mut ts, 1, WaitTarget::Pid(6), WEXITED).map_err(|e| e.code()),
            Err(libc::ECHILD)
        );
    }

    #[test]
    fn process_group_target_selects_only_its_members() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut ts = tree(
            d.path(),
            &[
                (7, 7, Some(ExitStatus::Exited(1))),
                (8, 1, Some(ExitStatus::Exited(2))),
            ],
        );
        let r = try_wait(&mut ts, 1, WaitTarget::Pgid(1), WEXITED).expect("wait");
        assert_eq!(r.map(|r| r.pid), Some(8));
        assert!(ts.procs.contains_key(&7));
    }

    #[test]
    fn orphans_go_to_init_and_the_parent_is_told() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut ts = tree(d.path(), &[(2, 1, None)]);
        // 2 gets a child 9, then exits: 9 must be reparented to 1.
        ts.procs.insert(9, {
            let mut p = tree(d.path(), &[]).procs.remove(&1).expect("template");
            p.ppid = 2;
            p.pgid = 1;
            p
        });
        ts.procs.get_mut(&2).expect("2").children.insert(9);
        // A SIGCHLD handler, so the default "ignore" does not drop it.
        ts.procs.get_mut(&1).expect("init").actions.set(
            SIGCHLD,
            crate::kernel::signal::SigAction {
                handler: 0x1000,
                ..Default::default()
            },
        );
        exit_notify(&mut ts, 2, ExitStatus::Exited(0));
        assert_eq!(ts.procs[&9].ppid, 1);
        assert!(ts.procs[&1].children.contains(&9));
        assert_eq!(ts.procs[&2].zombie, Some(ExitStatus::Exited(0)));
        assert!(
            ts.procs[&1].pending.set().has(SIGCHLD),
            "SIGCHLD queued for the parent"
        );
    }
}
