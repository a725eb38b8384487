//! The manifest: what an image contains and how to check it.
//!
//! Encoded as a fixed little-endian header, a postcard body and a crc32c
//! trailer (`FORMAT.md`, "manifest.bin"). The postcard body is the
//! [`Manifest`] struct below, fields in declaration order: reordering,
//! removing or retyping a field, or adding one, changes the format and
//! requires bumping [`FORMAT_VERSION`](super::FORMAT_VERSION).

use serde::{Deserialize, Serialize};

use super::compress::Compression;
use super::cpu::CpuFeatures;
use super::error::{ImageError, ImageFile};
use super::schema::SchemaInfo;
use super::{FORMAT_VERSION, MANIFEST_MAGIC, MAX_MANIFEST_LEN, PAGE_SIZE};

/// Who and what an image is: everything known before any section is
/// written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// The sandbox id (`sbx run --id`).
    pub sandbox_id: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix_secs: u64,
    /// Creation time, nanoseconds within the second.
    pub created_subsec_nanos: u32,
    /// Schema fingerprints of the build that wrote the state.
    pub schema: SchemaInfo,
    /// Host CPU features the state depends on.
    pub cpu: CpuFeatures,
}

impl ImageMeta {
    /// Meta stamped with the current time.
    pub fn now(sandbox_id: impl Into<String>, schema: SchemaInfo, cpu: CpuFeatures) -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        ImageMeta {
            sandbox_id: sandbox_id.into(),
            created_unix_secs: since.as_secs(),
            created_subsec_nanos: since.subsec_nanos(),
            schema,
            cpu,
        }
    }
}

/// A page-aligned range of the memory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRange {
    /// Byte offset in the memory file (multiple of [`PAGE_SIZE`]).
    pub offset: u64,
    /// Byte length (multiple of [`PAGE_SIZE`], non-zero).
    pub len: u64,
}

impl PageRange {
    /// End offset, `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.len)
    }
}

/// The memory file as the writer saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryLayout {
    /// Length of the memory file; a restore needs a destination this big.
    pub memory_len: u64,
    /// Used ranges: page-aligned, sorted, non-overlapping, within
    /// `memory_len`. Pages in them not covered by a chunk run were all-zero.
    pub used_ranges: Vec<PageRange>,
    /// Memory span each chunk covers at most (its raw length bound).
    pub chunk_size: u64,
}

/// The part of the manifest known before any section is written: first
/// frame of a stream, so a receiver can refuse an image before its memory
/// arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestHead {
    /// Identity, schema and CPU requirements.
    pub meta: ImageMeta,
    /// Memory file layout.
    pub layout: MemoryLayout,
    /// Compression the writer was asked for (chunks that do not shrink are
    /// stored raw regardless; see [`Codec`]).
    pub compression: Compression,
}

/// How a section or chunk is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// Stored as is. For memory chunks the data starts page-aligned in
    /// `memory.bin`.
    Raw,
    /// One zstd frame.
    Zstd,
}

/// The state section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateInfo {
    /// How it is stored.
    pub codec: Codec,
    /// Length of the postcard state bytes.
    pub raw_len: u64,
    /// Length stored (`state.bin`'s size).
    pub stored_len: u64,
    /// crc32c of the stored bytes.
    pub crc32c: u32,
}

/// A run of consecutive non-zero pages stored in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRun {
    /// Memory-file offset of the first page.
    pub offset: u64,
    /// Number of pages.
    pub pages: u32,
}

impl PageRun {
    /// Byte length.
    pub fn len(&self) -> u64 {
        u64::from(self.pages) * PAGE_SIZE
    }

    /// Whether the run has no pages (never true in a valid image).
    pub fn is_empty(&self) -> bool {
        self.pages == 0
    }
}

/// One memory chunk: the concatenation of its runs' pages, stored with
/// `codec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkInfo {
    /// Offset of the stored bytes in `memory.bin` (also recorded in a
    /// stream, where it is checked against the layout rule).
    pub file_offset: u64,
    /// How it is stored.
    pub codec: Codec,
    /// Sum of the runs' lengths.
    pub raw_len: u64,
    /// Stored length.
    pub stored_len: u64,
    /// crc32c of the stored bytes.
    pub crc32c: u32,
    /// The pages it holds, sorted, non-overlapping, inside used ranges.
    pub runs: Vec<PageRun>,
}

/// Everything about an image but its section bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Identity, layout, requested compression.
    pub head: ManifestHead,
    /// The state section.
    pub state: StateInfo,
    /// The memory chunks, in memory-offset order.
    pub chunks: Vec<ChunkInfo>,
    /// Length of `memory.bin`.
    pub memory_stored_len: u64,
}

/// Bytes before the body: magic, version, flags, body length.
pub(crate) const MANIFEST_HEADER_LEN: u64 = 24;
/// Bytes after the body: crc32c.
pub(crate) const MANIFEST_TRAILER_LEN: u64 = 4;

impl Manifest {
    /// Bytes of used memory (zero pages included).
    pub fn used_bytes(&self) -> u64 {
        self.head.layout.used_ranges.iter().map(|r| r.len).sum()
    }

