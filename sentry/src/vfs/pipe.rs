//! Pipes: a bounded byte buffer between reader and writer file
//! descriptions. Linux: fs/pipe.c, pipe(7).
//!
//! Reader and writer counts are counts of *open file descriptions*, like
//! Linux's `pipe->readers/writers`: a [`PipeEnd`] increments on creation
//! and decrements on drop, so dup, fork (both share the description) and
//! close are followed without the fd table knowing about pipes.
//!
//! Nothing here blocks: `read`/`write` return `EAGAIN` and the caller waits
//! on [`Pipe::queue`], which is notified on every state change.
//!
//! Lock order: `Pipe::state` → `WaitQueue` (notifications are sent after
//! `state` is released).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::overlay::Node;
use crate::waiter::{EventMask, WaitQueue, EVENT_ERR, EVENT_HUP, EVENT_IN, EVENT_OUT};

/// Writes of at most this many bytes are atomic (`PIPE_BUF`).
pub const PIPE_BUF: usize = 4096;
/// Default capacity (16 pages, like Linux).
pub const DEFAULT_PIPE_SIZE: usize = 65536;
/// Largest capacity `F_SETPIPE_SZ` accepts (`/proc/sys/fs/pipe-max-size`).
pub const MAX_PIPE_SIZE: usize = 1 << 20;

/// The device number pipes report (`pipefs`).
pub const PIPEFS_DEV: u64 = 0x0c;

static NEXT_PIPE_INO: AtomicU64 = AtomicU64::new(1000);

/// A pipe.
#[derive(Debug, Stateify)]
#[state(after_load = "reserve_ino")]
pub struct Pipe {
    /// Inode number shown in `pipe:[ino]` and `fstat`.
    ino: u64,
    state: Mutex<PipeState>,
    /// Readers wait for `EVENT_IN`, writers for `EVENT_OUT`. Host
    /// synchronization, not saved: waiters re-register after restore.
    #[state(nosave)]
    queue: WaitQueue,
}

/// The mutable part of a pipe, protected by `Pipe::state`.
#[derive(Debug, Stateify)]
struct PipeState {
    buf: VecDeque<u8>,
    capacity: usize,
    /// Open read-end file descriptions.
    readers: usize,
    /// Open write-end file descriptions.
    writers: usize,
    /// Read ends ever opened (a FIFO writer waits for this to change).
    readers_opened: u64,
    /// Write ends ever opened (a FIFO reader waits for this to change).
    writers_opened: u64,
}

/// One end of a pipe, owned by a file description. The saved reader
/// and writer counts already include every restored end.
#[derive(Debug, Stateify)]
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    /// Counts as a reader (read end, or a FIFO opened `O_RDWR`).
    reads: bool,
    /// Counts as a writer.
    writes: bool,
    /// The FIFO node this end was opened through (named pipes).
    node: Option<Arc<Node>>,
    /// The peer side's `*_opened` count when this end was opened: a FIFO
    /// open waits until the other side has opened since.
    peer_snapshot: u64,
}

impl Pipe {
    /// A pipe with no ends yet (a FIFO's).
    pub fn new() -> Arc<Pipe> {
        Arc::new(Pipe {
            ino: NEXT_PIPE_INO.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(PipeState {
                buf: VecDeque::new(),
                capacity: DEFAULT_PIPE_SIZE,
                readers: 0,
                writers: 0,
                readers_opened: 0,
                writers_opened: 0,
            }),
            queue: WaitQueue::new(),
        })
    }

    /// A new pipe and its (read end, write end).
    pub fn new_pair() -> (PipeEnd, PipeEnd) {
        let pipe = Pipe::new();
        (
            PipeEnd::new(&pipe, true, false, None),
            PipeEnd::new(&pipe, false, true, None),
        )
    }

    /// Opens an end of a FIFO's pipe (`node` is the FIFO).
    pub fn open_fifo_end(self: &Arc<Pipe>, reads: bool, writes: bool, node: Arc<Node>) -> PipeEnd {
        PipeEnd::new(self, reads, writes, Some(node))
    }

