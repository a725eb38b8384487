//! Errors of reading and writing images: one enum per operation
//! ([`ImageError`] for reading/validating, [`WriteError`] for writing).
//! `Display` never repeats the source; print the chain once at the top.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Which part of an image an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFile {
    /// `manifest.bin` of an image directory.
    Manifest,
    /// `state.bin` of an image directory.
    State,
    /// `memory.bin` of an image directory.
    Memory,
    /// A streamed image.
    Stream,
}

impl fmt::Display for ImageFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageFile::Manifest => super::MANIFEST_FILE,
            ImageFile::State => super::STATE_FILE,
            ImageFile::Memory => super::MEMORY_FILE,
            ImageFile::Stream => "image stream",
        })
    }
}

/// Why an image could not be read or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file of the image directory is missing.
    #[error("image file {path} does not exist: the image is incomplete or the path is wrong")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },
    /// The operating system refused a read.
    #[error("cannot read {file}")]
    Io {
        /// Which part was being read.
        file: ImageFile,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Fewer bytes than the image declares.
    #[error("{file} is truncated: expected {expected} bytes, found {actual}")]
    Truncated {
        /// Which part is short.
        file: ImageFile,
        /// Bytes the image declares (up to the point checked).
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// More bytes than the image declares.
    #[error("{file} has {actual} bytes but the manifest declares {expected}: not the file this manifest describes")]
    UnexpectedSize {
        /// Which file.
        file: ImageFile,
        /// Bytes the manifest declares.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The file does not start with the image magic.
    #[error("{file} is not an sbx checkpoint image (magic {found:02x?})")]
    BadMagic {
        /// Which part.
        file: ImageFile,
        /// The first bytes found.
        found: [u8; 8],
    },
    /// Written by a newer (or unknown) format version.
    #[error("image format version {found} is not supported (this build reads version {supported}); use a newer sbx")]
    UnsupportedVersion {
        /// Version found in the image.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A length field exceeds its documented bound.
    #[error("{field} = {value} exceeds the bound {max}: the image is corrupt")]
    LengthOutOfBounds {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The bound (see FORMAT.md).
        max: u64,
    },
    /// The manifest (or a stream frame header) fails its checksum.
    #[error("{file}: header checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the image is corrupt")]
    HeaderChecksumMismatch {
        /// Which part.
        file: ImageFile,
        /// Checksum stored in the image.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The manifest body (or a frame descriptor) could not be decoded.
    #[error("{file}: malformed manifest encoding")]
    MalformedManifest {
        /// Which part.
        file: ImageFile,
        /// The decoder's error.
        #[source]
        source: postcard::Error,
    },
    /// Fields of the manifest contradict each other or the format rules.
    #[error("inconsistent image: {what}")]
    Inconsistent {
        /// The rule that is broken.
        what: &'static str,
    },
    /// The state section fails its checksum.
    #[error("state section checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): the image is corrupt")]
    StateChecksumMismatch {
        /// Checksum stored in the manifest.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// The state section passed its checksum but does not decompress to
    /// its declared length.
    #[error("state section does not decompress to its declared {expected} bytes")]
    StateDecompress {
        /// Declared raw length.
        expected: u64,
        /// The decompressor's error, if it failed rather than came up short.
        #[source]
        source: Option<io::Error>,
    },
    /// A memory chunk fails its checksum.
    #[error("memory chunk {chunk} (memory offset {memory_offset:#x}) checksum mismatch: the image is corrupt")]
    ChunkChecksumMismatch {
        /// Chunk index.
        chunk: u64,
        /// Memory-file offset of the chunk's first page.
        memory_offset: u64,
    },
    /// A memory chunk passed its checksum but does not decompress to its
    /// declared length.
    #[error("memory chunk {chunk} does not decompress to its declared length")]
    ChunkDecompress {
        /// Chunk index.
        chunk: u64,
        /// The decompressor's error, if any.
        #[source]
        source: Option<io::Error>,
    },
    /// The restore destination is smaller than the memory file.
    #[error("restore destination has {actual} bytes but the image's memory file has {needed}")]
    DestinationTooSmall {
        /// Memory file length of the image.
        needed: u64,
        /// Destination length.
        actual: u64,
    },
    /// The caller's memory sink refused a write.
    #[error("writing restored memory at offset {offset:#x} failed")]
    Sink {
        /// Memory-file offset of the write.
        offset: u64,
        /// The sink's error.
        #[source]
        source: io::Error,
    },
    /// A stream frame of the wrong kind at this position.
    #[error("image stream frame {index} has tag {found:#04x}, expected {expected}")]
    UnexpectedFrame {
        /// Frame index (0 = head).
        index: u64,
        /// Tag found.
        found: u8,
        /// What was expected there.
        expected: &'static str,
    },
    /// The stream's trailer manifest differs from the frames before it.
    #[error(
        "image stream trailer does not match the frames that preceded it: the stream is corrupt"
    )]
    TrailerMismatch,
    /// The progress callback asked to stop.
    #[error("restore cancelled")]
    Cancelled,
}

impl ImageError {
    /// Maps a read error on `file`: an unexpected EOF becomes `Truncated`.
    pub(crate) fn read(file: ImageFile, expected: u64, actual: u64, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            ImageError::Truncated {
                file,
                expected,
                actual,
            }
        } else {
            ImageError::Io { file, source }
        }
    }
}

/// Why an image could not be written. The target never exists after one.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The target path already exists; images are never overwritten.
    #[error("{path} already exists; choose another name or remove it first")]
    TargetExists {
        /// The target.
        path: PathBuf,
    },
    /// The target path has no parent directory or no file name.
    #[error("{path} is not a usable image path (no parent directory or file name)")]
    BadTarget {
        /// The target.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{op} {path} failed")]
    Io {
        /// What was being done ("create", "write", "fsync", "rename", …).
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Writing to the output stream failed.
    #[error("writing the image stream failed")]
    Stream {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A used memory range is unaligned, unsorted, overlapping, or outside
    /// the memory slice.
    #[error("used memory range offset {offset:#x} len {len:#x} is invalid: {reason}")]
    InvalidRange {
        /// Range offset.
        offset: u64,
        /// Range length.
        len: u64,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An option is out of range.
    #[error("invalid write option: {what}")]
    InvalidOption {
        /// Which option and why.
        what: &'static str,
    },
    /// An input exceeds a format bound.
    #[error("{what} is {len} bytes, over the format's bound of {max}")]
    TooLarge {
        /// Which input.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// The compressor failed (out of memory inside zstd).
    #[error("zstd compression failed")]
    Compress {
        /// zstd's error.
        #[source]
        source: io::Error,
    },
    /// The progress callback asked to stop.
    #[error("checkpoint write cancelled")]
    Cancelled,
}
