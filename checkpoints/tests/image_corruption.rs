//! Every way an image can be damaged is refused with the variant that
//! names the damage, without panicking.

mod image_common;

use std::path::{Path, PathBuf};

use checkpoints::image::{
    read_dir, read_stream, write_dir, write_stream, Compression, DirImage, ImageError, ImageFile,
    Manifest, ReadOptions, SchemaMismatch, WriteOptions, FORMAT_VERSION, PAGE_SIZE,
};
use image_common::*;
use rand::{Rng, SeedableRng};

/// Memory pages of the small test image: with chunks of 2 pages this
/// gives six chunks, zstd-compressed (page repetition) and multi-run.
const PAGES: usize = 12;
const STATE_LEN: usize = 2_000;

fn opts<'a>() -> WriteOptions<'a> {
    WriteOptions {
        compression: Compression::Zstd(1),
        chunk_size: 2 * PAGE_SIZE,
        threads: 2,
        sync: false,
        progress: None,
        ..WriteOptions::default()
    }
}

/// [`memory`] with 3 bits of entropy per byte: zstd halves it, keeping
/// the every-offset truncation sweeps short.
fn small_memory() -> (Vec<u8>, Vec<checkpoints::image::PageRange>) {
    let (mut mem, ranges) = memory(PAGES, 11);
    mem.iter_mut().for_each(|b| *b &= 0x07);
    (mem, ranges)
}

fn small_stream() -> Vec<u8> {
    let (mem, ranges) = small_memory();
    let meta = meta();
    let mut out = Vec::new();
    write_stream(
        &mut out,
        &input(&meta, &state_bytes(STATE_LEN), &mem, &ranges),
        &opts(),
    )
    .unwrap();
    out
}

fn small_dir(root: &Path) -> PathBuf {
    let (mem, ranges) = small_memory();
    let meta = meta();
    let path = root.join("img");
    write_dir(
        &path,
        &input(&meta, &state_bytes(STATE_LEN), &mem, &ranges),
        &opts(),
    )
    .unwrap();
    path
}

fn read_stream_bytes(bytes: &[u8]) -> Result<(), ImageError> {
    let mut dst = vec![0u8; PAGES * PAGE];
    read_stream(
        bytes,
        &mut dst,
        &ReadOptions {
            threads: 1,
            progress: None,
        },
    )
    .map(drop)
}

fn read_dir_at(path: &Path) -> Result<(), ImageError> {
    let mut dst = vec![0u8; PAGES * PAGE];
    read_dir(
        path,
        &mut dst,
        &ReadOptions {
            threads: 1,
            progress: None,
        },
    )
    .map(drop)
}

/// A frame of the stream: (offset, tag, desc_len, payload_len).
fn frames(bytes: &[u8]) -> Vec<(usize, u8, usize, usize)> {
    let mut out = Vec::new();
    let mut off = 24;
    while off < bytes.len() {
        let desc_len = u64::from_le_bytes(bytes[off + 4..off + 12].try_into().unwrap()) as usize;
        let payload_len =
            u64::from_le_bytes(bytes[off + 12..off + 20].try_into().unwrap()) as usize;
        out.push((off, bytes[off], desc_len, payload_len));
        off += 20 + desc_len + 4 + payload_len;
    }
    out
}

