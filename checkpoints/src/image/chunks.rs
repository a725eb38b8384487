//! Memory chunks one at a time, for a lazy restore: check every chunk of
//! a directory image up front ([`DirImage::verify_memory`]), then load
//! single chunks when they are needed ([`DirImage::load_chunk`]).
//!
//! A lazy restore starts the guest after the check and before the memory
//! is in place; the caller loads a chunk on the first access to one of its
//! pages and the rest in the background. The load checks the checksum
//! again on the bytes it actually writes, so a `memory.bin` changed after
//! the check is noticed instead of handing the guest unchecked bytes.

use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::dir::DirImage;
use super::error::{ImageError, ImageFile};
use super::manifest::ChunkInfo;
use super::pipeline::thread_count;
use super::restore::{check_crc, restore_chunk, Decoder, MemorySink, ReadOptions, Target};
use super::stats::Progress;

/// Bytes read per `pread` while checking: small enough to stay in the
/// cache between the read and the checksum.
const VERIFY_PIECE: usize = 1 << 20;

/// Per-thread buffers and decompressor of [`DirImage::load_chunk`].
pub struct ChunkScratch {
    dec: Decoder,
    stored: Vec<u8>,
}

impl ChunkScratch {
    /// A new, empty scratch (grows to the largest chunk loaded).
    pub fn new() -> Result<ChunkScratch, ImageError> {
        Ok(ChunkScratch {
            dec: Decoder::new()?,
            stored: Vec::new(),
        })
    }
}

impl std::fmt::Debug for ChunkScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkScratch")
            .field("stored_capacity", &self.stored.capacity())
            .finish_non_exhaustive()
    }
}

fn read_error(info: &ChunkInfo, e: std::io::Error) -> ImageError {
    ImageError::read(ImageFile::Memory, info.file_offset + info.stored_len, 0, e)
}

