//! Round trips of the image format: directory, stream, conversions.

mod image_common;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use checkpoints::image::{
    dir_to_stream, read_dir, read_stream, stream_to_dir, write_dir, write_stream, Codec,
    Compression, CpuFeatures, DirImage, Progress, ReadOptions, StreamReader, WriteOptions,
    DEFAULT_WRITEBACK_STEP, PAGE_SIZE,
};
use image_common::*;

fn opts<'a>(compression: Compression) -> WriteOptions<'a> {
    WriteOptions {
        compression,
        chunk_size: 64 * PAGE_SIZE,
        threads: 2,
        sync: true,
        progress: None,
        ..WriteOptions::default()
    }
}

#[test]
fn dir_round_trip_restores_state_and_used_memory() {
    let (mem, ranges) = memory(1000, 1);
    let state = state_bytes(300_000);
    let meta = meta();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");

    let written = write_dir(
        &path,
        &input(&meta, &state, &mem, &ranges),
        &opts(Compression::Zstd(3)),
    )
    .unwrap();
    let mut dst = vec![0u8; mem.len()];
    let read = read_dir(&path, &mut dst, &ReadOptions::default()).unwrap();

    assert_eq!(read.state, state);
    assert_eq!(dst, expected_restore(&mem, &ranges));
    assert_eq!(read.manifest.head.meta, meta);
    assert_eq!(written.zero_pages, zero_pages(1000));
    assert_eq!(read.stats.zero_pages, zero_pages(1000));
    assert!(written.state_stored_bytes < written.state_raw_bytes);
}

#[test]
fn stream_round_trip_restores_state_and_used_memory() {
    let (mem, ranges) = memory(700, 2);
    let state = state_bytes(50_000);
    let meta = meta();
    let mut stream = Vec::new();

    write_stream(
        &mut stream,
        &input(&meta, &state, &mem, &ranges),
        &opts(Compression::Zstd(1)),
    )
    .unwrap();
    let mut dst = vec![0u8; mem.len()];
    let read = read_stream(
        stream.as_slice(),
        &mut dst,
        &ReadOptions {
            threads: 3,
            progress: None,
        },
    )
    .unwrap();

    assert_eq!(read.state, state);
    assert_eq!(dst, expected_restore(&mem, &ranges));
    assert_eq!(read.manifest.zero_pages(), zero_pages(700));
}

#[test]
fn zero_pages_are_not_stored() {
    // 256 pages, every other one zero: memory.bin holds exactly 128 pages.
    let mut mem = vec![0u8; 256 * PAGE];
    for i in (0..256).step_by(2) {
        xorshift_fill(i as u64 + 7, &mut mem[i * PAGE..(i + 1) * PAGE]);
    }
    let ranges = [checkpoints::image::PageRange {
        offset: 0,
        len: 256 * PAGE_SIZE,
    }];
    let meta = meta();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");

    let stats = write_dir(
        &path,
        &input(&meta, b"s", &mem, &ranges),
        &opts(Compression::None),
    )
    .unwrap();

    let size = std::fs::metadata(path.join("memory.bin")).unwrap().len();
    assert_eq!(size, 128 * PAGE_SIZE);
    assert_eq!(stats.zero_pages, 128);
    let image = DirImage::open(&path).unwrap();
    let zero = image.manifest().zero_ranges();
    assert_eq!(zero.len(), 128);
    assert_eq!(
        zero[0],
        checkpoints::image::PageRange {
            offset: PAGE_SIZE,
            len: PAGE_SIZE
        }
    );
}

#[test]
fn uncompressed_chunks_are_page_aligned_and_mappable() {
    let (mem, ranges) = memory(500, 3);
    let meta = meta();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    write_dir(
        &path,
        &input(&meta, &state_bytes(10), &mem, &ranges),
        &opts(Compression::None),
    )
    .unwrap();

    let image = DirImage::open(&path).unwrap();
    let chunks = &image.manifest().chunks;
    assert!(chunks.len() > 3);
    for chunk in chunks {
        assert_eq!(chunk.codec, Codec::Raw);
        assert_eq!(
            chunk.file_offset % PAGE_SIZE,
            0,
            "chunk at {:#x}",
            chunk.file_offset
        );
        // The bytes at file_offset are the pages themselves, in run order.
        let mut at = chunk.file_offset;
        for run in &chunk.runs {
            let mut buf = vec![0u8; run.len() as usize];
            image.memory_file().read_exact_at(&mut buf, at).unwrap();
            assert_eq!(
                buf,
                mem[run.offset as usize..(run.offset + run.len()) as usize]
            );
            at += run.len();
        }
    }
}