/// Recomputes a frame's header checksum after editing its header.
fn reseal(bytes: &mut [u8], (off, _, desc_len, _): (usize, u8, usize, usize)) {
    let end = off + 20 + desc_len;
    let crc = crc32c::crc32c(&bytes[off..end]);
    bytes[end..end + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Recomputes manifest.bin's checksum after editing it.
fn reseal_manifest(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

fn edit_manifest(path: &Path, edit: impl FnOnce(&mut Manifest)) {
    let file = path.join("manifest.bin");
    let mut m = Manifest::decode(&std::fs::read(&file).unwrap()).unwrap();
    edit(&mut m);
    // encode() reseals; validation happens only on decode.
    std::fs::write(&file, m.encode()).unwrap();
}

#[test]
fn stream_truncated_at_every_offset_is_refused_as_truncated() {
    let stream = small_stream();
    assert!(read_stream_bytes(&stream).is_ok());
    eprintln!("stream of {} bytes", stream.len());
    for n in 0..stream.len() {
        match read_stream_bytes(&stream[..n]) {
            Err(ImageError::Truncated {
                file: ImageFile::Stream,
                actual,
                expected,
            }) => {
                assert_eq!(actual, n as u64);
                assert!(expected > actual);
            }
            other => panic!("prefix of {n} bytes: {other:?}"),
        }
    }
}

#[test]
fn dir_files_truncated_at_every_offset_are_refused_as_truncated() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    for (name, kind) in [
        ("manifest.bin", ImageFile::Manifest),
        ("state.bin", ImageFile::State),
        ("memory.bin", ImageFile::Memory),
    ] {
        let full = std::fs::read(path.join(name)).unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path.join(name))
            .unwrap();
        for n in (0..full.len()).rev() {
            file.set_len(n as u64).unwrap();
            match read_dir_at(&path) {
                Err(ImageError::Truncated {
                    file: f, actual, ..
                }) if f == kind => assert_eq!(actual, n as u64),
                other => panic!("{name} cut to {n} bytes: {other:?}"),
            }
        }
        std::fs::write(path.join(name), &full).unwrap();
    }
    assert!(read_dir_at(&path).is_ok());
}

#[test]
fn random_bit_flips_in_a_stream_are_refused() {
    let stream = small_stream();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED);
    for _ in 0..3000 {
        let mut bytes = stream.clone();
        let bit = rng.gen_range(0..bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        assert!(
            read_stream_bytes(&bytes).is_err(),
            "flip of bit {bit} accepted"
        );
    }
}

#[test]
fn random_bit_flips_in_dir_files_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    let image = DirImage::open(&path).unwrap();
    let m = image.manifest();
    // Padding before raw chunks is not part of the image (FORMAT.md):
    // flips there are ignored, so the test does not flip them.
    let padding = |byte: usize| {
        let byte = byte as u64;
        let mut end = 0;
        for c in &m.chunks {
            if (end..c.file_offset).contains(&byte) {
                return true;
            }
            end = c.file_offset + c.stored_len;
        }
        false
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xF11B);
    for name in ["manifest.bin", "state.bin", "memory.bin"] {
        let full = std::fs::read(path.join(name)).unwrap();
        for _ in 0..400 {
            let mut bytes = full.clone();
            let bit = rng.gen_range(0..bytes.len() * 8);
            if name == "memory.bin" && padding(bit / 8) {
                continue;
            }
            bytes[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(path.join(name), &bytes).unwrap();
            assert!(
                read_dir_at(&path).is_err(),
                "{name}: flip of bit {bit} accepted"
            );
        }
        std::fs::write(path.join(name), &full).unwrap();
    }
}

#[test]
fn wrong_magic_is_refused() {
    let mut stream = small_stream();
    stream[0] = b'X';
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    let mut manifest = std::fs::read(path.join("manifest.bin")).unwrap();
    manifest[..8].copy_from_slice(b"GIF89a\0\0");
    reseal_manifest(&mut manifest);
    std::fs::write(path.join("manifest.bin"), &manifest).unwrap();

    assert!(matches!(
        read_stream_bytes(&stream),
        Err(ImageError::BadMagic {
            file: ImageFile::Stream,
            ..
        })
    ));
    assert!(
        matches!(read_dir_at(&path), Err(ImageError::BadMagic { file: ImageFile::Manifest, found }) if &found == b"GIF89a\0\0")
    );
}

#[test]
fn newer_format_version_is_refused() {
    let newer = (FORMAT_VERSION + 1).to_le_bytes();
    let mut stream = small_stream();
    stream[8..12].copy_from_slice(&newer);
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    let mut manifest = std::fs::read(path.join("manifest.bin")).unwrap();
    manifest[8..12].copy_from_slice(&newer);
    reseal_manifest(&mut manifest);
    std::fs::write(path.join("manifest.bin"), &manifest).unwrap();

    let expected = |r: Result<(), ImageError>| matches!(r, Err(ImageError::UnsupportedVersion { found, supported }) if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION);
    assert!(expected(read_stream_bytes(&stream)));
    assert!(expected(read_dir_at(&path)));
}

#[test]
fn changed_fingerprint_table_names_the_type() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    let mut current = schema_table();
    current[1].1 ^= 1;

    let image = DirImage::open(&path).unwrap();
    let err = image
        .manifest()
        .head
        .meta
        .schema
        .check_against(0xABCD, &current)
        .unwrap_err();

    assert!(
        matches!(err, SchemaMismatch::Type { ref type_name, .. } if type_name == "sentry::vfs::FdTable")
    );
}

#[test]
fn manifest_length_of_2_pow_60_is_out_of_bounds() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    let mut manifest = std::fs::read(path.join("manifest.bin")).unwrap();
    manifest[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    std::fs::write(path.join("manifest.bin"), &manifest).unwrap();

    assert!(matches!(
        read_dir_at(&path),
        Err(ImageError::LengthOutOfBounds { field: "manifest body length", value, .. }) if value == 1 << 60
    ));
}

#[test]
fn section_lengths_of_2_pow_60_are_out_of_bounds() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    edit_manifest(&path, |m| m.state.raw_len = 1 << 60);
    assert!(matches!(
        read_dir_at(&path),
        Err(ImageError::LengthOutOfBounds {
            field: "state raw_len",
            ..
        })
    ));

    let path = root.path().join("img");
    std::fs::remove_dir_all(&path).unwrap();
    let path = small_dir(root.path());
    edit_manifest(&path, |m| m.chunks[1].stored_len = 1 << 60);
    assert!(matches!(
        read_dir_at(&path),
        Err(ImageError::LengthOutOfBounds {
            field: "chunk stored_len",
            ..
        })
    ));
}

