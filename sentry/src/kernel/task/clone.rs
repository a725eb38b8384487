//! fork, vfork and clone (Linux `kernel/fork.c: kernel_clone`,
//! `copy_process`).
//!
//! Every new process gets a new address space: the parent's memory
//! manager forks copy-on-write, and the child's host thread creates a
//! fresh platform context (a new stub) that faults pages in. A new thread
//! (`CLONE_THREAD`) joins its creator's thread group and address space: the
//! platform makes a sibling stub thread (`Context::new_thread`) that the
//! new task's host thread attaches to. `vfork` (`CLONE_VM | CLONE_VFORK`,
//! also glibc's `posix_spawn`) shares the parent's address space for real:
//! the child runs as a sibling stub thread on the parent's memory manager
//! until it execs (new context, new memory manager) or exits, while the
//! parent sleeps. `CLONE_VFORK` without `CLONE_VM` is a fork whose parent
//! waits. The parent's wait is not inside the syscall: `clone` returns the
//! child's pid and the parent waits at its next signal check, a clean
//! boundary where a checkpoint pause parks it (gVisor's `vforkStop`); the
//! relation (`TaskEntry::vfork_child`) is saved kernel state, so a
//! restored parent waits again until the child execs or exits. `CLONE_VM`
//! alone (a process sharing memory without being a thread or a vfork
//! child) is EINVAL.

use std::sync::{Arc, Mutex};

use tracing::debug;

use super::super::pid_ns::Pid;
use super::super::task_set::{Process, TaskEntry};
use super::super::thread_group::{lock, ThreadGroup};
use super::run::TaskRunner;
use super::{Task, TaskLocal};
use crate::errno::{Errno, SysResult};

pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_PTRACE: u64 = 0x2000;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_NEWNS: u64 = 0x20000;
pub const CLONE_SYSVSEM: u64 = 0x40000;
pub const CLONE_SETTLS: u64 = 0x80000;
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
pub const CLONE_DETACHED: u64 = 0x400000;
pub const CLONE_UNTRACED: u64 = 0x800000;
pub const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
/// All `CLONE_NEW*` namespace flags.
const CLONE_NEW_ANY: u64 = 0x7e02_0080;

impl TaskRunner {
    /// `clone(flags, stack, ptid, ctid, tls)`.
    pub fn do_clone(
        &mut self,
        flags: u64,
        stack: u64,
        ptid: u64,
        ctid: u64,
        tls: u64,
    ) -> SysResult<u64> {
        let vfork = flags & CLONE_VFORK != 0;
        // Linux copy_process: CLONE_THREAD needs CLONE_SIGHAND, which
        // needs CLONE_VM.
        if flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0 {
            return Err(Errno::EINVAL.because("CLONE_THREAD requires CLONE_SIGHAND"));
        }
        if flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0 {
            return Err(Errno::EINVAL.because("CLONE_SIGHAND requires CLONE_VM"));
        }
        if flags & CLONE_THREAD != 0 {
            return self.clone_thread(flags, stack, ptid, ctid, tls);
        }
        if flags & CLONE_VM != 0 && !vfork {
            return Err(Errno::EINVAL.because(
                "CLONE_VM without CLONE_THREAD or CLONE_VFORK (a separate process sharing memory) is not supported",
            ));
        }
        if flags & CLONE_NEW_ANY != 0 {
            return Err(Errno::EINVAL.because("namespaces are not supported"));
        }
        if flags & CLONE_PIDFD != 0 {
            return Err(Errno::EINVAL.because("CLONE_PIDFD not supported"));
        }
        let exit_signal = (flags & 0xff) as i32;
        if exit_signal != 0 && !super::super::signal::valid(exit_signal) {
            return Err(Errno::EINVAL);
        }

        let parent_mm = self.task.tg.mm().ok_or(Errno::EFAULT)?;
        // vfork with CLONE_VM: the child borrows the parent's address space
        // (and runs as a sibling thread of the parent's stub) until it execs
        // or exits, exactly like Linux; the parent sleeps meanwhile.
        let share_vm = flags & CLONE_VM != 0;
        let (child_mm, seed) = if share_vm {
            let seed = self
                .ctx
                .new_thread()
                .map_err(|_| Errno::EAGAIN.because("platform cannot create a vfork thread"))?;
            (parent_mm.clone(), Some(seed))
        } else {
            let mm = lock(&parent_mm).fork(&mut *self.ctx)?;
            (Arc::new(Mutex::new(mm)), None)
        };
        let parent_fds = self.task.tg.fds().ok_or(Errno::EBADF)?;
        let fds = if flags & CLONE_FILES != 0 {
            parent_fds
        } else {
            Arc::new(parent_fds.fork())
        };
        let fs = lock(&self.task.tg.fs).clone();
        let limits = lock(&self.task.tg.limits).clone();

        let local = self.child_local(flags, stack, tls, ctid);
        let regs = local.regs;

        let me = self.pid();
        let (pid, task) = {
            let mut ts = self.kernel.tasks();
            if ts.shutting_down {
                return Err(Errno::EAGAIN.because("sandbox shutting down"));
            }
            let pid = ts.ns.alloc()?;
            let tg = ThreadGroup::new(pid, child_mm, fds, fs, limits);
            *lock(&tg.exe) = lock(&self.task.tg.exe).clone();
            *lock(&tg.cmdline) = lock(&self.task.tg.cmdline).clone();
            let task = Task::new(pid, tg.clone(), local);
            let parent = ts.procs.get(&me).ok_or(Errno::ESRCH)?;
            let ppid = if flags & CLONE_PARENT != 0 {
                parent.ppid
            } else {
                me
            };
            let proc_ = Process {
                tg,
                ppid,
                pgid: parent.pgid,
                sid: parent.sid,
                children: Default::default(),
                threads: vec![pid],
                exit_signal,
                group_exit: None,
                zombie: None,
                job: Default::default(),
                actions: parent.actions.clone(),
                pending: Default::default(),
                start_time: self.kernel.clocks.monotonic(),
                did_exec: false,
                itimer_real: None,
            };
            let mask = ts
                .tasks
                .get(&self.tid())
                .map(|e| e.mask)
                .unwrap_or_default();
            ts.procs.insert(pid, proc_);
            if let Some(pp) = ts.procs.get_mut(&ppid) {
                pp.children.insert(pid);
            }
            ts.tasks.insert(
                pid,
                TaskEntry {
                    task: task.clone(),
                    mask,
                    saved_mask: None,
                    pending: Default::default(),
                    vfork_child: None,
                    exit_requested: false,
                },
            );
            if vfork {
                if let Some(e) = ts.tasks.get_mut(&self.tid()) {
                    e.vfork_child = Some(pid);
                }
            }
            (pid, task)
        };

        if flags & CLONE_PARENT_SETTID != 0 {
            // Linux writes it before the child runs; a bad pointer is
            // ignored there too (put_user result unchecked in
            // copy_process).
            let _ = self.write_u32(ptid, pid as u32);
        }

        if let Err(e) = self.spawn_child(task, regs, seed) {
            self.abort_child(pid);
            return Err(e);
        }
        debug!(parent = me, child = pid, flags, "clone");
        if vfork {
            // The run loop waits before the parent returns to its code.
            self.vfork_pending = true;
        }
        Ok(pid as u64)
    }

