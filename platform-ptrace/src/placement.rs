//! Which CPU a tracer thread and its stub threads run on.
//!
//! A ptrace round trip wakes the other side twice; on the same CPU that is
//! a context switch, across CPUs an inter-processor wake-up that costs
//! several times more on this kind of VM (see the crate docs for numbers).

use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::CpuPinning;

/// The platform's placement policy, shared with every context (new
/// threads are placed by it too).
#[derive(Debug)]
pub(crate) struct Placement {
    pinning: CpuPinning,
    /// CPUs the process may run on when the platform was created.
    cpus: Vec<usize>,
    /// Next index into `cpus` (round-robin).
    next: AtomicUsize,
}

impl Placement {
    pub(crate) fn new(pinning: CpuPinning) -> std::io::Result<Placement> {
        let mask = sched_getaffinity(Pid::from_raw(0))?;
        Ok(Placement {
            pinning,
            cpus: cpus_of(&mask),
            next: AtomicUsize::new(0),
        })
    }

    /// Pins the calling thread to one CPU (round-robin) unless it already
    /// is pinned to a single one; returns the set to give its stub threads.
    /// `None` when pinning is off.
    pub(crate) fn pin_calling_thread(&self) -> std::io::Result<Option<CpuSet>> {
        if self.pinning == CpuPinning::None {
            return Ok(None);
        }
        let me = Pid::from_raw(0);
        let current = sched_getaffinity(me)?;
        if cpus_of(&current).len() == 1 || self.cpus.is_empty() {
            return Ok(Some(current));
        }
        let cpu = self.cpus[self.next.fetch_add(1, Ordering::Relaxed) % self.cpus.len()];
        let mut set = CpuSet::new();
        set.set(cpu)?;
        sched_setaffinity(me, &set)?;
        Ok(Some(set))
    }

    /// Moves stub thread `tid` to `cpus` (best effort: a stub in the wrong
    /// place is slower, not wrong).
    pub(crate) fn place_stub(tid: i32, cpus: &Option<CpuSet>) {
        if let Some(cpus) = cpus {
            if let Err(err) = sched_setaffinity(Pid::from_raw(tid), cpus) {
                tracing::debug!(tid, %err, "cannot pin stub thread");
            }
        }
    }
}

fn cpus_of(mask: &CpuSet) -> Vec<usize> {
    (0..CpuSet::count())
        .filter(|&cpu| mask.is_set(cpu).unwrap_or(false))
        .collect()
}