impl DirImage {
    /// Checks the checksum of every memory chunk's stored bytes, in
    /// parallel, without writing memory anywhere. Progress counts stored
    /// bytes. The first mismatch or read error in chunk order wins when
    /// several threads fail.
    pub fn verify_memory(&self, opts: &ReadOptions<'_>) -> Result<(), ImageError> {
        let chunks = &self.manifest().chunks;
        let total: u64 = chunks.iter().map(|c| c.stored_len).sum();
        let next = AtomicUsize::new(0);
        let done = AtomicU64::new(0);
        // Lowest failing chunk index (usize::MAX = none): workers stop at
        // chunks past it.
        let failed_at = AtomicUsize::new(usize::MAX);
        let threads = thread_count(opts.threads).min(chunks.len().max(1));
        let work = || -> Option<(usize, ImageError)> {
            let mut buf = vec![0u8; VERIFY_PIECE];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let info = chunks.get(i)?;
                if i > failed_at.load(Ordering::Relaxed) {
                    return None;
                }
                let fail = |e: ImageError| {
                    failed_at.fetch_min(i, Ordering::Relaxed);
                    Some((i, e))
                };
                let mut crc = 0u32;
                let mut at = 0u64;
                while at < info.stored_len {
                    let n = (info.stored_len - at).min(VERIFY_PIECE as u64) as usize;
                    if let Err(e) = self
                        .memory_file()
                        .read_exact_at(&mut buf[..n], info.file_offset + at)
                    {
                        return fail(read_error(info, e));
                    }
                    crc = crc32c::crc32c_append(crc, &buf[..n]);
                    at += n as u64;
                }
                if let Err(e) = check_crc(i as u64, info, crc) {
                    return fail(e);
                }
                let now = done.fetch_add(info.stored_len, Ordering::Relaxed) + info.stored_len;
                if let Some(p) = opts.progress {
                    if p(Progress { done: now, total }).is_break() {
                        return fail(ImageError::Cancelled);
                    }
                }
            }
        };
        let errors: Vec<(usize, ImageError)> = std::thread::scope(|s| {
            // This thread works too; helpers the host refuses are done
            // without (their chunks are taken by the others).
            let helpers: Vec<_> = (1..threads)
                .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok())
                .collect();
            let mut errors: Vec<_> = work().into_iter().collect();
            errors.extend(helpers.into_iter().filter_map(|w| match w.join() {
                Ok(r) => r,
                Err(_) => Some((
                    usize::MAX,
                    ImageError::Inconsistent {
                        what: "a chunk-checking thread panicked",
                    },
                )),
            }));
            errors
        });
        match errors.into_iter().min_by_key(|(i, _)| *i) {
            Some((_, e)) => Err(e),
            None => {
                if let Some(p) = opts.progress {
                    if let ControlFlow::Break(()) = p(Progress { done: total, total }) {
                        return Err(ImageError::Cancelled);
                    }
                }
                Ok(())
            }
        }
    }

    /// Reads memory chunk `index`, checks its checksum, decompresses it
    /// and writes its runs through `sink`, on this thread. Returns the raw
    /// bytes written. Nothing is written unless the checksum matched.
    pub fn load_chunk(
        &self,
        index: usize,
        scratch: &mut ChunkScratch,
        sink: &dyn MemorySink,
    ) -> Result<u64, ImageError> {
        let info = self
            .manifest()
            .chunks
            .get(index)
            .ok_or(ImageError::Inconsistent {
                what: "memory chunk index beyond the manifest",
            })?;
        self.read_stored(info, &mut scratch.stored)?;
        restore_chunk(
            &mut scratch.dec,
            index as u64,
            info,
            &scratch.stored[..info.stored_len as usize],
            Target::Sink(sink),
        )?;
        Ok(info.raw_len)
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::ChunkScratch;
    use std::sync::Mutex;

    /// Writes a 3-chunk image (the middle span all zero) and returns its
    /// directory and the memory it holds.
    fn image(dir: &std::path::Path, compression: Compression) -> Vec<u8> {
        let chunk = 64 * 1024;
        let mut memory = vec![0u8; 4 * chunk];
        for (i, b) in memory.iter_mut().enumerate() {
            if !(chunk..2 * chunk).contains(&i) {
                *b = (i * 7 % 251) as u8;
            }
        }
        let meta = ImageMeta::now("chunks", SchemaInfo::default(), CpuFeatures::default());
        let input = ImageInput {
            meta: &meta,
            state: b"state",
            memory: &memory,
            used_ranges: &[PageRange {
                offset: 0,
                len: memory.len() as u64,
            }],
        };
        let opts = WriteOptions {
            compression,
            chunk_size: chunk as u64,
            ..WriteOptions::default()
        };
        write_dir(&dir.join("img"), &input, &opts).unwrap();
        memory
    }

    fn load_all(img: &DirImage) -> Result<Vec<u8>, ImageError> {
        let out = Mutex::new(vec![0u8; img.manifest().head.layout.memory_len as usize]);
        let sink = |off: u64, data: &[u8]| {
            let mut o = out.lock().unwrap();
            o[off as usize..off as usize + data.len()].copy_from_slice(data);
            Ok(())
        };
        let mut scratch = ChunkScratch::new()?;
        // Backwards, to show chunks load independently of each other.
        for i in (0..img.manifest().chunks.len()).rev() {
            img.load_chunk(i, &mut scratch, &sink)?;
        }
        Ok(out.into_inner().unwrap())
    }

    #[test]
    fn verify_then_load_each_chunk_gives_the_memory_back() {
        for compression in [Compression::None, Compression::Zstd(3)] {
            let dir = tempfile::tempdir().unwrap();
            let memory = image(dir.path(), compression);
            let img = DirImage::open(&dir.path().join("img")).unwrap();
            img.verify_memory(&ReadOptions::default()).unwrap();
            assert_eq!(img.manifest().chunks.len(), 3, "the zero span is skipped");
            assert_eq!(load_all(&img).unwrap(), memory);
        }
    }

    #[test]
    fn a_flipped_byte_fails_verify_and_load_of_that_chunk_only() {
        let dir = tempfile::tempdir().unwrap();
        image(dir.path(), Compression::None);
        let path = dir.path().join("img");
        let (bad_offset, good) = {
            let img = DirImage::open(&path).unwrap();
            let c = &img.manifest().chunks;
            (c[2].file_offset + 100, c[0].clone())
        };
        let mem = path.join(MEMORY_FILE);
        let mut bytes = std::fs::read(&mem).unwrap();
        bytes[bad_offset as usize] ^= 0x40;
        std::fs::write(&mem, bytes).unwrap();
        let img = DirImage::open(&path).unwrap();
        let err = img.verify_memory(&ReadOptions::default()).unwrap_err();
        assert!(
            matches!(err, ImageError::ChunkChecksumMismatch { chunk: 2, .. }),
            "{err:?}"
        );
        let mut scratch = ChunkScratch::new().unwrap();
        let written = Mutex::new(Vec::new());
        let sink = |off: u64, _: &[u8]| {
            written.lock().unwrap().push(off);
            Ok(())
        };
        assert!(matches!(
            img.load_chunk(2, &mut scratch, &sink),
            Err(ImageError::ChunkChecksumMismatch { chunk: 2, .. })
        ));
        assert!(written.lock().unwrap().is_empty(), "nothing written");
        assert_eq!(
            img.load_chunk(0, &mut scratch, &sink).unwrap(),
            good.raw_len
        );
        assert!(img.load_chunk(3, &mut scratch, &sink).is_err());
    }
}
