//! execve (Linux `fs/exec.c`, `fs/binfmt_elf.c`, `fs/binfmt_script.c`).
//!
//! The image is built in a fresh address space on a fresh platform
//! context; only when loading succeeded does the task switch to them
//! (the "point of no return"): the old stub dies, close-on-exec fds are
//! closed, caught signals revert to default, the alternate stack is
//! cleared and a vfork parent is released.

use std::sync::{Arc, Mutex};

use tracing::debug;

use super::super::procfs::KernelProc;
use super::super::thread_group::lock;
use super::run::{initial_regs, TaskRunner};
use crate::errno::{Errno, SysResult};
use crate::loader::{parse_shebang, BINPRM_BUF_SIZE};
use crate::vfs::{At, FileType, MappedFile};

/// `#!` nesting limit (Linux `BINPRM_MAX_RECURSION`).
const MAX_INTERP_DEPTH: usize = 4;
const AT_FDCWD: i32 = -100;
const AT_EMPTY_PATH: i32 = 0x1000;
const AT_SYMLINK_NOFOLLOW: i32 = 0x100;

impl TaskRunner {
    /// `execve(filename, argv, envp)` relative to the cwd.
    pub fn execve(
        &mut self,
        filename: Vec<u8>,
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
    ) -> SysResult<()> {
        self.execve_at(AT_FDCWD, filename, argv, envp, 0)
    }

    /// Opens an executable: a regular file with an execute bit.
    fn open_exec(
        &mut self,
        dirfd: i32,
        path: &[u8],
        flags: i32,
    ) -> SysResult<(MappedFile, Vec<u8>)> {
        let fs = lock(&self.task.tg.fs).clone();
        let src = KernelProc {
            kernel: &self.kernel,
            current: self.pid(),
        };
        let dirfile = if dirfd == AT_FDCWD || path.first() == Some(&b'/') {
            None
        } else {
            let fds = self.task.tg.fds().ok_or(Errno::EBADF)?;
            Some(fds.get(dirfd)?)
        };
        if path.is_empty() {
            if flags & AT_EMPTY_PATH == 0 {
                return Err(Errno::ENOENT);
            }
            let f = dirfile.ok_or(Errno::ENOENT)?;
            let st = f.fstat(&src)?;
            check_exec(&st)?;
            return Ok((f.mapped_file()?, f.path().to_vec()));
        }
        let at = match &dirfile {
            Some(f) => At::Fd(f),
            None => At::Cwd,
        };
        let mut oflags = libc::O_RDONLY as u32;
        if flags & AT_SYMLINK_NOFOLLOW != 0 {
            oflags |= libc::O_NOFOLLOW as u32;
        }
        let f = self
            .kernel
            .vfs
            .open(&fs, at, path, oflags, 0, Default::default(), &src)?;
        let st = f.fstat(&src)?;
        check_exec(&st)?;
        Ok((f.mapped_file()?, f.path().to_vec()))
    }

    /// The whole of `execveat`. On success the registers point at the new
    /// image's entry.
    pub fn execve_at(
        &mut self,
        dirfd: i32,
        filename: Vec<u8>,
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
        flags: i32,
    ) -> SysResult<()> {
        if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
            return Err(Errno::EINVAL);
        }
        let mut argv = argv;
        let mut path = filename.clone();
        let mut dirfd = dirfd;
        let mut depth = 0;
        let (exe, exe_path) = loop {
            let (file, gpath) = self.open_exec(dirfd, &path, flags)?;
            let mut head = [0u8; BINPRM_BUF_SIZE];
            let n = file.read_at(0, &mut head)?;
            match parse_shebang(&head[..n], &argv, &path) {
                None => break (file, gpath),
                Some(parsed) => {
                    // argv becomes: interp [arg] script-path argv[1..]
                    let script = parsed?;
                    depth += 1;
                    if depth > MAX_INTERP_DEPTH {
                        return Err(Errno::ELOOP.because("#! nesting too deep"));
                    }
                    argv = script.argv;
                    path = script.interpreter;
                    dirfd = AT_FDCWD;
                }
            }
        };

