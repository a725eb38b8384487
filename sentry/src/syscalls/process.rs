//! Process syscalls: creation, exec, exit and wait, ids, sessions and
//! process groups, limits, and small system-information calls
//! (Linux `kernel/fork.c`, `fs/exec.c`, `kernel/exit.c`, `kernel/sys.c`).

use crate::errno::{Errno, SysResult};
use crate::kernel::limits::Rlimit;
use crate::kernel::signal::{SigInfo, SIGCHLD};
use crate::kernel::task::exit::{
    WaitTarget, WALL, WCLONE, WCONTINUED, WEXITED, WNOHANG, WNOTHREAD, WNOWAIT, WSTOPPED, WUNTRACED,
};
use crate::kernel::task::run::RunState;
use crate::kernel::task_set::ExitStatus;
use crate::kernel::TaskRunner;

use super::arg_i32;

/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;

pub fn getpid(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(t.pid() as u64)
}

pub fn gettid(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(t.tid() as u64)
}

pub fn getppid(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    let ts = t.kernel.tasks();
    Ok(ts.procs.get(&t.pid()).map(|p| p.ppid).unwrap_or(0) as u64)
}

/// `clone(flags, stack, parent_tid, child_tid, tls)`.
pub fn clone(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.do_clone(a[0], a[1], a[2], a[3], a[4])
}

