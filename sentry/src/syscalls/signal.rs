//! Signal syscalls (Linux `kernel/signal.c`).

use crate::errno::{Errno, SysResult};
use crate::kernel::signal::action::SA_RESTORER;
use crate::kernel::signal::queue::{SI_QUEUE, SI_TKILL, SI_USER};
use crate::kernel::signal::{self as sig, AltStack, SigAction, SigInfo, SigSet, SIGKILL, SIGSTOP};
use crate::kernel::task::RestartBlock;
use crate::kernel::time::{ClockKind, Nanos};
use crate::kernel::TaskRunner;

use super::arg_i32;

const SIG_BLOCK: u64 = 0;
const SIG_UNBLOCK: u64 = 1;
const SIG_SETMASK: u64 = 2;

/// `rt_sigaction(sig, act, oldact, sigsetsize)`.
pub fn rt_sigaction(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let signo = arg_i32(a[0]);
    if a[3] != 8 {
        return Err(Errno::EINVAL.because("sigsetsize != 8"));
    }
    if !sig::valid(signo) {
        return Err(Errno::EINVAL.because("bad signal number"));
    }
    let new = if a[1] != 0 {
        let act = SigAction::from_bytes(&t.read_array::<32>(a[1])?);
        if signo == SIGKILL || signo == SIGSTOP {
            return Err(Errno::EINVAL.because("SIGKILL/SIGSTOP cannot be caught"));
        }
        Some(act)
    } else {
        None
    };
    let old = {
        let mut ts = t.kernel.tasks();
        let pid = t.pid();
        let p = ts.procs.get_mut(&pid).ok_or(Errno::ESRCH)?;
        let old = p.actions.get(signo);
        if let Some(mut act) = new {
            act.mask = act.mask.blockable();
            p.actions.set(signo, act);
            // Linux do_sigaction: setting SIG_IGN (or a default-ignore
            // SIG_DFL) discards pending instances.
            if act.ignores(signo) {
                p.pending.discard(signo);
                for tid in p.threads.clone() {
                    if let Some(e) = ts.tasks.get_mut(&tid) {
                        e.pending.discard(signo);
                    }
                }
            }
        }
        old
    };
    if a[2] != 0 {
        t.copy_out(a[2], &old.to_bytes())?;
    }
    let _ = SA_RESTORER;
    Ok(0)
}

/// `rt_sigprocmask(how, set, oldset, sigsetsize)`.
pub fn rt_sigprocmask(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL.because("sigsetsize != 8"));
    }
    let old = t.sigmask();
    if a[1] != 0 {
        let set = SigSet(t.read_u64(a[1])?);
        let new = match a[0] {
            SIG_BLOCK => SigSet(old.0 | set.0),
            SIG_UNBLOCK => SigSet(old.0 & !set.0),
            SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL.because("bad how")),
        };
        t.set_sigmask(new);
    }
    if a[2] != 0 {
        t.write_u64(a[2], old.0)?;
    }
    Ok(0)
}

/// `rt_sigreturn()`.
pub fn rt_sigreturn(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    t.sigreturn()
}

/// `kill(pid, sig)`.
pub fn kill(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let signo = arg_i32(a[1]);
    if signo != 0 && !sig::valid(signo) {
        return Err(Errno::EINVAL);
    }
    t.kill(arg_i32(a[0]), signo)?;
    Ok(0)
}

fn thread_kill(t: &mut TaskRunner, tgid: Option<i32>, tid: i32, signo: i32) -> SysResult<u64> {
    if tid <= 0 || tgid.is_some_and(|g| g <= 0) {
        return Err(Errno::EINVAL);
    }
    if signo != 0 && !sig::valid(signo) {
        return Err(Errno::EINVAL);
    }
    let uid = t.task.local().creds.ruid;
    let info = SigInfo::user(signo, SI_TKILL, t.pid(), uid);
    let mut ts = t.kernel.tasks();
    let pid = ts.pid_of(tid).ok_or(Errno::ESRCH)?;
    if tgid.is_some_and(|g| g != pid) {
        return Err(Errno::ESRCH);
    }
    if signo != 0 {
        ts.send_to_task(tid, info);
    }
    Ok(0)
}

/// `tgkill(tgid, tid, sig)`.
pub fn tgkill(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    thread_kill(t, Some(arg_i32(a[0])), arg_i32(a[1]), arg_i32(a[2]))
}

/// `tkill(tid, sig)`.
pub fn tkill(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    thread_kill(t, None, arg_i32(a[0]), arg_i32(a[1]))
}

/// `rt_sigqueueinfo(tgid, sig, info)`: only negative si_code (as from
/// `sigqueue`) is accepted from another process, like Linux.
pub fn rt_sigqueueinfo(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let signo = arg_i32(a[1]);
    if !sig::valid(signo) {
        return Err(Errno::EINVAL);
    }
    let mut info = SigInfo::from_bytes(&t.read_array::<128>(a[2])?);
    let pid = arg_i32(a[0]);
    if (info.code >= 0 || info.code == SI_TKILL) && pid != t.pid() {
        return Err(Errno::EPERM);
    }
    info.signo = signo;
    let _ = (SI_QUEUE, SI_USER);
    let mut ts = t.kernel.tasks();
    if !ts.procs.contains_key(&pid) {
        return Err(Errno::ESRCH);
    }
    ts.send_to_process(pid, info);
    Ok(0)
}