#[test]
fn incompressible_chunks_fall_back_to_raw_and_aligned() {
    let mut mem = vec![0u8; 128 * PAGE];
    xorshift_fill(99, &mut mem);
    let ranges = [checkpoints::image::PageRange {
        offset: 0,
        len: 128 * PAGE_SIZE,
    }];
    let meta = meta();
    let mut stream = Vec::new();
    let written = write_stream(
        &mut stream,
        &input(&meta, b"x", &mem, &ranges),
        &opts(Compression::Zstd(1)),
    )
    .unwrap();
    let mut dst = vec![0u8; mem.len()];
    let read = read_stream(stream.as_slice(), &mut dst, &ReadOptions::default()).unwrap();
    assert!(read
        .manifest
        .chunks
        .iter()
        .all(|c| c.codec == Codec::Raw && c.file_offset % PAGE_SIZE == 0));
    assert_eq!(written.memory_stored_bytes, 128 * PAGE_SIZE);
    assert_eq!(dst, mem);
}

#[test]
fn dir_to_stream_reproduces_the_written_stream() {
    let (mem, ranges) = memory(400, 4);
    let state = state_bytes(20_000);
    let meta = meta();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let inp = input(&meta, &state, &mem, &ranges);
    write_dir(&path, &inp, &opts(Compression::Zstd(2))).unwrap();
    let mut direct = Vec::new();
    write_stream(&mut direct, &inp, &opts(Compression::Zstd(2))).unwrap();

    let mut converted = Vec::new();
    dir_to_stream(&path, &mut converted).unwrap();

    assert_eq!(converted, direct);
}

#[test]
fn stream_to_dir_reproduces_the_written_directory() {
    let (mem, ranges) = memory(400, 5);
    let state = state_bytes(20_000);
    let meta = meta();
    let dir = tempfile::tempdir().unwrap();
    let inp = input(&meta, &state, &mem, &ranges);
    for compression in [Compression::None, Compression::Zstd(1)] {
        let direct = dir.path().join(format!("direct-{compression:?}"));
        let converted = dir.path().join(format!("converted-{compression:?}"));
        write_dir(&direct, &inp, &opts(compression)).unwrap();
        let mut stream = Vec::new();
        write_stream(&mut stream, &inp, &opts(compression)).unwrap();

        stream_to_dir(stream.as_slice(), &converted, true).unwrap();

        for name in ["manifest.bin", "state.bin", "memory.bin"] {
            let a = std::fs::read(direct.join(name)).unwrap();
            let b = std::fs::read(converted.join(name)).unwrap();
            assert!(a == b, "{name} differs for {compression:?}");
        }
    }
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let (mem, ranges) = memory(600, 6);
    let meta = meta();
    let inp = input(&meta, b"state", &mem, &ranges);
    let mut one = Vec::new();
    let mut four = Vec::new();
    write_stream(
        &mut one,
        &inp,
        &WriteOptions {
            threads: 1,
            ..opts(Compression::Zstd(1))
        },
    )
    .unwrap();
    write_stream(
        &mut four,
        &inp,
        &WriteOptions {
            threads: 4,
            ..opts(Compression::Zstd(1))
        },
    )
    .unwrap();
    assert_eq!(one, four);
}

/// Starting writeback while `memory.bin` is written (here every page,
/// raw and zstd) changes nothing in the files, and the image reads back.
#[test]
fn writeback_does_not_change_the_image() {
    let (mem, ranges) = memory(600, 9);
    let meta = meta();
    let inp = input(&meta, b"state", &mem, &ranges);
    let dir = tempfile::tempdir().unwrap();
    for compression in [Compression::None, Compression::Zstd(1)] {
        let mut files = Vec::new();
        for (i, step) in [0, PAGE_SIZE, DEFAULT_WRITEBACK_STEP]
            .into_iter()
            .enumerate()
        {
            let path = dir.path().join(format!("img-{compression:?}-{i}"));
            let o = WriteOptions {
                writeback_step: step,
                ..opts(compression)
            };
            write_dir(&path, &inp, &o).unwrap();
            let mut dst = vec![0u8; mem.len()];
            read_dir(&path, &mut dst, &ReadOptions::default()).unwrap();
            assert_eq!(dst, expected_restore(&mem, &ranges), "step {step}");
            files.push((
                std::fs::read(path.join("memory.bin")).unwrap(),
                std::fs::read(path.join("state.bin")).unwrap(),
            ));
        }
        assert!(files[0].0.len() as u64 > 100 * PAGE_SIZE);
        assert!(files.iter().all(|f| *f == files[0]), "{compression:?}");
    }
}

