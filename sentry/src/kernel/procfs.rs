//! The kernel's side of `/proc`: [`crate::vfs::ProcSource`] over the task
//! set, seen from one calling process.

use super::kernel::Kernel;
use super::pid_ns::Pid;
use super::task_set::JobState;
use super::thread_group::lock;
use crate::vfs::ProcSource;

/// `/proc` as process `current` sees it.
pub struct KernelProc<'a> {
    pub kernel: &'a Kernel,
    pub current: Pid,
}

impl KernelProc<'_> {
    fn tg(&self, pid: Pid) -> Option<std::sync::Arc<super::ThreadGroup>> {
        let ts = self.kernel.tasks();
        ts.procs
            .get(&pid)
            .filter(|p| p.zombie.is_none())
            .map(|p| p.tg.clone())
    }
}

impl ProcSource for KernelProc<'_> {
    fn current_pid(&self) -> i32 {
        self.current
    }

    fn pids(&self) -> Vec<i32> {
        let ts = self.kernel.tasks();
        ts.procs
            .iter()
            .filter(|(_, p)| p.zombie.is_none())
            .map(|(pid, _)| *pid)
            .collect()
    }

    fn exists(&self, pid: i32) -> bool {
        self.tg(pid).is_some()
    }

    fn exe_path(&self, pid: i32) -> Option<Vec<u8>> {
        self.tg(pid).map(|tg| lock(&tg.exe).as_bytes().to_vec())
    }

    fn cwd_path(&self, pid: i32) -> Option<Vec<u8>> {
        let tg = self.tg(pid)?;
        let fs = lock(&tg.fs).clone();
        Some(self.kernel.vfs.cwd_path(&fs, self))
    }

    fn fd_targets(&self, pid: i32) -> Option<Vec<(i32, Vec<u8>)>> {
        self.tg(pid)?.fds().map(|f| f.proc_fd_targets())
    }

    fn fd_file(&self, pid: i32, fd: i32) -> Option<std::sync::Arc<crate::vfs::FileDescription>> {
        self.tg(pid)?.fds()?.get(fd).ok()
    }

    fn maps_text(&self, pid: i32) -> Option<Vec<u8>> {
        let mm = self.tg(pid)?.mm()?;
        let text = lock(&mm).maps_text();
        Some(text.into_bytes())
    }

    fn status_text(&self, pid: i32) -> Option<Vec<u8>> {
        let (ppid, state, tg, task, nthreads) = {
            let ts = self.kernel.tasks();
            let p = ts.procs.get(&pid).filter(|p| p.zombie.is_none())?;
            let state = match p.job {
                JobState::Stopped { .. } => "T (stopped)",
                _ => "S (sleeping)",
            };
            let task = ts.tasks.get(&pid).map(|e| e.task.clone());
            (p.ppid, state, p.tg.clone(), task, p.threads.len())
        };
        let (comm, creds) = match &task {
            Some(t) => {
                let l = t.local();
                (l.comm.clone(), l.creds.clone())
            }
            None => (Vec::new(), Default::default()),
        };
        let usage = tg.mm().map(|m| lock(&m).usage());
        let (vsz, rss) = usage
            .map(|u| (u.virtual_size / 1024, u.resident / 1024))
            .unwrap_or((0, 0));
        Some(
            format!(
                "Name:\t{}\nUmask:\t{:04o}\nState:\t{}\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{ppid}\nUid:\t{}\t{}\t{}\t{}\nGid:\t{}\t{}\t{}\t{}\nVmSize:\t{vsz:8} kB\nVmRSS:\t{rss:8} kB\nThreads:\t{nthreads}\n",
                String::from_utf8_lossy(&comm),
                lock(&tg.fs).umask,
                state,
                creds.ruid, creds.euid, creds.suid, creds.fsuid,
                creds.rgid, creds.egid, creds.sgid, creds.fsgid,
            )
            .into_bytes(),
        )
    }

    fn stat_text(&self, pid: i32) -> Option<Vec<u8>> {
        let (ppid, pgid, sid, state, task) = {
            let ts = self.kernel.tasks();
            let p = ts.procs.get(&pid).filter(|p| p.zombie.is_none())?;
            let state = if matches!(p.job, JobState::Stopped { .. }) {
                'T'
            } else {
                'S'
            };
            (
                p.ppid,
                p.pgid,
                p.sid,
                state,
                ts.tasks.get(&pid).map(|e| e.task.clone()),
            )
        };
        let comm = task.map(|t| t.local().comm.clone()).unwrap_or_default();
        Some(
            format!(
                "{pid} ({}) {state} {ppid} {pgid} {sid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 0 0 0\n",
                String::from_utf8_lossy(&comm)
            )
            .into_bytes(),
        )
    }

    fn cmdline(&self, pid: i32) -> Option<Vec<u8>> {
        self.tg(pid).map(|tg| lock(&tg.cmdline).clone())
    }
}
