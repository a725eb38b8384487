//! The stream form of an image (pipes, sockets, live migration).
//!
//! ```text
//! stream   := preamble frame(H) frame(S) frame(C)* frame(E)
//! preamble := magic "SBXSTREA" | version u32 | flags u32 (0) | reserved u64 (0)
//! frame    := tag u8 | 0u8 x3 | desc_len u64 | payload_len u64
//!             | desc (postcard) | crc32c u32 (of tag..desc) | payload
//! ```
//!
//! H: [`ManifestHead`] (no payload) — lets a receiver refuse the image
//! (schema, CPU) before any memory arrives. S: [`StateInfo`], payload = the
//! stored state. C: [`ChunkInfo`], payload = the stored chunk. E: the whole
//! [`Manifest`] (no payload), checked against the frames before it; the
//! reader stops after it, so a socket may carry more afterwards.
//! Every frame is checked (length bounds before reading, header checksum,
//! layout rules, payload checksum) before its contents are used.

use std::io::{self, BufWriter, Read, Write};
use std::time::Instant;

use serde::Serialize;

use super::compress::decode_state;
use super::error::{ImageError, ImageFile, WriteError};
use super::manifest::{
    decode_exact, le_array, parse_header, ChunkInfo, Manifest, ManifestHead, StateInfo,
};
use super::restore::{region_targets, restore_fed, MemorySink, ReadOptions, Target};
use super::stats::ReadStats;
use super::validate::{check_state_info, ChunkChecker};
use super::write::Backend;
use super::{FORMAT_VERSION, MAX_CHUNK_SIZE, MAX_MANIFEST_LEN, MAX_STATE_LEN, STREAM_MAGIC};

pub(crate) const TAG_HEAD: u8 = b'H';
pub(crate) const TAG_STATE: u8 = b'S';
pub(crate) const TAG_CHUNK: u8 = b'C';
pub(crate) const TAG_END: u8 = b'E';
const FRAME_HEADER_LEN: usize = 20;
const PREAMBLE_LEN: usize = 24;

fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..8].copy_from_slice(&STREAM_MAGIC);
    p[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    p
}

/// Stream backend of the writer (also used by [`super::dir_to_stream`]).
pub(crate) struct StreamBackend<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> StreamBackend<W> {
    pub(crate) fn new(out: W) -> Self {
        StreamBackend {
            out: BufWriter::with_capacity(1 << 16, out),
        }
    }

    fn frame<T: Serialize>(
        &mut self,
        tag: u8,
        desc: &T,
        payload: &[&[u8]],
    ) -> Result<(), WriteError> {
        // Serializing the manifest types cannot fail (see encode_framed).
        let desc = postcard::to_stdvec(desc).unwrap_or_default();
        let payload_len: u64 = payload.iter().map(|p| p.len() as u64).sum();
        let mut header = Vec::with_capacity(FRAME_HEADER_LEN + desc.len() + 4);
        header.extend_from_slice(&[tag, 0, 0, 0]);
        header.extend_from_slice(&(desc.len() as u64).to_le_bytes());
        header.extend_from_slice(&payload_len.to_le_bytes());
        header.extend_from_slice(&desc);
        let crc = crc32c::crc32c(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        let io = |source| WriteError::Stream { source };
        self.out.write_all(&header).map_err(io)?;
        for piece in payload {
            self.out.write_all(piece).map_err(io)?;
        }
        Ok(())
    }
}

impl<W: Write> Backend for StreamBackend<W> {
    fn head(&mut self, head: &ManifestHead) -> Result<(), WriteError> {
        self.out
            .write_all(&preamble())
            .map_err(|source| WriteError::Stream { source })?;
        self.frame(TAG_HEAD, head, &[])
    }

    fn state(&mut self, info: &StateInfo, stored: &[u8]) -> Result<(), WriteError> {
        self.frame(TAG_STATE, info, &[stored])
    }

    fn chunk(&mut self, info: &ChunkInfo, stored: &[&[u8]]) -> Result<(), WriteError> {
        self.frame(TAG_CHUNK, info, stored)
    }

