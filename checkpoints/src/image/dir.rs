//! Reading an image directory.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::compress::decode_state;
use super::error::{ImageError, ImageFile};
use super::manifest::{ChunkInfo, Manifest};
use super::restore::{region_targets, restore_fed, MemorySink, ReadOptions, Target};
use super::stats::ReadStats;
use super::{MANIFEST_FILE, MAX_MANIFEST_LEN, MEMORY_FILE, STATE_FILE};

/// A whole image read back: manifest, state bytes, statistics. Memory went
/// to the caller's destination.
#[derive(Debug)]
pub struct RestoredImage {
    /// The checked manifest.
    pub manifest: Manifest,
    /// The state section (postcard bytes for [`crate::state`]).
    pub state: Vec<u8>,
    /// What the read did.
    pub stats: ReadStats,
}

/// An image directory whose manifest was checked and whose files have the
/// sizes it declares. Sections are checked as they are read.
#[derive(Debug)]
pub struct DirImage {
    path: PathBuf,
    manifest: Manifest,
    state: File,
    memory: File,
    manifest_time: std::time::Duration,
}

fn open(dir: &Path, name: &str, file: ImageFile) -> Result<(File, u64), ImageError> {
    let path = dir.join(name);
    let f = File::open(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ImageError::MissingFile { path: path.clone() }
        } else {
            ImageError::Io { file, source }
        }
    })?;
    let len = f
        .metadata()
        .map_err(|source| ImageError::Io { file, source })?
        .len();
    Ok((f, len))
}