    /// Bytes of memory stored in chunks (non-zero pages).
    pub fn stored_memory_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.raw_len).sum()
    }

    /// Number of used pages that were all-zero and are not stored.
    pub fn zero_pages(&self) -> u64 {
        (self.used_bytes() - self.stored_memory_bytes()) / PAGE_SIZE
    }

    /// Used ranges that were all-zero (not stored), coalesced. A restore
    /// leaves them untouched; a caller whose destination is not zero-filled
    /// clears (or punches holes in) them.
    pub fn zero_ranges(&self) -> Vec<PageRange> {
        let mut out: Vec<PageRange> = Vec::new();
        let mut runs = self.chunks.iter().flat_map(|c| c.runs.iter()).peekable();
        for range in &self.head.layout.used_ranges {
            let end = range.offset + range.len;
            let mut pos = range.offset;
            while let Some(run) = runs.next_if(|r| r.offset < end) {
                push_coalesced(&mut out, pos, run.offset);
                pos = run.offset + run.len();
            }
            push_coalesced(&mut out, pos, end);
        }
        out
    }

    /// Encodes `manifest.bin` (header, postcard body, crc32c).
    pub fn encode(&self) -> Vec<u8> {
        encode_framed(MANIFEST_MAGIC, self)
    }

    /// Decodes and validates `manifest.bin` bytes: magic, version, length
    /// bound, checksum, encoding, then every consistency rule.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ImageError> {
        let body = check_framed(ImageFile::Manifest, MANIFEST_MAGIC, bytes)?;
        let manifest: Manifest = decode_exact(ImageFile::Manifest, body)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every rule of FORMAT.md that does not need section bytes.
    pub fn validate(&self) -> Result<(), ImageError> {
        self.head.validate()?;
        super::validate::check_state_info(&self.state)?;
        let mut checker = super::validate::ChunkChecker::new();
        for chunk in &self.chunks {
            checker.check(&self.head.layout, chunk)?;
        }
        checker.finish(self.memory_stored_len)
    }
}

impl ManifestHead {
    /// Checks the layout rules (the head is trusted by nothing before it).
    pub fn validate(&self) -> Result<(), ImageError> {
        super::validate::check_layout(&self.layout)?;
        self.compression
            .validate()
            .map_err(|_| ImageError::Inconsistent {
                what: "compression level outside zstd's range",
            })
    }
}

fn push_coalesced(out: &mut Vec<PageRange>, start: u64, end: u64) {
    if start >= end {
        return;
    }
    match out.last_mut() {
        Some(last) if last.offset + last.len == start => last.len += end - start,
        _ => out.push(PageRange {
            offset: start,
            len: end - start,
        }),
    }
}

/// Header + postcard body + crc32c, as used by `manifest.bin`.
pub(crate) fn encode_framed<T: Serialize>(magic: [u8; 8], value: &T) -> Vec<u8> {
    // postcard to a Vec fails only if the serializer itself errors, which
    // none of the manifest's types do (no maps with non-string keys, no
    // custom Serialize impls that fail).
    let body = postcard::to_stdvec(value).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 28);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Parsed fixed header of `manifest.bin` (and of a stream preamble).
pub(crate) struct FixedHeader {
    pub body_len: u64,
}

/// Checks magic, version and flags of a 24-byte header and bounds its body
/// length.
pub(crate) fn parse_header(
    file: ImageFile,
    magic: [u8; 8],
    header: &[u8; 24],
) -> Result<FixedHeader, ImageError> {
    let found: [u8; 8] = le_array(&header[0..8]);
    if found != magic {
        return Err(ImageError::BadMagic { file, found });
    }
    let version = u32::from_le_bytes(le_array(&header[8..12]));
    if version != FORMAT_VERSION {
        return Err(ImageError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let flags = u32::from_le_bytes(le_array(&header[12..16]));
    if flags != 0 {
        return Err(ImageError::Inconsistent {
            what: "reserved header flags are not zero",
        });
    }
    let body_len = u64::from_le_bytes(le_array(&header[16..24]));
    if body_len > MAX_MANIFEST_LEN {
        return Err(ImageError::LengthOutOfBounds {
            field: "manifest body length",
            value: body_len,
            max: MAX_MANIFEST_LEN,
        });
    }
    Ok(FixedHeader { body_len })
}

/// Validates a complete header+body+crc buffer and returns the body.
pub(crate) fn check_framed(
    file: ImageFile,
    magic: [u8; 8],
    bytes: &[u8],
) -> Result<&[u8], ImageError> {
    let actual = bytes.len() as u64;
    let Some(header) = bytes.first_chunk::<24>() else {
        return Err(ImageError::Truncated {
            file,
            expected: MANIFEST_HEADER_LEN,
            actual,
        });
    };
    let FixedHeader { body_len } = parse_header(file, magic, header)?;
    let expected = MANIFEST_HEADER_LEN + body_len + MANIFEST_TRAILER_LEN;
    if actual < expected {
        return Err(ImageError::Truncated {
            file,
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(ImageError::UnexpectedSize {
            file,
            expected,
            actual,
        });
    }
    // Both casts are in bounds: `expected == bytes.len()`.
    let crc_at = (expected - MANIFEST_TRAILER_LEN) as usize;
    let stored = u32::from_le_bytes(le_array(&bytes[crc_at..]));
    let computed = crc32c::crc32c(&bytes[..crc_at]);
    if stored != computed {
        return Err(ImageError::HeaderChecksumMismatch {
            file,
            stored,
            computed,
        });
    }
    Ok(&bytes[MANIFEST_HEADER_LEN as usize..crc_at])
}

/// Postcard-decodes `bytes`, which must be consumed exactly.
pub(crate) fn decode_exact<'de, T: Deserialize<'de>>(
    file: ImageFile,
    bytes: &'de [u8],
) -> Result<T, ImageError> {
    let (value, rest) = postcard::take_from_bytes(bytes)
        .map_err(|source| ImageError::MalformedManifest { file, source })?;
    if !rest.is_empty() {
        return Err(ImageError::Inconsistent {
            what: "trailing bytes after the manifest body",
        });
    }
    Ok(value)
}

/// Copies the first `N` bytes of `bytes` (callers pass slices of at least
/// `N` bytes; shorter ones are zero-padded rather than panicking).
pub(crate) fn le_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}