/// `rt_sigpending(set, sigsetsize)`.
pub fn rt_sigpending(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[1] > 8 {
        return Err(Errno::EINVAL);
    }
    let set = {
        let ts = t.kernel.tasks();
        let tp = ts
            .tasks
            .get(&t.tid())
            .map(|e| e.pending.set().0)
            .unwrap_or(0);
        let pp = ts
            .procs
            .get(&t.pid())
            .map(|p| p.pending.set().0)
            .unwrap_or(0);
        let mask = ts.tasks.get(&t.tid()).map(|e| e.mask.0).unwrap_or(0);
        (tp | pp) & mask
    };
    t.write_u64(a[0], set)?;
    Ok(0)
}

/// `rt_sigsuspend(mask, sigsetsize)`: waits for a signal with `mask`
/// temporarily installed; always "fails" with EINTR after a handler ran
/// (ERESTARTNOHAND).
pub fn rt_sigsuspend(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = SigSet(t.read_u64(a[0])?);
    t.set_temporary_mask(mask);
    loop {
        if t.interrupted() {
            return Err(Errno::ERESTARTNOHAND);
        }
        t.task.waiter.wait(None);
    }
}

/// `pause()`.
pub fn pause(t: &mut TaskRunner, _a: [u64; 6]) -> SysResult<u64> {
    loop {
        if t.interrupted() {
            return Err(Errno::ERESTARTNOHAND);
        }
        t.task.waiter.wait(None);
    }
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)`: dequeues one of
/// `set` (which it unblocks for the wait), waiting up to `timeout`.
/// Another signal (a handler, a stop then `SIGCONT`) ends it with `EINTR`,
/// never a restart (Linux `do_sigtimedwait`, signal(7)); a checkpoint pause
/// alone restarts it transparently, a timed one through a
/// [`RestartBlock::SigTimedWait`] so it waits only the time left.
pub fn rt_sigtimedwait(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let set = SigSet(t.read_u64(a[0])?).blockable();
    let deadline = if a[2] != 0 {
        let ns = crate::kernel::time::timespec_from(&t.read_array::<16>(a[2])?)?;
        Some(t.kernel.clocks.monotonic().saturating_add(ns.max(0)))
    } else {
        None
    };
    sigtimedwait_until(t, set, a[1], deadline)
}

/// `restart_syscall` of a timed `rt_sigtimedwait` interrupted by a
/// checkpoint pause: waits until the saved sandbox-monotonic `deadline`.
pub fn restart_sigtimedwait(
    t: &mut TaskRunner,
    set: u64,
    info: u64,
    deadline: Nanos,
) -> SysResult<u64> {
    sigtimedwait_until(t, SigSet(set), info, Some(deadline))
}

/// Waits for one of `set` until the sandbox-monotonic `deadline` (`None`:
/// forever) and writes its `siginfo` to `info` (if not 0).
fn sigtimedwait_until(
    t: &mut TaskRunner,
    set: SigSet,
    info: u64,
    deadline: Option<Nanos>,
) -> SysResult<u64> {
    let host = deadline.map(|d| t.kernel.clocks.deadline(ClockKind::Monotonic, d, 0));
    loop {
        let got = {
            let mut ts = t.kernel.tasks();
            let tid = t.tid();
            let pid = t.pid();
            let not_set = SigSet(!set.0);
            let from_task = ts
                .tasks
                .get_mut(&tid)
                .and_then(|e| e.pending.dequeue(not_set));
            match from_task {
                Some(i) => Some(i),
                None => ts
                    .procs
                    .get_mut(&pid)
                    .and_then(|p| p.pending.dequeue(not_set)),
            }
        };
        if let Some(i) = got {
            if info != 0 {
                t.copy_out(info, &i.to_bytes())?;
            }
            return Ok(i.signo as u64);
        }
        if t.signal_pending() {
            return Err(Errno::EINTR);
        }
        if t.interrupted() {
            // A checkpoint pause alone: invisible to the guest.
            return match deadline {
                Some(deadline) => {
                    t.task.local().restart = Some(RestartBlock::SigTimedWait {
                        set: set.0,
                        info,
                        deadline,
                    });
                    Err(Errno::ERESTART_RESTARTBLOCK)
                }
                None => Err(Errno::ERESTARTNOHAND),
            };
        }
        if t.task.waiter.wait(host) == crate::waiter::WaitOutcome::TimedOut {
            return Err(Errno::EAGAIN);
        }
    }
}

/// `sigaltstack(ss, old_ss)`.
pub fn sigaltstack(t: &mut TaskRunner, a: [u64; 6]) -> SysResult<u64> {
    let cur = t.task.local().altstack;
    let on = cur.contains(t.regs.rsp);
    if a[0] != 0 {
        let b = t.read_array::<24>(a[0])?;
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[0..8]);
        let sp = u64::from_le_bytes(w);
        let flags = i32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        w.copy_from_slice(&b[16..24]);
        let size = u64::from_le_bytes(w);
        t.set_altstack(AltStack { sp, size, flags })?;
    }
    if a[1] != 0 {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&cur.sp.to_le_bytes());
        let flags = if on {
            sig::SS_ONSTACK
        } else if cur.enabled() {
            cur.flags & sig::SS_AUTODISARM
        } else {
            sig::SS_DISABLE
        };
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&cur.size.to_le_bytes());
        t.copy_out(a[1], &b)?;
    }
    Ok(0)
}