/// `clone3(args, size)` (Linux `kernel/fork.c: copy_clone_args_from_user`):
/// the same process creation as `clone`, from a `struct clone_args`. The
/// stack is given as its lowest address and size. `set_tid`, pidfds
/// (`CLONE_PIDFD`) and cgroups are not supported (EINVAL).
pub fn clone3(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    const CLONE_ARGS_SIZE_VER0: u64 = 64;
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let size = a[1];
    if !(CLONE_ARGS_SIZE_VER0..=4096).contains(&size) {
        return Err(Errno::EINVAL.because("bad clone_args size"));
    }
    let mut raw = vec![0u8; size as usize];
    t.copy_in(a[0], &mut raw)?;
    let w = |i: usize| -> u64 {
        raw.get(i * 8..i * 8 + 8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .unwrap_or(0)
    };
    // Fields past the ones this kernel knows must be zero (Linux
    // check_zeroed_user).
    if raw.len() > 88 && raw[88..].iter().any(|b| *b != 0) {
        return Err(Errno::E2BIG);
    }
    let (flags, pidfd, child_tid, parent_tid, exit_signal) = (w(0), w(1), w(2), w(3), w(4));
    let (stack, stack_size, tls, set_tid, set_tid_size) = (w(5), w(6), w(7), w(8), w(9));
    if flags & 0xff != 0 || exit_signal > 64 || flags & CLONE_INTO_CGROUP != 0 {
        return Err(Errno::EINVAL);
    }
    // `pidfd` is only read with CLONE_PIDFD (refused by do_clone).
    let _ = pidfd;
    if set_tid != 0 || set_tid_size != 0 {
        return Err(Errno::EINVAL.because("clone3 set_tid not supported"));
    }
    if (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    let sp = if stack != 0 {
        stack.checked_add(stack_size).ok_or(Errno::EINVAL)?
    } else {
        0
    };
    t.do_clone(flags | exit_signal, sp, parent_tid, child_tid, tls)
}

/// `fork()` = `clone(SIGCHLD)`.
pub fn fork(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    t.do_clone(SIGCHLD as u64, 0, 0, 0, 0)
}

/// `vfork()` = `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)`.
pub fn vfork(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    use crate::kernel::task::clone::{CLONE_VFORK, CLONE_VM};
    t.do_clone(CLONE_VM | CLONE_VFORK | SIGCHLD as u64, 0, 0, 0, 0)
}

/// `execve(path, argv, envp)`.
pub fn execve(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let path = t.read_path(a[0])?;
    let argv = t.read_string_array(a[1])?;
    let envp = t.read_string_array(a[2])?;
    t.execve_at(AT_FDCWD, path, argv, envp, 0)?;
    Ok(0)
}

/// `execveat(dirfd, path, argv, envp, flags)`.
pub fn execveat(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let path = t.read_path(a[1])?;
    let argv = t.read_string_array(a[2])?;
    let envp = t.read_string_array(a[3])?;
    t.execve_at(arg_i32(a[0]), path, argv, envp, arg_i32(a[4]))?;
    Ok(0)
}

/// `exit(code)`: ends the calling thread.
pub fn exit(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.state = RunState::Exiting {
        status: ExitStatus::Exited(arg_i32(a[0]) & 0xff),
        group: false,
    };
    Ok(0)
}

/// `exit_group(code)`: ends the process.
pub fn exit_group(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.state = RunState::Exiting {
        status: ExitStatus::Exited(arg_i32(a[0]) & 0xff),
        group: true,
    };
    Ok(0)
}

/// `struct rusage` is 144 bytes; the sentry reports zeros (no accounting).
const RUSAGE_SIZE: usize = 144;

/// `wait4(pid, wstatus, options, rusage)`.
pub fn wait4(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let pid = arg_i32(a[0]);
    let options = a[2] as u32;
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WCLONE | WALL) != 0 {
        return Err(Errno::EINVAL.because("bad wait4 options"));
    }
    let target = match pid {
        -1 => WaitTarget::Any,
        0 => {
            let ts = t.kernel.tasks();
            WaitTarget::Pgid(ts.procs.get(&t.pid()).map(|p| p.pgid).unwrap_or(0))
        }
        p if p < -1 => WaitTarget::Pgid(p.checked_neg().ok_or(Errno::ECHILD)?),
        p => WaitTarget::Pid(p),
    };
    match t.wait_child(target, options | WEXITED)? {
        None => Ok(0),
        Some(r) => {
            if a[1] != 0 {
                t.write_u32(a[1], r.wstatus as u32)?;
            }
            if a[3] != 0 {
                t.copy_out(a[3], &[0u8; RUSAGE_SIZE])?;
            }
            Ok(r.pid as u64)
        }
    }
}

/// `waitid(idtype, id, infop, options, rusage)`.
pub fn waitid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    const P_ALL: u64 = 0;
    const P_PID: u64 = 1;
    const P_PGID: u64 = 2;
    let id = arg_i32(a[1]);
    let options = a[3] as u32;
    if options & !(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | WNOTHREAD | WCLONE | WALL)
        != 0
        || options & (WEXITED | WSTOPPED | WCONTINUED) == 0
    {
        return Err(Errno::EINVAL.because("bad waitid options"));
    }
    let target = match a[0] {
        P_ALL => WaitTarget::Any,
        P_PID if id > 0 => WaitTarget::Pid(id),
        P_PGID if id > 0 => WaitTarget::Pgid(id),
        P_PGID if id == 0 => {
            let ts = t.kernel.tasks();
            WaitTarget::Pgid(ts.procs.get(&t.pid()).map(|p| p.pgid).unwrap_or(0))
        }
        _ => return Err(Errno::EINVAL.because("bad idtype")),
    };
    let r = t.wait_child(target, options)?;
    if a[2] != 0 {
        let info = match r {
            Some(r) => SigInfo::child(r.pid, 0, r.code, r.status),
            None => SigInfo {
                signo: 0,
                errno: 0,
                code: 0,
                fields: [0; 4],
            },
        };
        t.copy_out(a[2], &info.to_bytes())?;
    }
    if a[4] != 0 {
        t.copy_out(a[4], &[0u8; RUSAGE_SIZE])?;
    }
    Ok(0)
}

/// `uname(buf)`: six 65-byte fields.
pub fn uname(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let u = t
        .kernel
        .uname
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut b = vec![0u8; 65 * 6];
    for (i, s) in [
        &u.sysname,
        &u.nodename,
        &u.release,
        &u.version,
        &u.machine,
        &u.domainname,
    ]
    .iter()
    .enumerate()
    {
        let n = s.len().min(64);
        b[i * 65..i * 65 + n].copy_from_slice(&s.as_bytes()[..n]);
    }
    t.copy_out(a[0], &b)?;
    Ok(0)
}