    fn finish(mut self, manifest: &Manifest) -> Result<(), WriteError> {
        self.frame(TAG_END, manifest, &[])?;
        self.out
            .flush()
            .map_err(|source| WriteError::Stream { source })
    }
}

/// Byte-counting reader over the stream, turning short reads into
/// `Truncated` with the stream offsets.
struct Input<R> {
    r: R,
    /// Bytes consumed so far.
    offset: u64,
}

impl<R: Read> Input<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ImageError> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(ImageError::Truncated {
                        file: ImageFile::Stream,
                        expected: self.offset + buf.len() as u64,
                        actual: self.offset + got as u64,
                    })
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ImageError::Io {
                        file: ImageFile::Stream,
                        source,
                    })
                }
            }
        }
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Reads exactly `len` bytes into `buf` (cleared first), growing it
    /// only as bytes arrive.
    fn read_vec(&mut self, len: u64, buf: &mut Vec<u8>) -> Result<(), ImageError> {
        buf.clear();
        buf.reserve(len.min(1 << 20) as usize);
        let got = (&mut self.r)
            .take(len)
            .read_to_end(buf)
            .map_err(|source| ImageError::Io {
                file: ImageFile::Stream,
                source,
            })? as u64;
        if got < len {
            return Err(ImageError::Truncated {
                file: ImageFile::Stream,
                expected: self.offset + len,
                actual: self.offset + got,
            });
        }
        self.offset += len;
        Ok(())
    }
}

/// A checked frame header and descriptor.
struct Frame {
    tag: u8,
    desc: Vec<u8>,
    payload_len: u64,
}

fn payload_bound(tag: u8) -> Option<(&'static str, u64)> {
    match tag {
        TAG_HEAD | TAG_END => Some(("frame payload length", 0)),
        TAG_STATE => Some(("state payload length", MAX_STATE_LEN)),
        TAG_CHUNK => Some(("chunk payload length", MAX_CHUNK_SIZE)),
        _ => None,
    }
}

/// Reader state shared by the typestates below.
struct Cursor<R> {
    input: Input<R>,
    head: ManifestHead,
    /// Frames read so far.
    frames: u64,
}

impl<R: Read> Cursor<R> {
    /// Reads and checks the next frame's header, which must be one of
    /// `expected` (described by `what`).
    fn next_frame(&mut self, expected: &[u8], what: &'static str) -> Result<Frame, ImageError> {
        let mut header = [0u8; FRAME_HEADER_LEN];
        self.input.read_exact(&mut header)?;
        let index = self.frames;
        self.frames += 1;
        let tag = header[0];
        let Some((field, max)) = payload_bound(tag).filter(|_| expected.contains(&tag)) else {
            return Err(ImageError::UnexpectedFrame {
                index,
                found: tag,
                expected: what,
            });
        };
        if header[1..4] != [0, 0, 0] {
            return Err(ImageError::Inconsistent {
                what: "reserved frame header bytes are not zero",
            });
        }
        let desc_len = u64::from_le_bytes(le_array(&header[4..12]));
        let payload_len = u64::from_le_bytes(le_array(&header[12..20]));
        if desc_len > MAX_MANIFEST_LEN {
            return Err(ImageError::LengthOutOfBounds {
                field: "frame descriptor length",
                value: desc_len,
                max: MAX_MANIFEST_LEN,
            });
        }
        if payload_len > max {
            return Err(ImageError::LengthOutOfBounds {
                field,
                value: payload_len,
                max,
            });
        }
        let mut desc = Vec::new();
        self.input.read_vec(desc_len, &mut desc)?;
        let mut crc = [0u8; 4];
        self.input.read_exact(&mut crc)?;
        let stored = u32::from_le_bytes(crc);
        let computed = crc32c::crc32c_append(crc32c::crc32c(&header), &desc);
        if stored != computed {
            return Err(ImageError::HeaderChecksumMismatch {
                file: ImageFile::Stream,
                stored,
                computed,
            });
        }
        Ok(Frame {
            tag,
            desc,
            payload_len,
        })
    }
}

/// A stream whose head was read and checked; next comes the state.
pub struct StreamReader<R> {
    cursor: Cursor<R>,
    manifest_time: std::time::Duration,
}

