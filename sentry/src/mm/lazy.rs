//! Lazy memory: the pages of a restored memory file whose contents are
//! still in the checkpoint image.
//!
//! A lazy restore checks every chunk of the image, starts the guest, and
//! only then copies memory into the memory file: a chunk is loaded on the
//! first access to any of its pages (a stub fault, a copy-in/out, a
//! copy-on-write, a free, a checkpoint), and a background thread loads the
//! rest in order. The guest's first instruction does not wait for the
//! memory of the whole sandbox, and a sandbox that never touches most of
//! its memory (`on-demand`) never pays for it.
//!
//! Invariant: no byte of a pending chunk's runs is read, written, mapped
//! into a stub or freed before [`LazyMemory::ensure`] returned `Ok` for a
//! range covering it. [`super::MemoryFile`] calls it at every access path;
//! afterwards the chunk's bytes are never written by this module again.
//! Pages that are not in any chunk (zero pages and free pages) read as
//! zero in the fresh memory file and need nothing.
//!
//! Lock order: a chunk's `lock` is taken with any `MemoryManager` lock
//! held, and possibly inside the `MemoryFile` allocator lock (a decref
//! that frees pending pages); a load never takes either. `source` is a
//! leaf held only to clone or drop the loader.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Error of one chunk load, from the [`ChunkLoad`] implementation.
pub type ChunkLoadError = Box<dyn std::error::Error + Send + Sync>;

/// Writes one run of loaded bytes at a memory-file offset.
pub type RunWriter<'a> = &'a (dyn Fn(u64, &[u8]) -> std::io::Result<()> + Sync);

/// Where pending chunks come from (the checkpoint image).
pub trait ChunkLoad: Send + Sync {
    /// Loads chunk `index`: checks it and passes each of its runs to
    /// `write`, only if the check passed.
    fn load(&self, index: usize, write: RunWriter<'_>) -> Result<(), ChunkLoadError>;
}

/// Why a lazy memory table was refused (the image's manifest and the
/// restored memory file disagree).
#[derive(Debug, thiserror::Error)]
pub enum LazyTableError {
    #[error("memory chunk {chunk} has a run at {offset:#x}+{len:#x} outside the memory file ({size:#x} bytes) or not page-aligned")]
    OutOfRange {
        chunk: usize,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("memory chunks {a} and {b} overlap at {offset:#x}")]
    Overlap { a: usize, b: usize, offset: u64 },
}

/// A load that failed: the memory of these pages is lost for this
/// sandbox (the image stays as it was).
#[derive(Debug, thiserror::Error)]
#[error("memory chunk {chunk} of the image could not be loaded: {message}")]
pub struct ChunkLost {
    pub chunk: usize,
    pub message: String,
}

const PENDING: u8 = 0;
const LOADED: u8 = 1;
const FAILED: u8 = 2;

#[derive(Clone, Copy, Debug)]
struct Run {
    offset: u64,
    len: u64,
    chunk: usize,
}

struct Slot {
    /// `PENDING`, `LOADED` or `FAILED`; changes only under `lock`, from
    /// `PENDING`.
    state: AtomicU8,
    /// Held while the chunk loads, so a second accessor waits for it.
    lock: Mutex<()>,
}

/// Counters of a lazy restore (for `sbx restore --json` and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LazyStats {
    pub chunks: usize,
    pub loaded_on_access: usize,
    pub loaded_in_background: usize,
    pub failed: usize,
    pub bytes_loaded: u64,
}

/// The pending chunks of one memory file. Shared (`Arc`) by the memory
/// file and the background loader.
pub struct LazyMemory {
    /// Every run of every chunk, ascending by offset, disjoint.
    runs: Vec<Run>,
    /// Per chunk, by index.
    slots: Vec<Slot>,
    /// Bytes of each chunk's runs, by index.
    chunk_bytes: Vec<u64>,
    /// Chunks still `PENDING`.
    pending: AtomicUsize,
    /// Set once `pending` reached 0: the accessors' only check from then on.
    complete: AtomicBool,
    /// The loader; dropped (closing the image) once complete.
    source: Mutex<Option<Arc<dyn ChunkLoad>>>,
    /// Next chunk the background loader looks at.
    cursor: AtomicUsize,
    loaded_on_access: AtomicUsize,
    loaded_in_background: AtomicUsize,
    failed: AtomicUsize,
    bytes_loaded: AtomicU64,
}