/// `sethostname(name, len)`.
pub fn sethostname(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if !t.task.local().creds.privileged() {
        return Err(Errno::EPERM);
    }
    if a[1] > 64 {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; a[1] as usize];
    t.copy_in(a[0], &mut b)?;
    t.kernel
        .uname
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .nodename = String::from_utf8_lossy(&b).into_owned();
    Ok(0)
}

/// `sysinfo(info)`: uptime from the sandbox clock, memory from the host.
pub fn sysinfo(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let si = rustix::system::sysinfo();
    let nprocs = t.kernel.tasks().procs.len() as u16;
    let mut b = [0u8; 112];
    let up = t.kernel.clocks.monotonic() / 1_000_000_000;
    b[0..8].copy_from_slice(&up.to_le_bytes());
    let vals = [
        si.totalram,
        si.freeram,
        si.sharedram,
        si.bufferram,
        si.totalswap,
        si.freeswap,
    ];
    for (i, v) in vals.iter().enumerate() {
        b[32 + i * 8..40 + i * 8].copy_from_slice(&v.to_le_bytes());
    }
    b[80..82].copy_from_slice(&nprocs.to_le_bytes());
    b[104..108].copy_from_slice(&si.mem_unit.to_le_bytes());
    t.copy_out(a[0], &b)?;
    Ok(0)
}

/// `getrandom(buf, len, flags)`: bytes from the host's CSPRNG.
pub fn getrandom(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[2] & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    let len = (a[1] as usize).min(32 << 20);
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return Err(Errno::EIO),
        }
    }
    t.copy_out(a[0], &buf)?;
    Ok(len as u64)
}

fn creds(t: &TaskRunner) -> crate::kernel::creds::Credentials {
    t.task.local().creds.clone()
}

pub fn getuid(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(creds(t).ruid as u64)
}
pub fn geteuid(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(creds(t).euid as u64)
}
pub fn getgid(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(creds(t).rgid as u64)
}
pub fn getegid(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(creds(t).egid as u64)
}

pub fn setuid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.task.local().creds.setuid(a[0] as u32)?;
    Ok(0)
}
pub fn setgid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.task.local().creds.setgid(a[0] as u32)?;
    Ok(0)
}
pub fn setreuid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let mut l = t.task.local();
    let (r, e) = (a[0] as u32, a[1] as u32);
    // Linux: the saved id follows the new euid when ruid is set or euid
    // differs from the old ruid.
    let old_r = l.creds.ruid;
    let s = if r != u32::MAX || (e != u32::MAX && e != old_r) {
        if e != u32::MAX {
            e
        } else {
            l.creds.euid
        }
    } else {
        u32::MAX
    };
    l.creds.setresuid(r, e, s)?;
    Ok(0)
}
pub fn setregid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let mut l = t.task.local();
    let (r, e) = (a[0] as u32, a[1] as u32);
    let old_r = l.creds.rgid;
    let s = if r != u32::MAX || (e != u32::MAX && e != old_r) {
        if e != u32::MAX {
            e
        } else {
            l.creds.egid
        }
    } else {
        u32::MAX
    };
    l.creds.setresgid(r, e, s)?;
    Ok(0)
}
pub fn setresuid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.task
        .local()
        .creds
        .setresuid(a[0] as u32, a[1] as u32, a[2] as u32)?;
    Ok(0)
}
pub fn setresgid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.task
        .local()
        .creds
        .setresgid(a[0] as u32, a[1] as u32, a[2] as u32)?;
    Ok(0)
}
pub fn getresuid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let c = creds(t);
    t.write_u32(a[0], c.ruid)?;
    t.write_u32(a[1], c.euid)?;
    t.write_u32(a[2], c.suid)?;
    Ok(0)
}
pub fn getresgid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let c = creds(t);
    t.write_u32(a[0], c.rgid)?;
    t.write_u32(a[1], c.egid)?;
    t.write_u32(a[2], c.sgid)?;
    Ok(0)
}
/// `setfsuid`: returns the previous fsuid; sets it when allowed.
pub fn setfsuid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let mut l = t.task.local();
    let old = l.creds.fsuid;
    let new = a[0] as u32;
    let c = &l.creds;
    if c.privileged() || [c.ruid, c.euid, c.suid, c.fsuid].contains(&new) {
        l.creds.fsuid = new;
    }
    Ok(old as u64)
}
pub fn setfsgid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let mut l = t.task.local();
    let old = l.creds.fsgid;
    let new = a[0] as u32;
    let c = &l.creds;
    if c.privileged() || [c.rgid, c.egid, c.sgid, c.fsgid].contains(&new) {
        l.creds.fsgid = new;
    }
    Ok(old as u64)
}
pub fn getgroups(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let g = creds(t).groups;
    let size = arg_i32(a[0]);
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(g.len() as u64);
    }
    if (size as usize) < g.len() {
        return Err(Errno::EINVAL);
    }
    let bytes: Vec<u8> = g.iter().flat_map(|x| x.to_le_bytes()).collect();
    t.copy_out(a[1], &bytes)?;
    Ok(g.len() as u64)
}
pub fn setgroups(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if !t.task.local().creds.privileged() {
        return Err(Errno::EPERM);
    }
    let n = a[0] as usize;
    if n > 65536 {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; n * 4];
    t.copy_in(a[1], &mut b)?;
    let groups = b
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    t.task.local().creds.groups = groups;
    Ok(0)
}

