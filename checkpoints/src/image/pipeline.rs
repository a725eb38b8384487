//! Worker pools over `std::thread::scope`, with bounded memory.
//!
//! - [`run_ordered`]: workers process jobs in parallel; the caller's thread
//!   consumes results strictly in job order (the image writer: chunks are
//!   compressed in parallel and written sequentially). At most `window`
//!   jobs are in flight or waiting to be consumed.
//! - [`run_fed`]: the caller's thread produces jobs (e.g. reading frames of
//!   a stream) into a bounded channel; workers consume them in any order
//!   (the restorer).
//!
//! A failing job or consumer stops the pool: no new jobs start, the first
//! error is returned. A panicking worker stops the pool too and the panic
//! is re-raised by the scope.
//!
//! Lock order: each pool has one mutex; it is never held while a job runs
//! or a result is consumed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Number of worker threads for a requested count (0 = one per core).
pub(crate) fn thread_count(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts up to `threads` (at least one) copies of `worker` in `scope`;
/// returns how many the host allowed.
fn spawn_workers<'scope, 'env, F>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    threads: usize,
    worker: F,
) -> usize
where
    F: Fn() + Copy + Send + 'scope,
{
    (0..threads.max(1))
        .filter(|_| {
            std::thread::Builder::new()
                .spawn_scoped(scope, worker)
                .is_ok()
        })
        .count()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking worker poisons nothing we rely on: the pool state is
    // consistent at every unlock, and the panic itself is re-raised.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Ordered<T, E> {
    /// Next job index to hand to a worker.
    next_job: usize,
    /// Number of results consumed.
    consumed: usize,
    /// Finished results not yet consumed.
    results: BTreeMap<usize, Result<T, E>>,
    /// Set on the first error or panic: workers take no new job.
    stop: bool,
    /// Set when a worker panicked: the consumer stops waiting.
    panicked: bool,
}

struct OrderedPool<T, E> {
    state: Mutex<Ordered<T, E>>,
    changed: Condvar,
}

/// Sets `stop`/`panicked` if the worker unwinds.
struct PanicGuard<'a, T, E>(&'a OrderedPool<T, E>);

impl<T, E> Drop for PanicGuard<'_, T, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut s = lock(&self.0.state);
            s.stop = true;
            s.panicked = true;
            self.0.changed.notify_all();
        }
    }
}