        // A pristine context (init's first exec) takes the image itself: it
        // has no application state to keep if loading fails, and creating
        // a second stub only to kill the first would double start-up work.
        let mut new_ctx = if std::mem::take(&mut self.ctx_pristine) {
            None
        } else {
            Some(
                self.kernel
                    .platform()
                    .new_context()
                    .map_err(|_| Errno::ENOMEM.because("cannot create a context"))?,
            )
        };
        let mut mm = self.kernel.new_mm();
        let creds = self.task.local().creds.clone();
        let fs = lock(&self.task.tg.fs).clone();
        let kernel = self.kernel.clone();
        let pid = self.pid();
        let mut open_interp = |p: &[u8]| -> SysResult<MappedFile> {
            let src = KernelProc {
                kernel: &kernel,
                current: pid,
            };
            let f = kernel.vfs.open(
                &fs,
                At::Cwd,
                p,
                libc::O_RDONLY as u32,
                0,
                Default::default(),
                &src,
            )?;
            f.mapped_file()
        };
        let mut random = [0u8; 16];
        let _ = rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty());
        let (hwcap, hwcap2) = host_hwcap();
        let stack_size = lock(&self.task.tg.limits)
            .get(super::super::limits::RLIMIT_STACK)
            .map(|r| r.cur)
            .unwrap_or(crate::loader::DEFAULT_STACK_SIZE);
        let mut params = crate::loader::ExecParams::new(&argv, &envp, &filename);
        params.uid = creds.ruid;
        params.euid = creds.euid;
        params.gid = creds.rgid;
        params.egid = creds.egid;
        params.random = random;
        params.hwcap = hwcap;
        params.hwcap2 = hwcap2;
        params.minsigstksz = (self.kernel.fp_state_size() as u64
            + 4
            + super::super::signal::frame::FRAME_SIZE
            + 64
            + 16
            + 4095)
            & !4095;
        params.stack_size = stack_size;
        let img = {
            let ctx = match new_ctx.as_mut() {
                Some(c) => &mut **c,
                None => &mut *self.ctx,
            };
            crate::loader::load(ctx, &mut mm, &exe, &mut open_interp, &params)?
        };

        // Point of no return.
        self.kill_other_threads();
        if let Some(ctx) = new_ctx {
            let interrupter = ctx.interrupter();
            let old_ctx = std::mem::replace(&mut self.ctx, ctx);
            self.task.set_interrupter(Some(interrupter));
            drop(old_ctx);
        }
        let old_mm = lock(&self.task.tg.mm).replace(Arc::new(Mutex::new(mm)));
        drop(old_mm);
        let closed = self.task.tg.fds().map(|f| f.close_on_exec());
        // Closing fds drops the process's record locks on those files.
        for f in closed.iter().flatten() {
            f.release_posix_locks(pid);
        }
        drop(closed);
        {
            let mut ts = self.kernel.tasks();
            if let Some(p) = ts.procs.get_mut(&pid) {
                p.actions.reset_for_exec();
                p.did_exec = true;
            }
            self.release_vfork_parent_locked(&mut ts);
        }
        let comm: Vec<u8> = filename
            .rsplit(|c| *c == b'/')
            .next()
            .unwrap_or(&filename)
            .iter()
            .copied()
            .take(15)
            .collect();
        {
            let mut l = self.task.local();
            l.comm = comm;
            l.altstack = super::super::signal::AltStack::disabled();
            l.restart = None;
            l.clear_child_tid = 0;
            l.robust_list = (0, 0);
        }
        *lock(&self.task.tg.exe) = String::from_utf8_lossy(&exe_path).into_owned();
        *lock(&self.task.tg.cmdline) = argv
            .iter()
            .flat_map(|a| a.iter().copied().chain([0]))
            .collect();
        self.regs = initial_regs(img.entry, img.stack_pointer);
        self.restart = None;
        debug!(pid, exe = %String::from_utf8_lossy(&exe_path), "exec");
        Ok(())
    }
}

/// The host's AT_HWCAP and AT_HWCAP2 (from `/proc/self/auxv`), handed to
/// the guest unchanged: it runs on the same CPU.
fn host_hwcap() -> (u64, u64) {
    static HWCAP: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *HWCAP.get_or_init(|| {
        let raw = std::fs::read("/proc/self/auxv").unwrap_or_default();
        let mut caps = (0, 0);
        for e in raw.chunks_exact(16) {
            let mut k = [0u8; 8];
            let mut v = [0u8; 8];
            k.copy_from_slice(&e[0..8]);
            v.copy_from_slice(&e[8..16]);
            match u64::from_le_bytes(k) {
                16 => caps.0 = u64::from_le_bytes(v),
                26 => caps.1 = u64::from_le_bytes(v),
                _ => {}
            }
        }
        caps
    })
}

impl TaskRunner {
    /// Linux `de_thread`: every other thread of the process exits before
    /// the new image takes over (they share the address space being
    /// replaced). Waits until they are gone or the process is killed.
    /// Unlike Linux, a non-leader that execs keeps its own tid.
    fn kill_other_threads(&mut self) {
        let me = self.tid();
        let pid = self.pid();
        loop {
            {
                let mut ts = self.kernel.tasks();
                let Some(p) = ts.procs.get(&pid) else { return };
                if p.group_exit.is_some() {
                    return;
                }
                let others: Vec<_> = p.threads.iter().copied().filter(|t| *t != me).collect();
                if others.is_empty() {
                    return;
                }
                for t in others {
                    if let Some(e) = ts.tasks.get_mut(&t) {
                        e.exit_requested = true;
                        e.task.kick();
                    }
                }
            }
            self.task.waiter.wait(Some(
                std::time::Instant::now() + std::time::Duration::from_millis(50),
            ));
        }
    }
}

fn check_exec(st: &crate::vfs::Stat) -> SysResult<()> {
    if st.file_type() != Some(FileType::Regular) {
        return Err(Errno::EACCES.because("exec of a non-regular file"));
    }
    if st.mode & 0o111 == 0 {
        return Err(Errno::EACCES.because("no execute permission"));
    }
    Ok(())
}