/// `setpgid(pid, pgid)` with Linux's rules (`kernel/sys.c`).
pub fn setpgid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let me = t.pid();
    let mut pid = arg_i32(a[0]);
    let mut pgid = arg_i32(a[1]);
    if pid == 0 {
        pid = me;
    }
    if pgid == 0 {
        pgid = pid;
    }
    if pgid < 0 {
        return Err(Errno::EINVAL);
    }
    let mut ts = t.kernel.tasks();
    let my_sid = ts.procs.get(&me).map(|p| p.sid).ok_or(Errno::ESRCH)?;
    let target = ts
        .procs
        .get(&pid)
        .filter(|p| p.zombie.is_none())
        .ok_or(Errno::ESRCH)?;
    if pid != me {
        if target.ppid != me {
            return Err(Errno::ESRCH);
        }
        if target.sid != my_sid {
            return Err(Errno::EPERM);
        }
        if target.did_exec {
            return Err(Errno::EACCES);
        }
    }
    if target.sid == pid {
        return Err(Errno::EPERM.because("session leader"));
    }
    if pgid != pid
        && !ts
            .procs
            .values()
            .any(|p| p.pgid == pgid && p.sid == my_sid && p.zombie.is_none())
    {
        return Err(Errno::EPERM.because("no such process group in the session"));
    }
    if let Some(p) = ts.procs.get_mut(&pid) {
        p.pgid = pgid;
    }
    Ok(0)
}

pub fn getpgid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let pid = match arg_i32(a[0]) {
        0 => t.pid(),
        p => p,
    };
    let ts = t.kernel.tasks();
    ts.procs
        .get(&pid)
        .map(|p| p.pgid as u64)
        .ok_or(Errno::ESRCH)
}

pub fn getpgrp(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    getpgid(t, [0; 6])
}

pub fn getsid(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let pid = match arg_i32(a[0]) {
        0 => t.pid(),
        p => p,
    };
    let ts = t.kernel.tasks();
    ts.procs.get(&pid).map(|p| p.sid as u64).ok_or(Errno::ESRCH)
}

/// `setsid()`: EPERM for a process group leader.
pub fn setsid(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    let me = t.pid();
    let mut ts = t.kernel.tasks();
    if ts
        .procs
        .values()
        .any(|p| p.pgid == me && p.zombie.is_none())
    {
        return Err(Errno::EPERM.because("already a process group leader"));
    }
    let p = ts.procs.get_mut(&me).ok_or(Errno::ESRCH)?;
    p.sid = me;
    p.pgid = me;
    Ok(me as u64)
}