    /// Whether any read end is open (a non-blocking FIFO writer open
    /// fails with `ENXIO` without one).
    pub fn has_readers(&self) -> bool {
        self.lock().readers > 0
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        // Poisoning: every mutation keeps the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// after_load: new pipes must not reuse a restored pipe's inode number.
    fn reserve_ino(&self) {
        NEXT_PIPE_INO.fetch_max(self.ino + 1, Ordering::Relaxed);
    }

    /// The pipe's inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// The queue readers and writers wait on.
    pub fn queue(&self) -> &WaitQueue {
        &self.queue
    }
}

impl PipeEnd {
    fn new(pipe: &Arc<Pipe>, reads: bool, writes: bool, node: Option<Arc<Node>>) -> PipeEnd {
        let peer_snapshot = {
            let mut s = pipe.lock();
            if s.readers == 0 && s.writers == 0 {
                // Linux frees a pipe with its last end: a FIFO reopened
                // later starts empty.
                s.buf.clear();
            }
            if reads {
                s.readers += 1;
                s.readers_opened += 1;
            }
            if writes {
                s.writers += 1;
                s.writers_opened += 1;
            }
            match (reads, writes) {
                (true, false) => s.writers_opened,
                (false, true) => s.readers_opened,
                _ => 0,
            }
        };
        // FIFO openers waiting for this side wake up.
        pipe.queue.notify(EVENT_IN | EVENT_OUT);
        PipeEnd {
            pipe: pipe.clone(),
            reads,
            writes,
            node,
            peer_snapshot,
        }
    }

    /// Another end of the same pipe (a reopen through `/proc/<pid>/fd`).
    pub fn reopen(&self, write: bool) -> PipeEnd {
        PipeEnd::new(&self.pipe, !write, write, self.node.clone())
    }

    /// The FIFO node, for ends opened by path.
    pub fn fifo_node(&self) -> Option<&Arc<Node>> {
        self.node.as_ref()
    }

    /// A FIFO end opened without `O_NONBLOCK` waits (in `open`) until the
    /// other side has been opened: readers for a writer, writers for a
    /// reader. Linux: fs/pipe.c `fifo_open` / `wait_for_partner`.
    pub fn waiting_for_partner(&self) -> bool {
        let s = self.pipe.lock();
        match (self.reads, self.writes) {
            (true, false) => s.writers == 0 && s.writers_opened == self.peer_snapshot,
            (false, true) => s.readers == 0 && s.readers_opened == self.peer_snapshot,
            _ => false,
        }
    }

    /// The pipe.
    pub fn pipe(&self) -> &Arc<Pipe> {
        &self.pipe
    }

    /// Whether this is (only) the write end.
    pub fn is_write_end(&self) -> bool {
        self.writes && !self.reads
    }