#[test]
fn stream_frame_lengths_of_2_pow_60_are_out_of_bounds() {
    let stream = small_stream();
    let f = frames(&stream);
    for (index, field) in [
        (1usize, "state payload length"),
        (2, "chunk payload length"),
    ] {
        let mut bytes = stream.clone();
        let (off, ..) = f[index];
        bytes[off + 12..off + 20].copy_from_slice(&(1u64 << 60).to_le_bytes());
        reseal(&mut bytes, f[index]);
        match read_stream_bytes(&bytes) {
            Err(ImageError::LengthOutOfBounds {
                field: got, value, ..
            }) => assert_eq!((got, value), (field, 1 << 60)),
            other => panic!("{field}: {other:?}"),
        }
    }
    let mut bytes = stream.clone();
    let (off, ..) = f[0];
    bytes[off + 4..off + 12].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        read_stream_bytes(&bytes),
        Err(ImageError::LengthOutOfBounds {
            field: "frame descriptor length",
            ..
        })
    ));
}

#[test]
fn missing_files_are_named() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    for name in ["memory.bin", "state.bin", "manifest.bin"] {
        std::fs::remove_file(path.join(name)).unwrap();
        match read_dir_at(&path) {
            Err(ImageError::MissingFile { path: missing }) => assert_eq!(missing, path.join(name)),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn flipped_state_byte_and_flipped_chunk_byte_are_told_apart_in_a_dir() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    let state = std::fs::read(path.join("state.bin")).unwrap();
    let mut flipped = state.clone();
    flipped[state.len() / 2] ^= 0x40;
    std::fs::write(path.join("state.bin"), &flipped).unwrap();
    assert!(matches!(
        read_dir_at(&path),
        Err(ImageError::StateChecksumMismatch { .. })
    ));
    std::fs::write(path.join("state.bin"), &state).unwrap();

    let chunk = DirImage::open(&path).unwrap().manifest().chunks[2].clone();
    let mut memory = std::fs::read(path.join("memory.bin")).unwrap();
    memory[(chunk.file_offset + chunk.stored_len / 2) as usize] ^= 0x40;
    std::fs::write(path.join("memory.bin"), &memory).unwrap();

    match read_dir_at(&path) {
        Err(ImageError::ChunkChecksumMismatch {
            chunk: 2,
            memory_offset,
        }) => assert_eq!(memory_offset, chunk.runs[0].offset),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flipped_state_byte_and_flipped_chunk_byte_are_told_apart_in_a_stream() {
    let stream = small_stream();
    let f = frames(&stream);
    let (s_off, _, s_desc, s_len) = f[1];
    let (c_off, _, c_desc, c_len) = f[3];
    let mut in_state = stream.clone();
    in_state[s_off + 24 + s_desc + s_len / 2] ^= 1;
    let mut in_chunk = stream.clone();
    in_chunk[c_off + 24 + c_desc + c_len / 2] ^= 1;

    assert!(matches!(
        read_stream_bytes(&in_state),
        Err(ImageError::StateChecksumMismatch { .. })
    ));
    assert!(matches!(
        read_stream_bytes(&in_chunk),
        Err(ImageError::ChunkChecksumMismatch { chunk: 1, .. })
    ));
}

#[test]
fn trailer_that_disagrees_with_the_frames_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    let mut m = Manifest::decode(&std::fs::read(path.join("manifest.bin")).unwrap()).unwrap();
    m.head.meta.sandbox_id = "someone-else".into();
    let body = m.encode();
    let body = &body[24..body.len() - 4];
    let mut stream = small_stream();
    let &(e_off, tag, ..) = frames(&stream).last().unwrap();
    assert_eq!(tag, b'E');
    stream.truncate(e_off);
    let mut frame = vec![b'E', 0, 0, 0];
    frame.extend_from_slice(&(body.len() as u64).to_le_bytes());
    frame.extend_from_slice(&0u64.to_le_bytes());
    frame.extend_from_slice(body);
    let crc = crc32c::crc32c(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    stream.extend_from_slice(&frame);

    assert!(matches!(
        read_stream_bytes(&stream),
        Err(ImageError::TrailerMismatch)
    ));
}

#[test]
fn inconsistent_manifest_with_valid_checksum_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    // A run moved into a page that is outside the used ranges.
    edit_manifest(&path, |m| m.chunks[0].runs[0].offset = 15 * PAGE_SIZE);
    assert!(matches!(
        read_dir_at(&path),
        Err(ImageError::Inconsistent { .. })
    ));
}

#[test]
fn restore_into_a_too_small_destination_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let path = small_dir(root.path());
    let mut dst = vec![0u8; PAGE];
    assert!(matches!(
        read_dir(&path, &mut dst, &ReadOptions::default()),
        Err(ImageError::DestinationTooSmall { actual: 4096, .. })
    ));
}
