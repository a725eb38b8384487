//! `epoll(7)`: an interest list of (fd, file description) pairs and the
//! readiness of each. Linux: fs/eventpoll.c.
//!
//! Level-triggered items are reported whenever their file is ready.
//! Edge-triggered items (`EPOLLET`) are reported when their file's wait
//! queue was notified since the last report *and* the file is ready: each
//! item keeps its own [`Waiter`] registered on its file's queue as a latch
//! (the analogue of Linux's `ep_poll_callback` marking an item ready).
//! `EPOLLONESHOT` disables an item after one report until `EPOLL_CTL_MOD`.
//!
//! Blocking is the kernel's: `epoll_wait` calls [`Epoll::collect`]; if it
//! returns nothing and the caller may block, it registers its waiter on
//! every item's file with [`Epoll::register`], collects again, and sleeps.
//!
//! An item refers to its description weakly, so closing the last fd of a
//! file removes it from every interest list, as in Linux. Nested epoll
//! (an epoll fd in an interest list) is refused with `EINVAL`.
//!
//! Lock order: `Epoll::items` → the files' own locks → `WaitQueue`.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::file::{FileDescription, FileKind};
use crate::waiter::{EventMask, WaitOutcome, Waiter, EVENT_ERR, EVENT_HUP};

/// Size of the packed x86-64 `struct epoll_event` (u32 events, u64 data).
pub const EPOLL_EVENT_SIZE: usize = 12;

const EPOLLET: u32 = libc::EPOLLET as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
/// Flags of `events` that are not event bits.
const CONTROL_BITS: u32 =
    EPOLLET | EPOLLONESHOT | libc::EPOLLEXCLUSIVE as u32 | libc::EPOLLWAKEUP as u32;

/// One reported event, as `epoll_wait` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

impl EpollEvent {
    /// The packed 12-byte `struct epoll_event`.
    pub fn to_bytes(self) -> [u8; EPOLL_EVENT_SIZE] {
        let mut b = [0u8; EPOLL_EVENT_SIZE];
        b[..4].copy_from_slice(&self.events.to_le_bytes());
        b[4..].copy_from_slice(&self.data.to_le_bytes());
        b
    }
}

/// An epoll instance.
#[derive(Debug, Default, Stateify)]
#[state(after_load = "rearm")]
pub struct Epoll {
    items: Mutex<Items>,
}

#[derive(Debug, Default, Stateify)]
struct Items {
    list: Vec<Item>,
    /// Where the next `collect` starts, so a small `maxevents` does not
    /// starve items late in the list.
    cursor: usize,
}

#[derive(Debug, Stateify)]
struct Item {
    fd: i32,
    file: Weak<FileDescription>,
    /// Requested events and control flags (`EPOLLET`, `EPOLLONESHOT`).
    events: u32,
    data: u64,
    /// A one-shot item that fired.
    disabled: bool,
    /// Latched by the file's queue on every notification. Host
    /// synchronization: not saved; `rearm` registers a fresh one, latched
    /// (a possibly spurious first report, which epoll allows).
    #[state(nosave)]
    notified: Arc<Waiter>,
}

impl Item {
    fn mask(&self) -> EventMask {
        (self.events & !CONTROL_BITS) | EVENT_ERR | EVENT_HUP
    }

    /// Registers the latch on the file's queue and sets it, so a ready
    /// file is reported by the next collect.
    fn arm(&self) {
        if let Some(f) = self.file.upgrade() {
            if let Some(q) = f.wait_queue() {
                q.add(&self.notified, self.mask());
            }
        }
        self.notified.wake();
    }

    fn disarm(&self) {
        if let Some(f) = self.file.upgrade() {
            if let Some(q) = f.wait_queue() {
                q.remove(&self.notified);
            }
        }
    }
}

/// Keeps a task's waiter registered on every item's file while it sleeps
/// in `epoll_wait`; unregisters on drop.
pub struct EpollRegistration {
    files: Vec<Arc<FileDescription>>,
    waiter: Arc<Waiter>,
}

impl Drop for EpollRegistration {
    fn drop(&mut self) {
        for f in &self.files {
            if let Some(q) = f.wait_queue() {
                q.remove(&self.waiter);
            }
        }
    }
}

impl Epoll {
    /// An empty interest list.
    pub fn new() -> Epoll {
        Epoll::default()
    }

    fn lock(&self) -> MutexGuard<'_, Items> {
        // Poisoning: every critical section leaves the list consistent.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// after_load: re-registers every item's latch on its file's queue.
    fn rearm(&self) {
        for item in &self.lock().list {
            item.arm();
        }
    }