    /// Reads up to `buf.len()` bytes. `Ok(0)` is end of file (empty, no
    /// writers); `EAGAIN` means "would block".
    pub fn read(&self, buf: &mut [u8]) -> SysResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = self.pipe.lock();
        if s.buf.is_empty() {
            return if s.writers == 0 {
                Ok(0)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        let n = buf.len().min(s.buf.len());
        for (dst, src) in buf.iter_mut().zip(s.buf.drain(..n)) {
            *dst = src;
        }
        drop(s);
        self.pipe.queue.notify(EVENT_OUT);
        Ok(n)
    }

    /// Writes `buf`: all of it if it is at most [`PIPE_BUF`] bytes and fits
    /// (else `EAGAIN`, nothing written); otherwise as much as fits, at
    /// least one byte (else `EAGAIN`). `EPIPE` when no reader is left (the
    /// kernel then sends `SIGPIPE`). A blocking write loops on the rest.
    pub fn write(&self, buf: &[u8]) -> SysResult<usize> {
        let mut s = self.pipe.lock();
        if s.readers == 0 {
            return Err(Errno::EPIPE);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let free = s.capacity.saturating_sub(s.buf.len());
        let n = if buf.len() <= PIPE_BUF {
            if free < buf.len() {
                return Err(Errno::EAGAIN);
            }
            buf.len()
        } else {
            if free == 0 {
                return Err(Errno::EAGAIN);
            }
            buf.len().min(free)
        };
        s.buf.extend(&buf[..n]);
        drop(s);
        self.pipe.queue.notify(EVENT_IN);
        Ok(n)
    }

    /// Bytes available to read (`FIONREAD`).
    pub fn readable_bytes(&self) -> usize {
        self.pipe.lock().buf.len()
    }

    /// The capacity (`F_GETPIPE_SZ`).
    pub fn capacity(&self) -> usize {
        self.pipe.lock().capacity
    }

    /// `F_SETPIPE_SZ`: rounds up to a power of two of pages; `EBUSY` if
    /// the data does not fit. Returns the new capacity.
    pub fn set_capacity(&self, size: usize) -> SysResult<usize> {
        if size > MAX_PIPE_SIZE {
            return Err(Errno::EPERM.because("pipe size above pipe-max-size"));
        }
        let size = size.max(PIPE_BUF).next_power_of_two();
        let mut s = self.pipe.lock();
        if s.buf.len() > size {
            return Err(Errno::EBUSY);
        }
        s.capacity = size;
        drop(s);
        self.pipe.queue.notify(EVENT_OUT);
        Ok(size)
    }

    /// Ready events of this end among `mask`. Linux: `pipe_poll()`.
    pub fn readiness(&self, mask: EventMask) -> EventMask {
        let s = self.pipe.lock();
        let mut ev = 0;
        if self.writes {
            if s.capacity - s.buf.len().min(s.capacity) >= PIPE_BUF.min(s.capacity) {
                ev |= EVENT_OUT;
            }
            if s.readers == 0 {
                ev |= EVENT_ERR;
            }
        }
        if self.reads {
            if !s.buf.is_empty() {
                ev |= EVENT_IN;
            }
            // Linux: no HUP for a FIFO reader that never had a writer.
            if s.writers == 0 && (self.node.is_none() || s.writers_opened > self.peer_snapshot) {
                ev |= EVENT_HUP;
            }
        }
        // ERR and HUP are always reported, like poll(2).
        ev & (mask | EVENT_ERR | EVENT_HUP)
    }
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut s = self.pipe.lock();
        if self.writes {
            s.writers = s.writers.saturating_sub(1);
        }
        if self.reads {
            s.readers = s.readers.saturating_sub(1);
        }
        drop(s);
        // Readers see EOF/HUP, writers see EPIPE/ERR.
        self.pipe
            .queue
            .notify(EVENT_IN | EVENT_OUT | EVENT_HUP | EVENT_ERR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiter::{Registration, WaitOutcome, Waiter};
    use std::time::Instant;

    #[test]
    fn data_flows_in_order_and_eof_after_writers_close() {
        let (r, w) = Pipe::new_pair();
        assert_eq!(w.write(b"hello ").unwrap(), 6);
        assert_eq!(w.write(b"world").unwrap(), 5);
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 8);
        assert_eq!(&buf, b"hello wo");
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert_eq!(r.read(&mut buf).unwrap_err().code(), libc::EAGAIN);
        w.write(b"!").unwrap();
        drop(w);
        // Data written before the last writer closed is still delivered.
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        assert_eq!(r.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn empty_pipe_with_writer_would_block() {
        let (r, _w) = Pipe::new_pair();
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf).unwrap_err().code(), libc::EAGAIN);
    }

    #[test]
    fn write_without_readers_is_epipe() {
        let (r, w) = Pipe::new_pair();
        drop(r);
        assert_eq!(w.write(b"x").unwrap_err(), Errno::EPIPE);
        assert_ne!(w.readiness(EVENT_OUT) & EVENT_ERR, 0);
    }

    #[test]
    fn small_writes_are_atomic_large_writes_partial() {
        let (r, w) = Pipe::new_pair();
        let big = vec![1u8; DEFAULT_PIPE_SIZE - 100];
        assert_eq!(w.write(&big).unwrap(), DEFAULT_PIPE_SIZE - 100);
        // 200 bytes ≤ PIPE_BUF do not fit in the 100 left: nothing written.
        assert_eq!(w.write(&[2u8; 200]).unwrap_err().code(), libc::EAGAIN);
        assert_eq!(r.readable_bytes(), DEFAULT_PIPE_SIZE - 100);
        // A write above PIPE_BUF takes what fits.
        assert_eq!(w.write(&[3u8; 5000]).unwrap(), 100);
        assert_eq!(r.readable_bytes(), DEFAULT_PIPE_SIZE);
    }

    #[test]
    fn readiness_tracks_data_and_closed_ends() {
        let (r, w) = Pipe::new_pair();
        assert_eq!(r.readiness(EVENT_IN), 0);
        assert_eq!(w.readiness(EVENT_OUT), EVENT_OUT);
        w.write(b"x").unwrap();
        assert_eq!(r.readiness(EVENT_IN), EVENT_IN);
        drop(w);
        assert_eq!(r.readiness(EVENT_IN), EVENT_IN | EVENT_HUP);
    }

    #[test]
    fn write_and_writer_close_wake_a_waiting_reader() {
        let (r, w) = Pipe::new_pair();
        let waiter = Waiter::new();
        let _reg = Registration::new(r.pipe().queue(), &waiter, EVENT_IN);
        w.write(b"x").unwrap();
        assert_eq!(waiter.wait(Some(Instant::now())), WaitOutcome::Woken);
        drop(w);
        assert_eq!(waiter.wait(Some(Instant::now())), WaitOutcome::Woken);
    }

    #[test]
    fn read_wakes_a_waiting_writer() {
        let (r, w) = Pipe::new_pair();
        let waiter = Waiter::new();
        let _reg = Registration::new(w.pipe().queue(), &waiter, EVENT_OUT);
        w.write(b"x").unwrap();
        assert_eq!(waiter.wait(Some(Instant::now())), WaitOutcome::TimedOut);
        r.read(&mut [0u8; 1]).unwrap();
        assert_eq!(waiter.wait(Some(Instant::now())), WaitOutcome::Woken);
    }
}
