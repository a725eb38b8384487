//! The fuzz harness of `fuzz/fuzz_targets/image_reader.rs`, run on stable
//! as a bounded smoke test: up to 200 000 inputs mutated from a seed corpus
//! of valid images (bit flips, byte stores, truncation, splices, huge
//! length fields), at most ~20 s. Every input must be refused or accepted
//! without a panic; the seeds themselves must be accepted.

mod image_common;

use std::time::{Duration, Instant};

use checkpoints::image::{
    write_dir, write_stream, Compression, Manifest, ReadOptions, StreamReader, WriteOptions,
    PAGE_SIZE,
};
use image_common::*;
use rand::{Rng, SeedableRng};

/// Same body as the cargo-fuzz target: the stream reader to the end (with
/// a sink that discards) and the manifest parser.
fn harness(data: &[u8]) -> bool {
    let stream_ok = StreamReader::open(data)
        .and_then(|r| r.read_state())
        .and_then(|(_, mem)| {
            mem.restore_with(
                &|_: u64, _: &[u8]| Ok(()),
                &ReadOptions {
                    threads: 1,
                    progress: None,
                },
            )
        })
        .is_ok();
    let manifest_ok = Manifest::decode(data).is_ok();
    stream_ok || manifest_ok
}

fn seeds() -> Vec<Vec<u8>> {
    let meta = meta();
    let mut seeds = Vec::new();
    for (pages, compression) in [
        (8, Compression::Zstd(1)),
        (6, Compression::None),
        (0, Compression::Zstd(3)),
    ] {
        let (mem, ranges) = memory(pages, pages as u64);
        let opts = WriteOptions {
            compression,
            chunk_size: 2 * PAGE_SIZE,
            threads: 1,
            sync: false,
            progress: None,
            ..WriteOptions::default()
        };
        let inp = input(&meta, b"a small state", &mem, &ranges);
        let mut stream = Vec::new();
        write_stream(&mut stream, &inp, &opts).unwrap();
        seeds.push(stream);
        let root = tempfile::tempdir().unwrap();
        write_dir(&root.path().join("i"), &inp, &opts).unwrap();
        seeds.push(std::fs::read(root.path().join("i/manifest.bin")).unwrap());
    }
    seeds
}

fn mutate(rng: &mut impl Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        if data.is_empty() {
            break;
        }
        let at = rng.gen_range(0..data.len());
        match rng.gen_range(0..6) {
            0 => data[at] ^= 1 << rng.gen_range(0..8),
            1 => data[at] = rng.gen(),
            2 => data.truncate(at),
            3 => {
                // Splice a piece of another seed.
                let from = rng.gen_range(0..other.len().max(1));
                let piece =
                    &other[from.min(other.len())..(from + rng.gen_range(0..64)).min(other.len())];
                data.splice(at..at, piece.iter().copied());
            }
            4 => {
                // A huge little-endian length where one might be.
                let end = (at + 8).min(data.len());
                let huge = (1u64 << rng.gen_range(20..64)).to_le_bytes();
                data[at..end].copy_from_slice(&huge[..end - at]);
            }
            _ => {
                let end = (at + rng.gen_range(0..32)).min(data.len());
                data.drain(at..end);
            }
        }
    }
    data
}

#[test]
fn mutated_images_never_panic_the_readers() {
    let seeds = seeds();
    assert!(seeds.iter().all(|s| harness(s)), "a valid seed was refused");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xF022);
    let start = Instant::now();
    let mut runs = 0u32;
    let mut accepted = 0u32;
    while runs < 200_000 && start.elapsed() < Duration::from_secs(20) {
        let seed = &seeds[rng.gen_range(0..seeds.len())];
        let other = &seeds[rng.gen_range(0..seeds.len())];
        let data = if rng.gen_ratio(1, 50) {
            (0..rng.gen_range(0..256)).map(|_| rng.gen()).collect()
        } else {
            mutate(&mut rng, seed, other)
        };
        accepted += u32::from(harness(&data));
        runs += 1;
    }
    eprintln!(
        "{runs} inputs in {:?}, {accepted} accepted",
        start.elapsed()
    );
    assert!(runs >= 10_000, "only {runs} inputs ran");
}
