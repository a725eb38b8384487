//! Interval timers: `ITIMER_REAL` (`setitimer(2)`, `alarm(2)`), per
//! process (Linux `kernel/time/itimer.c`, `signal_struct.real_timer`).
//!
//! Deadlines are kernel state ([`ITimer`] in each `Process`, on the
//! sandbox monotonic clock, so they survive checkpoint/restore). One host
//! thread per kernel ([`Kernel::start_timers`]) sleeps until the earliest
//! deadline, sends SIGALRM to the owner and re-arms periodic timers. The
//! thread and its condition variable are host objects; a restored kernel
//! starts a fresh thread.
//!
//! `ITIMER_VIRTUAL` and `ITIMER_PROF` (CPU-time timers) are not
//! implemented: the sentry does not account guest CPU time (EINVAL).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use checkpoints::Stateify;

use super::kernel::Kernel;
use super::signal::{SigInfo, SIGALRM};
use super::thread_group::lock;
use super::time::Nanos;

/// An armed `ITIMER_REAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub struct ITimer {
    /// Expiry, sandbox monotonic nanoseconds.
    pub deadline: Nanos,
    /// Re-arm period (0: one-shot).
    pub interval: Nanos,
}

/// Wakes the timer thread when a timer changes. Host object.
#[derive(Debug, Default)]
pub struct TimerWake {
    /// Bumped on every change, so a change between the thread's scan and
    /// its sleep is not lost.
    generation: Mutex<u64>,
    cond: Condvar,
    started: Mutex<bool>,
}

impl TimerWake {
    /// Tells the timer thread to rescan.
    pub fn poke(&self) {
        *lock(&self.generation) += 1;
        self.cond.notify_all();
    }
}

/// Longest single sleep of the timer thread (it rescans at least this
/// often; keeps shutdown prompt).
const MAX_NAP: Duration = Duration::from_millis(500);

impl Kernel {
    /// Starts the timer thread (once per kernel). Without it `setitimer`
    /// and `alarm` would never fire, so a host that refuses the thread
    /// fails the start or restore instead.
    pub fn start_timers(self: &Arc<Self>) -> std::io::Result<()> {
        {
            let mut s = lock(&self.timers.started);
            if *s {
                return Ok(());
            }
            *s = true;
        }
        let k = self.clone();
        let spawned = std::thread::Builder::new()
            .name("itimers".into())
            .spawn(move || k.timer_loop());
        if let Err(e) = spawned {
            *lock(&self.timers.started) = false;
            return Err(e);
        }
        Ok(())
    }

    fn timer_loop(&self) {
        loop {
            let gen = *lock(&self.timers.generation);
            let next = {
                let mut ts = self.tasks();
                if ts.shutting_down {
                    return;
                }
                let now = self.clocks.monotonic();
                let mut due = Vec::new();
                let mut next: Option<Nanos> = None;
                for (pid, p) in ts.procs.iter_mut() {
                    let Some(t) = p.itimer_real.as_mut() else {
                        continue;
                    };
                    if p.zombie.is_some() {
                        continue;
                    }
                    if t.deadline <= now {
                        due.push(*pid);
                        if t.interval > 0 {
                            // Skip missed periods like Linux's hrtimer
                            // forwarding (one signal per expiry check).
                            let missed = (now - t.deadline) / t.interval + 1;
                            t.deadline += missed * t.interval;
                        } else {
                            p.itimer_real = None;
                            continue;
                        }
                    }
                    next = Some(next.map_or(t.deadline, |n: Nanos| n.min(t.deadline)));
                }
                for pid in due {
                    ts.send_to_process(pid, SigInfo::kernel(SIGALRM));
                }
                next.map(|n| n - now)
            };
            let nap = match next {
                Some(ns) => Duration::from_nanos(ns.max(0) as u64).min(MAX_NAP),
                None => MAX_NAP,
            };
            let g = lock(&self.timers.generation);
            if *g == gen {
                let _ = self.timers.cond.wait_timeout(g, nap);
            }
        }
    }
}