fn check_size(file: ImageFile, expected: u64, actual: u64) -> Result<(), ImageError> {
    match actual.cmp(&expected) {
        std::cmp::Ordering::Less => Err(ImageError::Truncated {
            file,
            expected,
            actual,
        }),
        std::cmp::Ordering::Greater => Err(ImageError::UnexpectedSize {
            file,
            expected,
            actual,
        }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

impl DirImage {
    /// Opens `path`: reads and checks the manifest, opens the section files
    /// and checks their sizes.
    pub fn open(path: &Path) -> Result<DirImage, ImageError> {
        let t = Instant::now();
        let (mut mf, len) = open(path, MANIFEST_FILE, ImageFile::Manifest)?;
        let max = MAX_MANIFEST_LEN
            + super::manifest::MANIFEST_HEADER_LEN
            + super::manifest::MANIFEST_TRAILER_LEN;
        if len > max {
            return Err(ImageError::LengthOutOfBounds {
                field: "manifest.bin size",
                value: len,
                max,
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        mf.read_to_end(&mut bytes)
            .map_err(|source| ImageError::Io {
                file: ImageFile::Manifest,
                source,
            })?;
        let manifest = Manifest::decode(&bytes)?;
        let (state, state_len) = open(path, STATE_FILE, ImageFile::State)?;
        check_size(ImageFile::State, manifest.state.stored_len, state_len)?;
        let (memory, memory_len) = open(path, MEMORY_FILE, ImageFile::Memory)?;
        check_size(ImageFile::Memory, manifest.memory_stored_len, memory_len)?;
        Ok(DirImage {
            path: path.to_owned(),
            manifest,
            state,
            memory,
            manifest_time: t.elapsed(),
        })
    }

    /// The image directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checked manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// `memory.bin`, for a lazy restore that maps raw chunks
    /// ([`ChunkInfo::file_offset`] is page-aligned for them). Such a caller
    /// must check each chunk's checksum itself before trusting it.
    pub fn memory_file(&self) -> &File {
        &self.memory
    }

    /// Reads, checks and decompresses the state section.
    pub fn read_state(&self) -> Result<Vec<u8>, ImageError> {
        let info = &self.manifest.state;
        // The file's size equals stored_len (checked at open).
        let mut stored = vec![0u8; info.stored_len as usize];
        self.state
            .read_exact_at(&mut stored, 0)
            .map_err(|e| ImageError::read(ImageFile::State, info.stored_len, 0, e))?;
        decode_state(info, stored)
    }

    /// Restores memory into `dst` (at least `memory_len` bytes,
    /// zero-filled: zero pages are not written), in parallel, each chunk
    /// checked before it is copied. On error `dst` is unspecified.
    pub fn restore_memory_into(
        &self,
        dst: &mut [u8],
        opts: &ReadOptions<'_>,
    ) -> Result<ReadStats, ImageError> {
        let needed = self.manifest.head.layout.memory_len;
        self.restore(opts, region_targets(dst, needed)?)
    }

    /// Restores memory through `sink` (called concurrently, disjoint
    /// ranges, checked data only).
    pub fn restore_memory_with(
        &self,
        sink: &dyn MemorySink,
        opts: &ReadOptions<'_>,
    ) -> Result<ReadStats, ImageError> {
        self.restore(opts, |_| Target::Sink(sink))
    }

    /// Reads chunk `info`'s stored bytes into the first `stored_len`
    /// bytes of `buf`, which grows (zeroed) only when a larger chunk comes.
    pub(crate) fn read_stored(
        &self,
        info: &ChunkInfo,
        buf: &mut Vec<u8>,
    ) -> Result<(), ImageError> {
        // Bounded by the manifest checks (stored_len <= MAX_CHUNK_SIZE
        // plus compression overhead).
        let len = info.stored_len as usize;
        if buf.len() < len {
            buf.resize(len, 0);
        }
        self.memory
            .read_exact_at(&mut buf[..len], info.file_offset)
            .map_err(|e| {
                ImageError::read(ImageFile::Memory, info.file_offset + info.stored_len, 0, e)
            })
    }

    fn restore<'d>(
        &self,
        opts: &ReadOptions<'_>,
        mut target: impl FnMut(&ChunkInfo) -> Target<'d>,
    ) -> Result<ReadStats, ImageError> {
        let t = Instant::now();
        let m = &self.manifest;
        let counts = restore_fed(opts, &m.head.layout.used_ranges, |send, buffers| {
            for (index, info) in m.chunks.iter().enumerate() {
                let mut buf = buffers.take();
                self.read_stored(info, &mut buf)?;
                let region = target(info);
                if !send(index as u64, info.clone(), buf, region) {
                    break;
                }
            }
            Ok(())
        })?;
        Ok(ReadStats {
            memory_restored_bytes: counts.raw,
            memory_stored_bytes: m.memory_stored_len,
            zero_pages: m.zero_pages(),
            chunks: m.chunks.len() as u64,
            manifest_time: self.manifest_time,
            memory_time: t.elapsed(),
            ..ReadStats::default()
        })
    }
}

/// Reads a whole image directory: state, and memory into `dst` (as
/// [`DirImage::restore_memory_into`]). Checks nothing about schema or CPU:
/// use [`DirImage::open`] and check the manifest first.
pub fn read_dir(
    path: &Path,
    dst: &mut [u8],
    opts: &ReadOptions<'_>,
) -> Result<RestoredImage, ImageError> {
    let image = DirImage::open(path)?;
    let t = Instant::now();
    let state = image.read_state()?;
    let state_time = t.elapsed();
    let mut stats = image.restore_memory_into(dst, opts)?;
    stats.state_stored_bytes = image.manifest.state.stored_len;
    stats.state_raw_bytes = image.manifest.state.raw_len;
    stats.state_time = state_time;
    tracing::info!(
        path = %path.display(),
        sandbox = %image.manifest.head.meta.sandbox_id,
        restored_bytes = stats.memory_restored_bytes,
        elapsed_ms = (stats.manifest_time + stats.state_time + stats.memory_time).as_millis() as u64,
        "checkpoint image read"
    );
    Ok(RestoredImage {
        manifest: image.manifest,
        state,
        stats,
    })
}