    /// `epoll_ctl(2)`: `op` is `EPOLL_CTL_ADD`, `_MOD` or `_DEL`; `file` is
    /// the description behind `fd`.
    pub fn ctl(
        &self,
        op: i32,
        fd: i32,
        file: &Arc<FileDescription>,
        events: u32,
        data: u64,
    ) -> SysResult<()> {
        if matches!(file.kind(), FileKind::Epoll(_)) {
            return Err(Errno::EINVAL.because("nested epoll is not supported"));
        }
        if file.wait_queue().is_none() {
            // Linux: files without ->poll (regular files, directories).
            return Err(Errno::EPERM.because("file does not support epoll"));
        }
        let mut items = self.lock();
        let pos = items
            .list
            .iter()
            .position(|i| i.fd == fd && std::ptr::eq(i.file.as_ptr(), Arc::as_ptr(file)));
        match (op, pos) {
            (libc::EPOLL_CTL_ADD, Some(_)) => Err(Errno::EEXIST),
            (libc::EPOLL_CTL_ADD, None) => {
                let item = Item {
                    fd,
                    file: Arc::downgrade(file),
                    events,
                    data,
                    disabled: false,
                    notified: Waiter::new(),
                };
                item.arm();
                items.list.push(item);
                Ok(())
            }
            (libc::EPOLL_CTL_MOD, Some(p)) => {
                let item = &mut items.list[p];
                item.disarm();
                item.events = events;
                item.data = data;
                item.disabled = false;
                item.arm();
                Ok(())
            }
            (libc::EPOLL_CTL_DEL, Some(p)) => {
                items.list.remove(p).disarm();
                Ok(())
            }
            (libc::EPOLL_CTL_MOD | libc::EPOLL_CTL_DEL, None) => Err(Errno::ENOENT),
            _ => Err(Errno::EINVAL.because("bad epoll_ctl op")),
        }
    }

    /// Up to `max` ready events (`epoll_wait` without blocking).
    pub fn collect(&self, max: usize) -> Vec<EpollEvent> {
        let mut items = self.lock();
        items.list.retain(|i| i.file.strong_count() > 0);
        let n = items.list.len();
        let mut out = Vec::new();
        if n == 0 || max == 0 {
            return out;
        }
        let start = items.cursor % n;
        let mut next_cursor = start;
        for k in 0..n {
            let idx = (start + k) % n;
            let item = &mut items.list[idx];
            if item.disabled {
                continue;
            }
            let Some(f) = item.file.upgrade() else {
                continue;
            };
            if item.events & EPOLLET != 0
                && item.notified.wait(Some(Instant::now())) != WaitOutcome::Woken
            {
                continue;
            }
            let ready = f.readiness(item.mask()) & item.mask();
            if ready == 0 {
                continue;
            }
            out.push(EpollEvent {
                events: ready,
                data: item.data,
            });
            if item.events & EPOLLONESHOT != 0 {
                item.disabled = true;
            }
            next_cursor = idx + 1;
            if out.len() == max {
                break;
            }
        }
        items.cursor = next_cursor;
        out
    }

    /// Whether any item is ready (poll of the epoll fd itself; edge
    /// latches are not consumed).
    pub fn readiness(&self, mask: EventMask) -> EventMask {
        let items = self.lock();
        let any = items.list.iter().any(|i| {
            !i.disabled
                && i.file
                    .upgrade()
                    .is_some_and(|f| f.readiness(i.mask()) & i.mask() != 0)
        });
        if any {
            mask & crate::waiter::EVENT_IN
        } else {
            0
        }
    }

    /// Registers `waiter` on every item's file for that item's events.
    pub fn register(&self, waiter: &Arc<Waiter>) -> EpollRegistration {
        let items = self.lock();
        let mut files = Vec::new();
        for i in &items.list {
            if let Some(f) = i.file.upgrade() {
                if let Some(q) = f.wait_queue() {
                    q.add(waiter, i.mask());
                    files.push(f);
                }
            }
        }
        EpollRegistration {
            files,
            waiter: waiter.clone(),
        }
    }

    /// Number of items (for tests and `/proc/<pid>/fdinfo`).
    pub fn len(&self) -> usize {
        self.lock().list.len()
    }

    /// Whether the interest list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        for item in &self.lock().list {
            item.disarm();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiter::{EVENT_IN, EVENT_OUT};

    const IN: u32 = EVENT_IN;

    fn pipe() -> (Arc<FileDescription>, Arc<FileDescription>) {
        FileDescription::new_pipe(0)
    }

