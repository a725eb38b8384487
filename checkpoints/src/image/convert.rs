//! Converting between the directory and the stream form, without
//! recompressing: every section and chunk is checked and copied as stored,
//! so the result is byte-identical to what the direct writer produces.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::dir::DirImage;
use super::error::{ImageError, ImageFile, WriteError};
use super::manifest::Manifest;
use super::restore::check_chunk_crc;
use super::stream::{StreamBackend, StreamReader};
use super::write::{Backend, DirBackend};

/// A conversion failed on the reading or on the writing side.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The source image is unreadable or invalid.
    #[error("reading the source image failed")]
    Read(#[source] ImageError),
    /// The target could not be written (a directory target is removed).
    #[error("writing the converted image failed")]
    Write(#[source] WriteError),
}

impl From<ImageError> for ConvertError {
    fn from(e: ImageError) -> Self {
        ConvertError::Read(e)
    }
}

/// Writes the image directory at `src` as a stream to `out`.
pub fn dir_to_stream<W: Write>(src: &Path, out: W) -> Result<Manifest, ConvertError> {
    let image = DirImage::open(src)?;
    let m = image.manifest();
    let mut backend = StreamBackend::new(out);
    let w = ConvertError::Write;
    backend.head(&m.head).map_err(w)?;
    let state = stored_state(&image)?;
    backend.state(&m.state, &state).map_err(w)?;
    let mut buf = Vec::new();
    for (index, info) in m.chunks.iter().enumerate() {
        buf.resize(info.stored_len as usize, 0);
        image
            .memory_file()
            .read_exact_at(&mut buf, info.file_offset)
            .map_err(|e| {
                ImageError::read(ImageFile::Memory, info.file_offset + info.stored_len, 0, e)
            })?;
        check_chunk_crc(index as u64, info, &buf)?;
        backend.chunk(info, &[&buf]).map_err(w)?;
    }
    backend.finish(m).map_err(w)?;
    Ok(m.clone())
}

/// The state section as stored, after checking its checksum.
fn stored_state(image: &DirImage) -> Result<Vec<u8>, ImageError> {
    let info = &image.manifest().state;
    let path = image.path().join(super::STATE_FILE);
    let mut stored = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(info.stored_len).read_to_end(&mut stored))
        .map_err(|source| ImageError::Io {
            file: ImageFile::State,
            source,
        })?;
    let computed = crc32c::crc32c(&stored);
    if stored.len() as u64 != info.stored_len || computed != info.crc32c {
        return Err(ImageError::StateChecksumMismatch {
            stored: info.crc32c,
            computed,
        });
    }
    Ok(stored)
}

/// Reads an image stream from `input` and writes it as a directory at
/// `dst` (atomically; `sync` as in [`super::WriteOptions::sync`], writeback
/// started as with the default [`super::WriteOptions::writeback_step`]).
pub fn stream_to_dir<R: Read>(input: R, dst: &Path, sync: bool) -> Result<Manifest, ConvertError> {
    let w = ConvertError::Write;
    let reader = StreamReader::open(input)?;
    let mut backend = DirBackend::create(dst, sync, super::DEFAULT_WRITEBACK_STEP).map_err(w)?;
    backend.head(reader.head()).map_err(w)?;
    let (info, stored, memory) = reader.read_state_stored()?;
    // Checks checksum and decompression; the stored bytes are copied as is.
    super::compress::decode_state(&info, stored.clone())?;
    backend.state(&info, &stored).map_err(w)?;
    let manifest = memory.copy_to(&mut backend)?;
    backend.finish(&manifest).map_err(w)?;
    Ok(manifest)
}
