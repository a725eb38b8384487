//! The checkpoint image: how a checkpointed sandbox is laid out on disk and
//! on the wire.
//!
//! An image has three parts (byte layout and stability rules:
//! `checkpoints/FORMAT.md`):
//!
//! - the **manifest** ([`Manifest`]): magic, format version, sandbox id,
//!   creation time, schema fingerprints, the host CPU features the state
//!   depends on, and the section table (sizes and crc32c checksums of the
//!   state section and of every memory chunk); the manifest is checksummed
//!   itself;
//! - the **state section**: the kernel object graph (postcard bytes produced
//!   by [`crate::state`]; opaque here), zstd-compressed;
//! - the **memory section**: the used ranges of the sentry's memory file,
//!   all-zero pages skipped, in chunks compressed in parallel, each chunk
//!   checksummed. With [`Compression::None`] a chunk's bytes start on a
//!   4096-byte boundary of `memory.bin`, so a lazy restore can `mmap` them.
//!
//! The same image exists in two equivalent forms:
//!
//! - a **directory** ([`write_dir`], [`DirImage`], [`read_dir`]):
//!   `manifest.bin`, `state.bin`, `memory.bin`, written to a temporary
//!   directory next to the target, fsynced and renamed into place;
//! - a **stream** ([`write_stream`], [`StreamReader`], [`read_stream`]) for
//!   pipes and migration: a preamble, then self-describing frames (head,
//!   state, one per chunk) and a trailer frame holding the full manifest.
//!
//! [`dir_to_stream`] and [`stream_to_dir`] convert between them without
//! recompressing; both directions reproduce the bytes the direct writer
//! produces.
//!
//! Invariants:
//! - Nothing read from an image is trusted before its magic, version,
//!   length bounds and checksum were checked; no allocation is sized by a
//!   length field beyond the bounds below or the bytes actually present.
//! - Memory chunk data is handed to the caller only after that chunk's
//!   checksum matched. On any error the restore destination's contents are
//!   unspecified and must be discarded.
//! - A failed write leaves neither the target nor its temporary files.
//!
//! Lock order: none is held across calls; the worker pools in `pipeline.rs`
//! use one mutex each, never nested.

mod atomic;
mod chunks;
mod compress;
mod convert;
mod cpu;
mod dir;
mod error;
mod layout;
mod manifest;
mod pipeline;
mod restore;
mod schema;
mod stats;
mod stream;
mod validate;
mod write;

pub use atomic::remove_stale_temporaries;
pub use chunks::ChunkScratch;
pub use compress::Compression;
pub use convert::{dir_to_stream, stream_to_dir, ConvertError};
pub use cpu::{CpuCompatError, CpuFeatures, CpuProbeError};
pub use dir::{read_dir, DirImage, RestoredImage};
pub use error::{ImageError, ImageFile, WriteError};
pub use manifest::{
    ChunkInfo, Codec, ImageMeta, Manifest, ManifestHead, MemoryLayout, PageRange, PageRun,
    StateInfo,
};
pub use restore::{MemorySink, ReadOptions};
pub use schema::{SchemaInfo, SchemaMismatch, TypeFingerprint};
pub use stats::{Progress, ProgressFn, ReadStats, WriteStats};
pub use stream::{read_stream, StreamMemoryReader, StreamReader};
pub use write::{write_dir, write_stream, ImageInput, WriteOptions, DEFAULT_WRITEBACK_STEP};

/// Snapshot format version written by this build. Independent of the crate
/// version: it changes exactly when the byte layout in `FORMAT.md` changes.
pub const FORMAT_VERSION: u32 = 1;

/// Magic at offset 0 of `manifest.bin`.
pub const MANIFEST_MAGIC: [u8; 8] = *b"SBXIMAGE";

/// Magic at offset 0 of an image stream.
pub const STREAM_MAGIC: [u8; 8] = *b"SBXSTREA";

/// Page size of the memory file (x86-64). Used ranges, runs and raw chunk
/// lengths are multiples of it.
pub const PAGE_SIZE: u64 = 4096;

/// Upper bound of a manifest body (and of a stream frame descriptor).
/// 1 GiB of memory in 4 MiB chunks needs about 10 KiB; 64 MiB leaves room
/// for fragmented memory files of many terabytes.
pub const MAX_MANIFEST_LEN: u64 = 64 << 20;

/// Upper bound of a memory chunk's raw (uncompressed) length.
pub const MAX_CHUNK_SIZE: u64 = 64 << 20;

/// Default memory chunk size: large enough for zstd to find repetition,
/// small enough that the chunks in flight (2 per worker) stay a few MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;

/// Upper bound of the raw state section (the serialized kernel object
/// graph, including the in-memory overlay's file contents).
pub const MAX_STATE_LEN: u64 = 4 << 30;

/// Upper bound of the memory file length: the x86-64 user address space
/// (47 bits) could not map more.
pub const MAX_MEMORY_LEN: u64 = 1 << 47;

/// File names inside an image directory.
pub const MANIFEST_FILE: &str = "manifest.bin";
/// See [`MANIFEST_FILE`].
pub const STATE_FILE: &str = "state.bin";
/// See [`MANIFEST_FILE`].
pub const MEMORY_FILE: &str = "memory.bin";

/// Rounds `n` up to a multiple of [`PAGE_SIZE`]; `None` on overflow.
pub(crate) fn page_align_up(n: u64) -> Option<u64> {
    n.checked_add(PAGE_SIZE - 1).map(|v| v & !(PAGE_SIZE - 1))
}

/// Whether `n` is a multiple of [`PAGE_SIZE`].
pub(crate) fn is_page_aligned(n: u64) -> bool {
    n & (PAGE_SIZE - 1) == 0
}