/// `prctl(option, ...)`: the options programs commonly use.
pub fn prctl(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    const PR_SET_PDEATHSIG: u64 = 1;
    const PR_GET_PDEATHSIG: u64 = 2;
    const PR_GET_DUMPABLE: u64 = 3;
    const PR_SET_DUMPABLE: u64 = 4;
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    const PR_SET_NO_NEW_PRIVS: u64 = 38;
    const PR_GET_NO_NEW_PRIVS: u64 = 39;
    match a[0] {
        PR_SET_PDEATHSIG => {
            let s = arg_i32(a[1]);
            if s != 0 && !crate::kernel::signal::valid(s) {
                return Err(Errno::EINVAL);
            }
            t.task.local().pdeathsig = s;
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            let s = t.task.local().pdeathsig;
            t.write_u32(a[1], s as u32)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE => {
            if a[1] > 1 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        PR_SET_NAME => {
            let mut b = [0u8; 16];
            // The name may sit at the end of a mapping: read byte by byte
            // up to the NUL like strncpy_from_user.
            let name = t
                .read_cstring(a[1], 16)
                .or_else(|_| t.copy_in(a[1], &mut b).map(|_| b.to_vec()))?;
            let n: Vec<u8> = name.into_iter().take(15).collect();
            t.task.local().comm = n;
            Ok(0)
        }
        PR_GET_NAME => {
            let mut b = [0u8; 16];
            let comm = t.task.local().comm.clone();
            let n = comm.len().min(15);
            b[..n].copy_from_slice(&comm[..n]);
            t.copy_out(a[1], &b)?;
            Ok(0)
        }
        PR_SET_NO_NEW_PRIVS => Ok(0),
        PR_GET_NO_NEW_PRIVS => Ok(0),
        _ => Err(Errno::EINVAL.because("unsupported prctl option")),
    }
}

/// `arch_prctl(code, addr)`: FS/GS bases live in the registers.
pub fn arch_prctl(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    const ARCH_GET_GS: u64 = 0x1004;
    let max = t.kernel.platform().max_user_address();
    match a[0] {
        ARCH_SET_FS | ARCH_SET_GS if a[1] >= max => {
            Err(Errno::EPERM.because("base above user space"))
        }
        ARCH_SET_FS => {
            t.regs.fs_base = a[1];
            Ok(0)
        }
        ARCH_SET_GS => {
            t.regs.gs_base = a[1];
            Ok(0)
        }
        ARCH_GET_FS => {
            let v = t.regs.fs_base;
            t.write_u64(a[1], v)?;
            Ok(0)
        }
        ARCH_GET_GS => {
            let v = t.regs.gs_base;
            t.write_u64(a[1], v)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL.because("unsupported arch_prctl code")),
    }
}

pub fn set_tid_address(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.task.local().clear_child_tid = a[0];
    Ok(t.tid() as u64)
}

pub fn set_robust_list(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[1] != 24 {
        return Err(Errno::EINVAL);
    }
    t.task.local().robust_list = (a[0], a[1]);
    Ok(0)
}

pub fn get_robust_list(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let pid = arg_i32(a[0]);
    let (head, len) = if pid == 0 || pid == t.tid() {
        t.task.local().robust_list
    } else {
        let task = t
            .kernel
            .tasks()
            .tasks
            .get(&pid)
            .map(|e| e.task.clone())
            .ok_or(Errno::ESRCH)?;
        let v = task.local().robust_list;
        v
    };
    t.write_u64(a[1], head)?;
    t.write_u64(a[2], len)?;
    Ok(0)
}

/// `rseq`: not supported; glibc falls back when registration fails.
/// Explicit (rather than a table gap) so it is not logged as missing.
pub fn rseq(_t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Err(Errno::ENOSYS.because("rseq not supported"))
}

fn rlimit_bytes(r: Rlimit) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&r.cur.to_le_bytes());
    b[8..16].copy_from_slice(&r.max.to_le_bytes());
    b
}

fn rlimit_from(b: &[u8; 16]) -> Rlimit {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[0..8]);
    let cur = u64::from_le_bytes(x);
    x.copy_from_slice(&b[8..16]);
    Rlimit {
        cur,
        max: u64::from_le_bytes(x),
    }
}