    /// The new task's registers and thread-local state (Linux
    /// `copy_process`/`copy_thread`): a copy of this task's with the
    /// syscall returning 0 in the child, the new stack and TLS, the
    /// `CLONE_CHILD_*` tid addresses, no restart block, robust list or
    /// parent-death signal, and no alternate signal stack when it shares
    /// the address space outside a vfork.
    fn child_local(&self, flags: u64, stack: u64, tls: u64, ctid: u64) -> TaskLocal {
        let mut regs = self.regs;
        regs.rax = 0;
        if stack != 0 {
            regs.rsp = stack;
        }
        if flags & CLONE_SETTLS != 0 {
            regs.fs_base = tls;
        }
        let mut local: TaskLocal = self.task.local().clone();
        local.clear_child_tid = if flags & CLONE_CHILD_CLEARTID != 0 {
            ctid
        } else {
            0
        };
        local.set_child_tid = if flags & CLONE_CHILD_SETTID != 0 {
            ctid
        } else {
            0
        };
        local.restart = None;
        local.robust_list = (0, 0);
        local.pdeathsig = 0;
        if flags & (CLONE_VM | CLONE_VFORK) == CLONE_VM {
            local.altstack = super::super::signal::AltStack::disabled();
        }
        local.start_time = self.kernel.clocks.monotonic();
        local.regs = regs;
        local
    }