impl<R: Read> StreamReader<R> {
    /// Reads the preamble and the head frame. Check
    /// [`head`](Self::head)`().meta` (schema, CPU) before reading further.
    pub fn open(r: R) -> Result<StreamReader<R>, ImageError> {
        let t = Instant::now();
        let mut input = Input { r, offset: 0 };
        let mut pre = [0u8; PREAMBLE_LEN];
        input.read_exact(&mut pre)?;
        let fixed = parse_header(ImageFile::Stream, STREAM_MAGIC, &pre)?;
        if fixed.body_len != 0 {
            return Err(ImageError::Inconsistent {
                what: "reserved stream preamble bytes are not zero",
            });
        }
        // A placeholder head until the real one is decoded below.
        let mut cursor = Cursor {
            input,
            head: placeholder_head(),
            frames: 0,
        };
        let frame = cursor.next_frame(&[TAG_HEAD], "the head frame")?;
        let head: ManifestHead = decode_exact(ImageFile::Stream, &frame.desc)?;
        head.validate()?;
        cursor.head = head;
        Ok(StreamReader {
            cursor,
            manifest_time: t.elapsed(),
        })
    }

    /// The image's head: identity, schema, CPU requirements, layout.
    pub fn head(&self) -> &ManifestHead {
        &self.cursor.head
    }

    /// Reads, checks and decompresses the state section.
    pub fn read_state(self) -> Result<(Vec<u8>, StreamMemoryReader<R>), ImageError> {
        let t = Instant::now();
        let (info, stored, mut reader) = self.read_state_stored()?;
        let state = decode_state(&info, stored)?;
        reader.stats.state_time = t.elapsed();
        Ok((state, reader))
    }

    /// Reads the state frame; returns its info and stored bytes (checksum
    /// not yet checked) and the reader for the memory frames.
    pub(crate) fn read_state_stored(
        self,
    ) -> Result<(StateInfo, Vec<u8>, StreamMemoryReader<R>), ImageError> {
        let mut cursor = self.cursor;
        let frame = cursor.next_frame(&[TAG_STATE], "the state frame")?;
        let info: StateInfo = decode_exact(ImageFile::Stream, &frame.desc)?;
        check_state_info(&info)?;
        if frame.payload_len != info.stored_len {
            return Err(ImageError::Inconsistent {
                what: "state frame length differs from its stored length",
            });
        }
        let mut stored = Vec::new();
        cursor.input.read_vec(info.stored_len, &mut stored)?;
        let stats = ReadStats {
            state_stored_bytes: info.stored_len,
            state_raw_bytes: info.raw_len,
            manifest_time: self.manifest_time,
            ..ReadStats::default()
        };
        let reader = StreamMemoryReader {
            cursor,
            state: info,
            checker: ChunkChecker::new(),
            chunks: Vec::new(),
            stats,
        };
        Ok((info, stored, reader))
    }
}

fn placeholder_head() -> ManifestHead {
    ManifestHead {
        meta: super::manifest::ImageMeta {
            sandbox_id: String::new(),
            created_unix_secs: 0,
            created_subsec_nanos: 0,
            schema: Default::default(),
            cpu: Default::default(),
        },
        layout: super::manifest::MemoryLayout {
            memory_len: 0,
            used_ranges: Vec::new(),
            chunk_size: 0,
        },
        compression: super::compress::Compression::None,
    }
}

/// A stream whose state was read; next come the memory chunks and the
/// trailer.
pub struct StreamMemoryReader<R> {
    cursor: Cursor<R>,
    state: StateInfo,
    checker: ChunkChecker,
    /// Chunks seen, for the trailer comparison.
    chunks: Vec<ChunkInfo>,
    stats: ReadStats,
}

impl<R: Read> StreamMemoryReader<R> {
    /// The image's head.
    pub fn head(&self) -> &ManifestHead {
        &self.cursor.head
    }