/// Runs `work` over `jobs` on `threads` workers (each with state from
/// `init`), and `consume` on the caller's thread in job order.
pub(crate) fn run_ordered<J, S, T, E>(
    jobs: &[J],
    threads: usize,
    window: usize,
    init: impl Fn() -> Result<S, E> + Sync,
    work: impl Fn(&mut S, &J) -> Result<T, E> + Sync,
    mut consume: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E>
where
    J: Sync,
    T: Send,
    E: Send,
{
    let pool = OrderedPool {
        state: Mutex::new(Ordered {
            next_job: 0,
            consumed: 0,
            results: BTreeMap::new(),
            stop: false,
            panicked: false,
        }),
        changed: Condvar::new(),
    };
    let window = window.max(1);
    let worker = || {
        let _guard = PanicGuard(&pool);
        let mut local = match init() {
            Ok(s) => Some(s),
            Err(e) => {
                // Report the failure as job 0's result so the consumer sees
                // it; other workers may still succeed in building state.
                let mut s = lock(&pool.state);
                if s.next_job < jobs.len() {
                    let idx = s.next_job;
                    s.next_job += 1;
                    s.results.insert(idx, Err(e));
                    pool.changed.notify_all();
                }
                None
            }
        };
        let Some(local) = local.as_mut() else { return };
        loop {
            let idx = {
                let mut s = lock(&pool.state);
                loop {
                    if s.stop || s.next_job >= jobs.len() {
                        return;
                    }
                    if s.next_job < s.consumed + window {
                        break;
                    }
                    s = pool.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
                s.next_job += 1;
                s.next_job - 1
            };
            let result = work(local, &jobs[idx]);
            let mut s = lock(&pool.state);
            s.results.insert(idx, result);
            pool.changed.notify_all();
        }
    };
    if jobs.is_empty() {
        return Ok(());
    }
    std::thread::scope(|scope| {
        if spawn_workers(scope, threads, worker) == 0 {
            // The host refused every worker thread: work on this one.
            let mut local = init()?;
            for (idx, job) in jobs.iter().enumerate() {
                consume(idx, work(&mut local, job)?)?;
            }
            return Ok(());
        }
        for idx in 0..jobs.len() {
            let result = {
                let mut s = lock(&pool.state);
                loop {
                    if let Some(r) = s.results.remove(&idx) {
                        break Some(r);
                    }
                    if s.panicked {
                        break None;
                    }
                    s = pool.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                }
            };
            // None: a worker panicked; leaving the scope re-raises it.
            let Some(result) = result else { return Ok(()) };
            let outcome = result.and_then(|t| consume(idx, t));
            let mut s = lock(&pool.state);
            s.consumed = idx + 1;
            if outcome.is_err() {
                s.stop = true;
            }
            pool.changed.notify_all();
            drop(s);
            outcome?;
        }
        Ok(())
    })
}

/// Runs `produce` on the caller's thread; every job it sends is processed
/// by one of `threads` workers. `send` returns `false` once the pool has
/// stopped (a worker failed): the producer should then return `Ok(())`.
/// At most `depth` jobs wait in the channel.
pub(crate) fn run_fed<J, S, E>(
    threads: usize,
    depth: usize,
    init: impl Fn() -> Result<S, E> + Sync,
    work: impl Fn(&mut S, J) -> Result<(), E> + Sync,
    produce: impl FnOnce(&mut dyn FnMut(J) -> bool) -> Result<(), E>,
) -> Result<(), E>
where
    J: Send,
    E: Send,
{
    let (tx, rx) = sync_channel::<J>(depth.max(1));
    // Taken (dropped) by the first worker that fails or panics, so a
    // producer blocked on a full channel wakes up with an error.
    let rx: Mutex<Option<Receiver<J>>> = Mutex::new(Some(rx));
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    let fail = |e: Option<E>| {
        stop.store(true, Ordering::SeqCst);
        if let Some(e) = e {
            lock(&first_error).get_or_insert(e);
        }
        drop(lock(&rx).take());
    };
    struct StopOnPanic<'a>(&'a (dyn Fn(()) + Sync));
    impl Drop for StopOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                (self.0)(());
            }
        }
    }
    let fail_unit = |()| fail(None);
    let worker = || {
        let _guard = StopOnPanic(&fail_unit);
        let mut local = match init() {
            Ok(s) => s,
            Err(e) => return fail(Some(e)),
        };
        loop {
            let job = {
                let guard = lock(&rx);
                match guard.as_ref().map(Receiver::recv) {
                    Some(Ok(job)) => job,
                    _ => return,
                }
            };
            if stop.load(Ordering::SeqCst) {
                continue;
            }
            if let Err(e) = work(&mut local, job) {
                return fail(Some(e));
            }
        }
    };
    let produced = std::thread::scope(|scope| {
        if spawn_workers(scope, threads, worker) == 0 {
            // The host refused every worker thread: work on this one.
            let mut local = init().map_err(|e| fail(Some(e))).ok();
            // Like the workers: nothing more runs once a job failed.
            let mut send = |job: J| {
                let Some(l) = local.as_mut().filter(|_| !stop.load(Ordering::SeqCst)) else {
                    return false;
                };
                work(l, job).map_err(|e| fail(Some(e))).is_ok()
            };
            return produce(&mut send);
        }
        let mut send = |job: J| !stop.load(Ordering::SeqCst) && tx.send(job).is_ok();
        let produced = produce(&mut send);
        drop(tx);
        produced
    });
    if let Some(e) = lock(&first_error).take() {
        return Err(e);
    }
    produced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_results_arrive_in_job_order() {
        let jobs: Vec<u64> = (0..100).collect();
        let mut seen = Vec::new();
        run_ordered(
            &jobs,
            4,
            3,
            || Ok::<_, ()>(()),
            |_, j| {
                std::thread::sleep(std::time::Duration::from_micros((100 - j) * 10));
                Ok(j * 2)
            },
            |i, t| {
                seen.push((i, t));
                Ok(())
            },
        )
        .unwrap();
        let expected: Vec<(usize, u64)> = (0..100).map(|i| (i as usize, i * 2)).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn ordered_stops_at_first_error_in_order() {
        let jobs: Vec<u32> = (0..50).collect();
        let mut consumed = 0;
        let r = run_ordered(
            &jobs,
            2,
            4,
            || Ok(()),
            |_, &j| if j == 10 || j == 20 { Err(j) } else { Ok(j) },
            |_, _| {
                consumed += 1;
                Ok(())
            },
        );
        assert_eq!((r, consumed), (Err(10), 10));
    }

    #[test]
    fn fed_reports_worker_error_and_unblocks_producer() {
        let r = run_fed(
            2,
            1,
            || Ok(()),
            |_, j: u32| if j == 3 { Err("bad job") } else { Ok(()) },
            |send| {
                for j in 0..1_000_000 {
                    if !send(j) {
                        return Ok(());
                    }
                }
                Ok(())
            },
        );
        assert_eq!(r, Err("bad job"));
    }

    #[test]
    fn fed_returns_producer_error() {
        let r: Result<(), &str> = run_fed(2, 2, || Ok(()), |_, _j: u32| Ok(()), |_| Err("eof"));
        assert_eq!(r, Err("eof"));
    }
}