    /// `clone(CLONE_VM | CLONE_THREAD | ...)`: a new thread in this process
    /// (Linux `copy_process` with `CLONE_THREAD`). It shares the thread
    /// group: address space, fd table, fs context, dispositions, rlimits.
    /// Threads with private fd tables or fs contexts (`CLONE_THREAD`
    /// without `CLONE_FILES`/`CLONE_FS`) are not supported (EINVAL).
    fn clone_thread(
        &mut self,
        flags: u64,
        stack: u64,
        ptid: u64,
        ctid: u64,
        tls: u64,
    ) -> SysResult<u64> {
        if flags & (CLONE_FILES | CLONE_FS) != CLONE_FILES | CLONE_FS {
            return Err(
                Errno::EINVAL.because("threads must share files and fs (CLONE_FILES|CLONE_FS)")
            );
        }
        if flags & CLONE_VFORK != 0 {
            return Err(Errno::EINVAL.because("CLONE_VFORK with CLONE_THREAD is not supported"));
        }
        let local = self.child_local(flags, stack, tls, ctid);
        let regs = local.regs;

        // The platform thread first: nothing to undo in the task set if
        // the platform cannot make one.
        let seed = self
            .ctx
            .new_thread()
            .map_err(|_| Errno::EAGAIN.because("platform cannot create a thread"))?;
        let pid = self.pid();
        let (tid, task) = {
            let mut ts = self.kernel.tasks();
            if ts.shutting_down {
                return Err(Errno::EAGAIN.because("sandbox shutting down"));
            }
            if ts.procs.get(&pid).is_none_or(|p| p.group_exit.is_some()) {
                return Err(Errno::EAGAIN.because("process is exiting"));
            }
            let tid = ts.ns.alloc()?;
            let task = Task::new(tid, self.task.tg.clone(), local);
            let mask = ts
                .tasks
                .get(&self.tid())
                .map(|e| e.mask)
                .unwrap_or_default();
            ts.tasks.insert(
                tid,
                TaskEntry {
                    task: task.clone(),
                    mask,
                    saved_mask: None,
                    pending: Default::default(),
                    vfork_child: None,
                    exit_requested: false,
                },
            );
            if let Some(p) = ts.procs.get_mut(&pid) {
                p.threads.push(tid);
            }
            (tid, task)
        };
        if flags & CLONE_PARENT_SETTID != 0 {
            let _ = self.write_u32(ptid, tid as u32);
        }
        // The host thread (named `task-{tid}`) attaches the seed's context.
        if self.spawn_child(task, regs, Some(seed)).is_err() {
            let mut ts = self.kernel.tasks();
            ts.tasks.remove(&tid);
            if let Some(p) = ts.procs.get_mut(&pid) {
                p.threads.retain(|t| *t != tid);
            }
            ts.ns.free(tid);
            return Err(Errno::EAGAIN.because("cannot start the thread"));
        }
        debug!(pid, tid, "new thread");
        Ok(tid as u64)
    }

    /// Starts the child's host thread, which creates its platform context;
    /// fails (EAGAIN) if that does not work.
    fn spawn_child(
        &self,
        task: Arc<Task>,
        regs: crate::platform::Registers,
        seed: Option<Box<dyn crate::platform::ThreadSeed>>,
    ) -> SysResult<()> {
        let kernel = self.kernel.clone();
        let (tx, rx) = std::sync::mpsc::channel::<bool>();
        let name = format!("task-{}", task.tid);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let ctx = match seed {
                    Some(s) => s.attach(),
                    None => kernel.platform().new_context(),
                };
                let ctx = match ctx {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("cannot create a context for a new task: {e}");
                        let _ = tx.send(false);
                        return;
                    }
                };
                let _ = tx.send(true);
                let mut runner = TaskRunner::new(kernel, task, ctx, regs);
                let set_tid = runner.task.local().set_child_tid;
                if set_tid != 0 {
                    let tid = runner.tid() as u32;
                    let _ = runner.write_u32(set_tid, tid);
                }
                runner.run();
            })
            .map_err(|_| Errno::EAGAIN.because("cannot spawn a host thread"))?;
        match rx.recv() {
            Ok(true) => Ok(()),
            _ => Err(Errno::EAGAIN.because("cannot create the child's context")),
        }
    }

    /// Undoes the bookkeeping of a child that never ran.
    fn abort_child(&self, pid: Pid) {
        let mut ts = self.kernel.tasks();
        ts.tasks.remove(&pid);
        if let Some(p) = ts.procs.remove(&pid) {
            lock(&p.tg.mm).take();
            lock(&p.tg.fds).take();
            if let Some(pp) = ts.procs.get_mut(&p.ppid) {
                pp.children.remove(&pid);
            }
        }
        ts.ns.free(pid);
        if let Some(e) = ts.tasks.get_mut(&self.tid()) {
            e.vfork_child = None;
        }
    }

    /// Sleeps while this task waits for a vfork child to exec or exit
    /// (Linux `wait_for_vfork_done`: killable only; other signals and
    /// stops wait until it is over). Called at the signal check; a kernel
    /// pause parks the task here, with `clone`'s result already in its
    /// registers, and the wait goes on after the pause (or the restore).
    pub(super) fn wait_vfork_done(&mut self) {
        if self.vfork_pending {
            // Woken by the child's exec or exit (`release_vfork_parent`),
            // a SIGKILL, or a pause.
            self.wait_at_boundary(Self::vfork_waiting);
            self.vfork_pending = false;
        }
    }

    /// Whether this task still waits for its vfork child (and is not
    /// being killed).
    fn vfork_waiting(&self) -> bool {
        let ts = self.kernel.tasks();
        ts.tasks
            .get(&self.tid())
            .is_some_and(|e| e.vfork_child.is_some() && !e.exit_requested)
            && !ts.fatal_pending(self.pid(), self.tid())
    }
}
