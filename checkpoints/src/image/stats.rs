//! Progress reporting and the statistics returned by writes and reads.

use std::ops::ControlFlow;
use std::time::Duration;

/// Memory-section progress: `done` of `total` bytes.
///
/// Writing counts used memory scanned and written (zero pages included);
/// reading counts used memory the restore has passed (zero pages included),
/// ending at `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes done.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// Progress callback; returning `ControlFlow::Break(())` cancels the
/// operation (a write then removes its temporary files). May be called from
/// worker threads, concurrently.
pub type ProgressFn<'a> = dyn Fn(Progress) -> ControlFlow<()> + Sync + 'a;

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteStats {
    /// State bytes given.
    pub state_raw_bytes: u64,
    /// State bytes stored.
    pub state_stored_bytes: u64,
    /// Used memory (sum of the used ranges).
    pub memory_bytes: u64,
    /// Non-zero memory stored in chunks (before compression).
    pub memory_stored_raw_bytes: u64,
    /// Bytes of the memory section (`memory.bin`, padding included).
    pub memory_stored_bytes: u64,
    /// All-zero pages not stored.
    pub zero_pages: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Time compressing and writing the state section.
    pub state_time: Duration,
    /// Time scanning, compressing and writing the memory section.
    pub memory_time: Duration,
    /// Time writing the manifest, fsyncing and renaming into place.
    pub commit_time: Duration,
    /// Whole write.
    pub total_time: Duration,
}

impl WriteStats {
    /// Used memory over bytes stored for it (zero pages count as
    /// compressed to nothing); 1.0 when nothing was used.
    pub fn memory_compression_ratio(&self) -> f64 {
        ratio(self.memory_bytes, self.memory_stored_bytes)
    }

    /// Raw state over stored state.
    pub fn state_compression_ratio(&self) -> f64 {
        ratio(self.state_raw_bytes, self.state_stored_bytes)
    }
}

/// What a read did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadStats {
    /// State bytes stored.
    pub state_stored_bytes: u64,
    /// State bytes after decompression.
    pub state_raw_bytes: u64,
    /// Memory bytes handed to the destination (non-zero pages).
    pub memory_restored_bytes: u64,
    /// Bytes of the memory section read.
    pub memory_stored_bytes: u64,
    /// All-zero pages left untouched.
    pub zero_pages: u64,
    /// Chunks restored.
    pub chunks: u64,
    /// Time reading and checking the manifest.
    pub manifest_time: Duration,
    /// Time reading, checking and decompressing the state section.
    pub state_time: Duration,
    /// Time restoring the memory section.
    pub memory_time: Duration,
}

fn ratio(raw: u64, stored: u64) -> f64 {
    if stored == 0 {
        return if raw == 0 { 1.0 } else { f64::INFINITY };
    }
    raw as f64 / stored as f64
}