#[test]
fn sink_receives_exactly_the_nonzero_used_pages() {
    let (mem, ranges) = memory(300, 7);
    let meta = meta();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    write_dir(
        &path,
        &input(&meta, b"s", &mem, &ranges),
        &opts(Compression::Zstd(1)),
    )
    .unwrap();
    let got: Mutex<BTreeMap<u64, Vec<u8>>> = Mutex::new(BTreeMap::new());
    let sink = |offset: u64, data: &[u8]| {
        for (i, page) in data.chunks(PAGE).enumerate() {
            got.lock()
                .unwrap()
                .insert(offset + (i * PAGE) as u64, page.to_vec());
        }
        Ok(())
    };

    DirImage::open(&path)
        .unwrap()
        .restore_memory_with(&sink, &ReadOptions::default())
        .unwrap();

    let got = got.into_inner().unwrap();
    let expected: BTreeMap<u64, Vec<u8>> = (0..300)
        .filter(|i| i % 16 != 15 && i % 4 != 1)
        .map(|i| ((i * PAGE) as u64, mem[i * PAGE..(i + 1) * PAGE].to_vec()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn progress_reaches_total_monotonically() {
    let (mem, ranges) = memory(300, 8);
    let meta = meta();
    let seen: Mutex<Vec<Progress>> = Mutex::new(Vec::new());
    let progress = |p: Progress| {
        seen.lock().unwrap().push(p);
        ControlFlow::Continue(())
    };
    let mut stream = Vec::new();
    let o = WriteOptions {
        progress: Some(&progress),
        ..opts(Compression::Zstd(1))
    };
    write_stream(&mut stream, &input(&meta, b"s", &mem, &ranges), &o).unwrap();
    let seen = seen.into_inner().unwrap();
    let used: u64 = ranges.iter().map(|r| r.len).sum();
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(
        seen.last(),
        Some(&Progress {
            done: used,
            total: used
        })
    );
}

#[test]
fn read_progress_reaches_used_total_in_both_forms() {
    let (mem, ranges) = memory(300, 10);
    let meta = meta();
    let used: u64 = ranges.iter().map(|r| r.len).sum();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("img");
    let inp = input(&meta, b"s", &mem, &ranges);
    write_dir(&path, &inp, &opts(Compression::Zstd(1))).unwrap();
    let mut stream = Vec::new();
    write_stream(&mut stream, &inp, &opts(Compression::Zstd(1))).unwrap();
    for from_stream in [false, true] {
        let seen: Mutex<Vec<Progress>> = Mutex::new(Vec::new());
        let progress = |p: Progress| {
            seen.lock().unwrap().push(p);
            ControlFlow::Continue(())
        };
        let ro = ReadOptions {
            threads: 2,
            progress: Some(&progress),
        };
        let mut dst = vec![0u8; mem.len()];
        if from_stream {
            read_stream(stream.as_slice(), &mut dst, &ro).unwrap();
        } else {
            read_dir(&path, &mut dst, &ro).unwrap();
        }
        let seen = seen.into_inner().unwrap();
        let max = seen.iter().map(|p| p.done).max();
        assert_eq!(max, Some(used), "stream: {from_stream}");
        assert!(seen.iter().all(|p| p.total == used && p.done <= used));
    }
}

#[test]
fn stream_head_is_available_before_memory() {
    let (mem, ranges) = memory(50, 9);
    let meta = meta();
    let mut stream = Vec::new();
    write_stream(
        &mut stream,
        &input(&meta, b"s", &mem, &ranges),
        &opts(Compression::Zstd(1)),
    )
    .unwrap();

    let reader = StreamReader::open(stream.as_slice()).unwrap();

    let head = reader.head();
    assert_eq!(
        head.meta.schema.check_against(0xABCD, &schema_table()),
        Ok(())
    );
    assert_eq!(
        head.meta
            .cpu
            .check_runnable_on(&CpuFeatures::host().unwrap()),
        Ok(())
    );
    assert_eq!(head.layout.used_ranges, ranges);
}

#[test]
fn empty_memory_round_trips() {
    let meta = meta();
    let mut stream = Vec::new();
    write_stream(
        &mut stream,
        &input(&meta, b"", &[], &[]),
        &opts(Compression::Zstd(1)),
    )
    .unwrap();
    let read = read_stream(stream.as_slice(), &mut [], &ReadOptions::default()).unwrap();
    assert_eq!((read.state.len(), read.manifest.chunks.len()), (0, 0));
}

#[test]
fn read_progress_can_cancel_a_restore() {
    let (mem, ranges) = memory(300, 12);
    let meta = meta();
    let mut stream = Vec::new();
    write_stream(
        &mut stream,
        &input(&meta, b"s", &mem, &ranges),
        &opts(Compression::Zstd(1)),
    )
    .unwrap();
    let stop = |_: Progress| ControlFlow::Break(());
    let mut dst = vec![0u8; mem.len()];

    let err = read_stream(
        stream.as_slice(),
        &mut dst,
        &ReadOptions {
            threads: 2,
            progress: Some(&stop),
        },
    )
    .unwrap_err();

    assert!(matches!(err, checkpoints::image::ImageError::Cancelled));
}

#[test]
fn stream_round_trips_through_a_socket_pair() {
    let (mem, ranges) = memory(500, 13);
    let state = state_bytes(40_000);
    let meta = meta();
    let (tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut dst = vec![0u8; mem.len()];

    let read = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut tx = tx;
            write_stream(
                &mut tx,
                &input(&meta, &state, &mem, &ranges),
                &opts(Compression::Zstd(1)),
            )
        });
        let read = read_stream(&rx, &mut dst, &ReadOptions::default());
        writer.join().unwrap().unwrap();
        read.unwrap()
    });

    assert_eq!(read.state, state);
    assert_eq!(dst, expected_restore(&mem, &ranges));
}