    /// Reads the next chunk (checked against the layout; its payload into
    /// `buf`, not yet checksummed), or `None` after a matching trailer.
    pub(crate) fn next_chunk(
        &mut self,
        buf: &mut Vec<u8>,
    ) -> Result<Option<ChunkInfo>, ImageError> {
        let frame = self
            .cursor
            .next_frame(&[TAG_CHUNK, TAG_END], "a chunk or the end frame")?;
        if frame.tag == TAG_END {
            let trailer: Manifest = decode_exact(ImageFile::Stream, &frame.desc)?;
            let seen = Manifest {
                head: self.cursor.head.clone(),
                state: self.state,
                chunks: std::mem::take(&mut self.chunks),
                memory_stored_len: self.checker.pos(),
            };
            if trailer != seen {
                return Err(ImageError::TrailerMismatch);
            }
            self.chunks = seen.chunks;
            return Ok(None);
        }
        let info: ChunkInfo = decode_exact(ImageFile::Stream, &frame.desc)?;
        self.checker.check(&self.cursor.head.layout, &info)?;
        if frame.payload_len != info.stored_len {
            return Err(ImageError::Inconsistent {
                what: "chunk frame length differs from its stored length",
            });
        }
        self.cursor.input.read_vec(info.stored_len, buf)?;
        self.chunks.push(info.clone());
        Ok(Some(info))
    }

    fn into_manifest(self) -> (Manifest, ReadStats) {
        let manifest = Manifest {
            head: self.cursor.head,
            state: self.state,
            memory_stored_len: self.checker.pos(),
            chunks: self.chunks,
        };
        (manifest, self.stats)
    }

    /// Restores memory into `dst` (the memory file's mapping, at least
    /// `memory_len` bytes, zero-filled: zero pages are not written), in
    /// parallel, each chunk checked before it is copied. Returns the
    /// manifest once the trailer matched. On error `dst` is unspecified.
    pub fn restore_into(
        self,
        dst: &mut [u8],
        opts: &ReadOptions<'_>,
    ) -> Result<(Manifest, ReadStats), ImageError> {
        let needed = self.cursor.head.layout.memory_len;
        self.restore(opts, region_targets(dst, needed)?)
    }

    /// Restores memory through `sink` (called concurrently with disjoint
    /// ranges, only with checked data). Returns the manifest once the
    /// trailer matched.
    pub fn restore_with(
        self,
        sink: &dyn MemorySink,
        opts: &ReadOptions<'_>,
    ) -> Result<(Manifest, ReadStats), ImageError> {
        self.restore(opts, |_| Target::Sink(sink))
    }

    fn restore<'d>(
        mut self,
        opts: &ReadOptions<'_>,
        mut target: impl FnMut(&ChunkInfo) -> Target<'d>,
    ) -> Result<(Manifest, ReadStats), ImageError> {
        let t = Instant::now();
        // Cloned: `self` is borrowed by the producer below.
        let ranges = self.cursor.head.layout.used_ranges.clone();
        let mut index = 0u64;
        let counts = restore_fed(opts, &ranges, |send, buffers| loop {
            let mut buf = buffers.take();
            let Some(info) = self.next_chunk(&mut buf)? else {
                return Ok(());
            };
            let region = target(&info);
            if !send(index, info, buf, region) {
                return Ok(());
            }
            index += 1;
        })?;
        let (manifest, mut stats) = self.into_manifest();
        stats.memory_restored_bytes = counts.raw;
        stats.memory_stored_bytes = manifest.memory_stored_len;
        stats.chunks = manifest.chunks.len() as u64;
        stats.zero_pages = manifest.zero_pages();
        stats.memory_time = t.elapsed();
        Ok((manifest, stats))
    }

    /// Passes every frame on to `backend` unchanged (after checking it).
    pub(crate) fn copy_to<B: Backend>(
        mut self,
        backend: &mut B,
    ) -> Result<Manifest, super::ConvertError> {
        let mut buf = Vec::new();
        while let Some(info) = self.next_chunk(&mut buf)? {
            super::restore::check_chunk_crc(self.chunks.len() as u64 - 1, &info, &buf)?;
            backend
                .chunk(&info, &[&buf])
                .map_err(super::ConvertError::Write)?;
        }
        Ok(self.into_manifest().0)
    }
}

/// Reads a whole stream: state and memory (into `dst`, as
/// [`StreamMemoryReader::restore_into`]). Checks nothing about schema or
/// CPU: use [`StreamReader`] to check the head first.
pub fn read_stream<R: Read>(
    r: R,
    dst: &mut [u8],
    opts: &ReadOptions<'_>,
) -> Result<super::RestoredImage, ImageError> {
    let (state, memory) = StreamReader::open(r)?.read_state()?;
    let (manifest, stats) = memory.restore_into(dst, opts)?;
    Ok(super::RestoredImage {
        manifest,
        state,
        stats,
    })
}