pub fn getrlimit(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let r = t
        .task
        .tg
        .limits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(a[0] as usize)?;
    t.copy_out(a[1], &rlimit_bytes(r))?;
    Ok(0)
}

pub fn setrlimit(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let new = rlimit_from(&t.read_array::<16>(a[1])?);
    let privileged = t.task.local().creds.privileged();
    t.task
        .tg
        .limits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .set(a[0] as usize, new, privileged)?;
    Ok(0)
}

/// `prlimit64(pid, resource, new, old)`.
pub fn prlimit64(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let pid = arg_i32(a[0]);
    let tg = if pid == 0 || pid == t.pid() {
        t.task.tg.clone()
    } else {
        t.kernel
            .tasks()
            .procs
            .get(&pid)
            .map(|p| p.tg.clone())
            .ok_or(Errno::ESRCH)?
    };
    let res = a[1] as usize;
    let new = if a[2] != 0 {
        Some(rlimit_from(&t.read_array::<16>(a[2])?))
    } else {
        None
    };
    let privileged = t.task.local().creds.privileged();
    let old = {
        let mut l = tg.limits.lock().unwrap_or_else(|e| e.into_inner());
        let old = l.get(res)?;
        if let Some(n) = new {
            l.set(res, n, privileged)?;
        }
        old
    };
    if a[3] != 0 {
        t.copy_out(a[3], &rlimit_bytes(old))?;
    }
    Ok(0)
}

/// `getrusage(who, usage)`: zeros (no accounting yet).
pub fn getrusage(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    match arg_i32(a[0]) {
        -1..=1 => {
            t.copy_out(a[1], &[0u8; RUSAGE_SIZE])?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_yield(_t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    std::thread::yield_now();
    Ok(0)
}

fn ncpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `sched_getaffinity(pid, len, mask)`: every CPU of the host.
pub fn sched_getaffinity(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let pid = arg_i32(a[0]);
    if pid != 0 && t.kernel.tasks().pid_of(pid).is_none() {
        return Err(Errno::ESRCH);
    }
    let size = ncpus().div_ceil(64) * 8;
    let len = a[1] as usize;
    if len < size || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let mut b = vec![0u8; size];
    for c in 0..ncpus() {
        b[c / 8] |= 1 << (c % 8);
    }
    t.copy_out(a[2], &b)?;
    Ok(size as u64)
}

/// `sched_setaffinity`: accepted (the sentry schedules its own threads).
pub fn sched_setaffinity(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let pid = arg_i32(a[0]);
    if pid != 0 && t.kernel.tasks().pid_of(pid).is_none() {
        return Err(Errno::ESRCH);
    }
    Ok(0)
}

pub fn sched_getscheduler(_t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(0)
}

pub fn sched_getparam(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    t.write_u32(a[1], 0)?;
    Ok(0)
}

pub fn getcpu(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[0] != 0 {
        t.write_u32(a[0], 0)?;
    }
    if a[1] != 0 {
        t.write_u32(a[1], 0)?;
    }
    Ok(0)
}

/// `getpriority`: nice 0 for everyone (returned as 20 - nice).
pub fn getpriority(_t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[0] > 2 {
        return Err(Errno::EINVAL);
    }
    Ok(20)
}

/// `setpriority`: accepted, not applied (the sentry does not schedule by
/// nice values).
pub fn setpriority(_t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[0] > 2 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// `personality(persona)`: only `PER_LINUX` (0); `0xffffffff` queries.
pub fn personality(_t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    match a[0] as u32 {
        0 | 0xffff_ffff => Ok(0),
        _ => Err(Errno::EINVAL.because("only PER_LINUX is supported")),
    }
}

/// `mlock`/`munlock`/`mlock2`/`mlockall`/`munlockall`: accepted. Guest
/// memory lives in the sentry's memory file and is never paged out by the
/// sandbox, so locking changes nothing observable.
pub fn mlock(_t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(0)
}
pub fn munlock(_t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(0)
}
pub fn mlock2(_t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[2] & !1 != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}
pub fn mlockall(_t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[0] == 0 || a[0] & !7 != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}
pub fn munlockall(_t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    Ok(0)
}