impl std::fmt::Debug for LazyMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyMemory")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Who asked for a chunk (for the counters).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Access,
    Background,
}

impl LazyMemory {
    /// A table of `chunks` (by index: the runs `(offset, len)` of each,
    /// bytes in the memory file) for a memory file of `size` bytes.
    pub fn new(
        chunks: Vec<Vec<(u64, u64)>>,
        size: u64,
        source: Arc<dyn ChunkLoad>,
    ) -> Result<LazyMemory, LazyTableError> {
        let page = super::PAGE_SIZE;
        let mut runs = Vec::new();
        let chunk_bytes = chunks
            .iter()
            .map(|rs| rs.iter().map(|&(_, l)| l).fold(0u64, u64::saturating_add))
            .collect();
        for (chunk, rs) in chunks.iter().enumerate() {
            for &(offset, len) in rs {
                if !offset.is_multiple_of(page)
                    || !len.is_multiple_of(page)
                    || offset.checked_add(len).is_none_or(|e| e > size)
                {
                    return Err(LazyTableError::OutOfRange {
                        chunk,
                        offset,
                        len,
                        size,
                    });
                }
                if len > 0 {
                    runs.push(Run { offset, len, chunk });
                }
            }
        }
        runs.sort_by_key(|r| r.offset);
        for w in runs.windows(2) {
            if w[0].offset + w[0].len > w[1].offset {
                return Err(LazyTableError::Overlap {
                    a: w[0].chunk,
                    b: w[1].chunk,
                    offset: w[1].offset,
                });
            }
        }
        let slots: Vec<Slot> = (0..chunks.len())
            .map(|_| Slot {
                state: AtomicU8::new(PENDING),
                lock: Mutex::new(()),
            })
            .collect();
        let lazy = LazyMemory {
            runs,
            pending: AtomicUsize::new(slots.len()),
            complete: AtomicBool::new(slots.is_empty()),
            slots,
            chunk_bytes,
            source: Mutex::new(Some(source)),
            cursor: AtomicUsize::new(0),
            loaded_on_access: AtomicUsize::new(0),
            loaded_in_background: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            bytes_loaded: AtomicU64::new(0),
        };
        if lazy.is_complete() {
            lazy.drop_source();
        }
        Ok(lazy)
    }

    /// Whether every chunk was loaded (or failed): no access needs to wait.
    #[inline]
    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> LazyStats {
        LazyStats {
            chunks: self.slots.len(),
            loaded_on_access: self.loaded_on_access.load(Ordering::Relaxed),
            loaded_in_background: self.loaded_in_background.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes_loaded: self.bytes_loaded.load(Ordering::Relaxed),
        }
    }

    /// Makes `[off, off+len)` of the memory file hold its saved contents:
    /// loads every pending chunk with a run overlapping it, through
    /// `write`. Errs if one of them cannot be loaded (now or earlier).
    pub fn ensure(&self, off: u64, len: u64, write: RunWriter<'_>) -> Result<(), ChunkLost> {
        // Once complete, only a failed chunk can make an access fail.
        if self.is_complete() && self.failed.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let end = off.saturating_add(len);
        let mut i = self.runs.partition_point(|r| r.offset + r.len <= off);
        while let Some(r) = self.runs.get(i) {
            if r.offset >= end {
                break;
            }
            self.load(r.chunk, write, Why::Access)?;
            i += 1;
        }
        Ok(())
    }

