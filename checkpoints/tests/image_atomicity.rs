//! A write that fails midway leaves no valid-looking image and no
//! temporary files.

mod image_common;

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::Path;

use checkpoints::image::{
    read_stream, write_dir, write_stream, Compression, DirImage, ImageError, Progress, ReadOptions,
    WriteError, WriteOptions, PAGE_SIZE,
};
use image_common::*;

fn opts<'a>() -> WriteOptions<'a> {
    WriteOptions {
        compression: Compression::Zstd(1),
        chunk_size: 8 * PAGE_SIZE,
        threads: 2,
        sync: true,
        progress: None,
        ..WriteOptions::default()
    }
}

/// A writer that accepts `limit` bytes and then fails.
struct FailAfter {
    written: Vec<u8>,
    limit: usize,
}

impl Write for FailAfter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit - self.written.len();
        if room == 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "peer went away"));
        }
        let n = room.min(buf.len());
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn stream_cut_by_a_failing_writer_is_an_error_and_never_reads_as_valid() {
    let (mem, ranges) = memory(64, 21);
    let meta = meta();
    let state = state_bytes(3000);
    let inp = input(&meta, &state, &mem, &ranges);
    let mut full = Vec::new();
    write_stream(&mut full, &inp, &opts()).unwrap();
    for limit in (0..full.len()).step_by(997).chain([full.len() - 1]) {
        let mut out = FailAfter {
            written: Vec::new(),
            limit,
        };

        let err = write_stream(&mut out, &inp, &opts()).unwrap_err();

        assert!(
            matches!(err, WriteError::Stream { .. }),
            "limit {limit}: {err:?}"
        );
        let mut dst = vec![0u8; mem.len()];
        let read = read_stream(out.written.as_slice(), &mut dst, &ReadOptions::default());
        assert!(
            matches!(read, Err(ImageError::Truncated { .. })),
            "limit {limit}: {read:?}"
        );
    }
}

#[test]
fn cancelled_dir_write_leaves_nothing_behind() {
    let (mem, ranges) = memory(256, 22);
    let meta = meta();
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("img");
    // Cancel once half the memory is written: state.bin and part of
    // memory.bin exist in the temporary directory at that point.
    let cancel = |p: Progress| {
        if p.done * 2 >= p.total {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let o = WriteOptions {
        progress: Some(&cancel),
        ..opts()
    };

    let err = write_dir(
        &target,
        &input(&meta, &state_bytes(3000), &mem, &ranges),
        &o,
    )
    .unwrap_err();

    assert!(matches!(err, WriteError::Cancelled));
    assert_eq!(entries(root.path()), Vec::<String>::new());
    assert!(matches!(
        DirImage::open(&target),
        Err(ImageError::MissingFile { .. })
    ));
}

#[test]
fn existing_target_is_neither_overwritten_nor_accompanied_by_temp_files() {
    let (mem, ranges) = memory(16, 23);
    let meta = meta();
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("img");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"mine").unwrap();

    let err = write_dir(&target, &input(&meta, b"s", &mem, &ranges), &opts()).unwrap_err();

    assert!(matches!(err, WriteError::TargetExists { .. }));
    assert_eq!(entries(root.path()), vec!["img".to_string()]);
    assert_eq!(entries(&target), vec!["keep".to_string()]);
}

#[test]
fn invalid_ranges_fail_before_anything_is_created() {
    let (mem, _) = memory(16, 24);
    let meta = meta();
    let root = tempfile::tempdir().unwrap();
    let bad = [checkpoints::image::PageRange {
        offset: 100,
        len: PAGE_SIZE,
    }];

    let err = write_dir(
        &root.path().join("img"),
        &input(&meta, b"s", &mem, &bad),
        &opts(),
    )
    .unwrap_err();

    assert!(matches!(err, WriteError::InvalidRange { offset: 100, .. }));
    assert_eq!(entries(root.path()), Vec::<String>::new());
}

#[test]
fn missing_parent_directory_is_an_io_error_and_creates_nothing() {
    let (mem, ranges) = memory(16, 25);
    let meta = meta();
    let root = tempfile::tempdir().unwrap();

    let err = write_dir(
        &root.path().join("no/such/img"),
        &input(&meta, b"s", &mem, &ranges),
        &opts(),
    )
    .unwrap_err();

    assert!(matches!(
        err,
        WriteError::Io {
            op: "create directory",
            ..
        }
    ));
    assert_eq!(entries(root.path()), Vec::<String>::new());
}

#[test]
fn successful_write_leaves_only_the_image() {
    let (mem, ranges) = memory(16, 26);
    let meta = meta();
    let root = tempfile::tempdir().unwrap();
    write_dir(
        &root.path().join("img"),
        &input(&meta, b"s", &mem, &ranges),
        &opts(),
    )
    .unwrap();
    assert_eq!(entries(root.path()), vec!["img".to_string()]);
    let mut names = entries(&root.path().join("img"));
    names.sort();
    assert_eq!(names, vec!["manifest.bin", "memory.bin", "state.bin"]);
}