    #[test]
    fn level_triggered_reports_while_ready() {
        let ep = Epoll::new();
        let (r, w) = pipe();
        ep.ctl(libc::EPOLL_CTL_ADD, 3, &r, IN, 33).unwrap();
        assert!(ep.collect(8).is_empty());
        w.write(b"x").unwrap();
        assert_eq!(
            ep.collect(8),
            vec![EpollEvent {
                events: IN,
                data: 33
            }]
        );
        assert_eq!(ep.collect(8).len(), 1);
        r.read(&mut [0u8; 1]).unwrap();
        assert!(ep.collect(8).is_empty());
    }

    #[test]
    fn edge_triggered_reports_once_per_new_event() {
        let ep = Epoll::new();
        let (r, w) = pipe();
        ep.ctl(libc::EPOLL_CTL_ADD, 3, &r, IN | EPOLLET, 1).unwrap();
        w.write(b"a").unwrap();
        assert_eq!(ep.collect(8).len(), 1);
        assert!(ep.collect(8).is_empty(), "no new event, still ready");
        w.write(b"b").unwrap();
        assert_eq!(ep.collect(8).len(), 1, "a new write is a new edge");
    }

    #[test]
    fn oneshot_disables_until_mod() {
        let ep = Epoll::new();
        let (r, w) = pipe();
        w.write(b"a").unwrap();
        ep.ctl(libc::EPOLL_CTL_ADD, 3, &r, IN | EPOLLONESHOT, 1)
            .unwrap();
        assert_eq!(ep.collect(8).len(), 1);
        assert!(ep.collect(8).is_empty());
        ep.ctl(libc::EPOLL_CTL_MOD, 3, &r, IN | EPOLLONESHOT, 2)
            .unwrap();
        assert_eq!(
            ep.collect(8),
            vec![EpollEvent {
                events: IN,
                data: 2
            }]
        );
    }

    #[test]
    fn ctl_errors_follow_linux() {
        let ep = Epoll::new();
        let (r, _w) = pipe();
        ep.ctl(libc::EPOLL_CTL_ADD, 3, &r, IN, 0).unwrap();
        assert_eq!(
            ep.ctl(libc::EPOLL_CTL_ADD, 3, &r, IN, 0).unwrap_err(),
            Errno::EEXIST
        );
        assert_eq!(
            ep.ctl(libc::EPOLL_CTL_DEL, 4, &r, 0, 0).unwrap_err(),
            Errno::ENOENT
        );
        let null = FileDescription::new(
            FileKind::Device(crate::vfs::dev::DevKind::Null),
            libc::O_RDWR as u32,
            b"/dev/null".to_vec(),
        );
        assert_eq!(
            ep.ctl(libc::EPOLL_CTL_ADD, 5, &null, IN, 0)
                .unwrap_err()
                .code(),
            libc::EPERM
        );
        ep.ctl(libc::EPOLL_CTL_DEL, 3, &r, 0, 0).unwrap();
        assert!(ep.is_empty());
    }

    #[test]
    fn closing_the_last_reference_removes_the_item() {
        let ep = Epoll::new();
        let (r, w) = pipe();
        ep.ctl(libc::EPOLL_CTL_ADD, 3, &w, EVENT_OUT, 0).unwrap();
        assert_eq!(ep.collect(8).len(), 1);
        drop(w);
        assert!(ep.collect(8).is_empty());
        assert!(ep.is_empty());
        drop(r);
    }

    #[test]
    fn maxevents_rotates_so_no_item_starves() {
        let ep = Epoll::new();
        let pipes: Vec<_> = (0..3).map(|_| pipe()).collect();
        for (i, (r, w)) in pipes.iter().enumerate() {
            w.write(b"x").unwrap();
            ep.ctl(libc::EPOLL_CTL_ADD, i as i32, r, IN, i as u64)
                .unwrap();
        }
        let seen: Vec<u64> = (0..3).map(|_| ep.collect(1)[0].data).collect();
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[test]
    fn registered_waiter_is_woken_by_a_write() {
        let ep = Epoll::new();
        let (r, w) = pipe();
        ep.ctl(libc::EPOLL_CTL_ADD, 3, &r, IN, 0).unwrap();
        let waiter = Waiter::new();
        let reg = ep.register(&waiter);
        w.write(b"x").unwrap();
        assert_eq!(waiter.wait(Some(Instant::now())), WaitOutcome::Woken);
        drop(reg);
        w.write(b"y").unwrap();
        assert_eq!(waiter.wait(Some(Instant::now())), WaitOutcome::TimedOut);
    }

    #[test]
    fn event_bytes_are_the_packed_layout() {
        let b = EpollEvent {
            events: 0x11,
            data: 0x0102_0304_0506_0708,
        }
        .to_bytes();
        assert_eq!(b, [0x11, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    }
}