    /// Loads the next pending chunk in order (the background loader's
    /// step). Returns `false` once there is none left.
    pub fn load_next(&self, write: RunWriter<'_>) -> bool {
        loop {
            if self.is_complete() {
                return false;
            }
            let i = self.cursor.fetch_add(1, Ordering::Relaxed);
            if i >= self.slots.len() {
                return false;
            }
            if self.slots[i].state.load(Ordering::Acquire) != PENDING {
                continue;
            }
            // A failure was logged and counted by `load`; go on with the
            // others (an access to the failed one reports it).
            let _ = self.load(i, write, Why::Background);
            return true;
        }
    }

    /// Loads every pending chunk (a checkpoint, or an eager restore).
    pub fn load_all(&self, write: RunWriter<'_>) -> Result<(), ChunkLost> {
        let mut first = None;
        for i in 0..self.slots.len() {
            if let Err(e) = self.load(i, write, Why::Access) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The outcome of chunk `chunk` if it is no longer pending.
    fn settled(&self, chunk: usize) -> Option<Result<(), ChunkLost>> {
        match self.slots[chunk].state.load(Ordering::Acquire) {
            LOADED => Some(Ok(())),
            FAILED => Some(Err(lost(chunk, "an earlier load failed"))),
            _ => None,
        }
    }

    fn load(&self, chunk: usize, write: RunWriter<'_>, why: Why) -> Result<(), ChunkLost> {
        if let Some(done) = self.settled(chunk) {
            return done;
        }
        let slot = &self.slots[chunk];
        // A panic while loading left the state PENDING; retrying is right.
        let _held = slot.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = self.settled(chunk) {
            return done;
        }
        let source = self
            .source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let result = match source {
            Some(s) => s
                .load(chunk, write)
                .map_err(|e| lost(chunk, &e.to_string())),
            None => Err(lost(chunk, "the image was released")),
        };
        match &result {
            Ok(()) => {
                self.bytes_loaded
                    .fetch_add(self.chunk_bytes[chunk], Ordering::Relaxed);
                match why {
                    Why::Access => &self.loaded_on_access,
                    Why::Background => &self.loaded_in_background,
                }
                .fetch_add(1, Ordering::Relaxed);
                slot.state.store(LOADED, Ordering::Release);
            }
            Err(e) => {
                tracing::error!("lazy restore: {e}; processes touching these pages are killed");
                self.failed.fetch_add(1, Ordering::Relaxed);
                slot.state.store(FAILED, Ordering::Release);
            }
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.complete.store(true, Ordering::Release);
            self.drop_source();
            tracing::debug!(stats = ?self.stats(), "lazy restore complete");
        }
        result
    }

    fn drop_source(&self) {
        self.source.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn lost(chunk: usize, message: &str) -> ChunkLost {
    ChunkLost {
        chunk,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = super::super::PAGE_SIZE;

    /// Chunk i fills its runs with byte i+1; chunk `bad` fails.
    struct Fake {
        table: Vec<Vec<(u64, u64)>>,
        bad: Option<usize>,
        calls: Mutex<Vec<usize>>,
    }

    impl ChunkLoad for Fake {
        fn load(&self, index: usize, write: RunWriter<'_>) -> Result<(), ChunkLoadError> {
            self.calls.lock().unwrap().push(index);
            if Some(index) == self.bad {
                return Err("checksum mismatch".into());
            }
            for &(o, l) in &self.table[index] {
                write(o, &vec![index as u8 + 1; l as usize])?;
            }
            Ok(())
        }
    }

    fn setup(bad: Option<usize>) -> (LazyMemory, Arc<Fake>, Mutex<Vec<u8>>) {
        // chunk 0: pages 0-1 and 5; chunk 1: page 3; chunk 2: pages 6-7.
        let table = vec![
            vec![(0, 2 * P), (5 * P, P)],
            vec![(3 * P, P)],
            vec![(6 * P, 2 * P)],
        ];
        let fake = Arc::new(Fake {
            table: table.clone(),
            bad,
            calls: Mutex::new(Vec::new()),
        });
        let lazy = LazyMemory::new(table, 8 * P, fake.clone()).unwrap();
        (lazy, fake, Mutex::new(vec![0u8; 8 * P as usize]))
    }

    fn writer(mem: &Mutex<Vec<u8>>) -> impl Fn(u64, &[u8]) -> std::io::Result<()> + Sync + '_ {
        move |o, d| {
            mem.lock().unwrap()[o as usize..o as usize + d.len()].copy_from_slice(d);
            Ok(())
        }
    }

    #[test]
    fn an_access_loads_exactly_the_chunks_it_overlaps_once() {
        let (lazy, fake, mem) = setup(None);
        let w = writer(&mem);
        // Page 5 belongs to chunk 0; page 4 is a zero page (no chunk).
        lazy.ensure(4 * P, 2 * P, &w).unwrap();
        lazy.ensure(5 * P + 10, 1, &w).unwrap();
        assert_eq!(*fake.calls.lock().unwrap(), vec![0]);
        assert_eq!(mem.lock().unwrap()[0], 1);
        assert_eq!(mem.lock().unwrap()[3 * P as usize], 0, "chunk 1 not loaded");
        assert!(!lazy.is_complete());
        // The background loader skips what is loaded.
        while lazy.load_next(&w) {}
        assert_eq!(*fake.calls.lock().unwrap(), vec![0, 1, 2]);
        assert!(lazy.is_complete());
        assert!(lazy.source.lock().unwrap().is_none(), "image released");
        let s = lazy.stats();
        assert_eq!((s.loaded_on_access, s.loaded_in_background), (1, 2));
        assert_eq!(s.bytes_loaded, 6 * P);
        let m = mem.lock().unwrap();
        assert_eq!(
            (m[3 * P as usize], m[7 * P as usize], m[4 * P as usize]),
            (2, 3, 0)
        );
    }

    #[test]
    fn a_failed_chunk_fails_every_access_to_it_and_only_to_it() {
        let (lazy, _fake, mem) = setup(Some(1));
        let w = writer(&mem);
        assert!(lazy.ensure(3 * P, 1, &w).is_err());
        assert!(lazy.ensure(0, P, &w).is_ok());
        assert!(lazy.load_all(&w).is_err());
        assert!(lazy.is_complete());
        let e = lazy.ensure(3 * P, P, &w).unwrap_err();
        assert_eq!(e.chunk, 1);
        assert!(lazy.ensure(6 * P, 2 * P, &w).is_ok());
        assert_eq!(mem.lock().unwrap()[3 * P as usize], 0, "nothing written");
    }

    #[test]
    fn concurrent_accesses_load_a_chunk_once() {
        let (lazy, fake, mem) = setup(None);
        let w = writer(&mem);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| lazy.ensure(0, 8 * P, &w).unwrap());
            }
        });
        let mut calls = fake.calls.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls, vec![0, 1, 2]);
    }

    #[test]
    fn tables_outside_the_file_or_overlapping_are_refused() {
        let src: Arc<dyn ChunkLoad> = Arc::new(Fake {
            table: vec![],
            bad: None,
            calls: Mutex::new(Vec::new()),
        });
        assert!(matches!(
            LazyMemory::new(vec![vec![(7 * P, 2 * P)]], 8 * P, src.clone()),
            Err(LazyTableError::OutOfRange { chunk: 0, .. })
        ));
        assert!(matches!(
            LazyMemory::new(vec![vec![(0, P + 1)]], 8 * P, src.clone()),
            Err(LazyTableError::OutOfRange { .. })
        ));
        assert!(matches!(
            LazyMemory::new(vec![vec![(0, 2 * P)], vec![(P, P)]], 8 * P, src.clone()),
            Err(LazyTableError::Overlap { a: 0, b: 1, .. })
        ));
        let empty = LazyMemory::new(vec![], 8 * P, src).unwrap();
        assert!(empty.is_complete());
    }
}
