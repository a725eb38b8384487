//! Arbitrary bytes into the image readers: the stream reader to the end
//! (memory through a discarding sink) and the manifest parser. Neither may
//! panic, hang, or allocate by trusting a length field.
//! Seed corpus: any `sbx` image stream or `manifest.bin`.
#![no_main]

use checkpoints::image::{Manifest, ReadOptions, StreamReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = StreamReader::open(data)
        .and_then(|r| r.read_state())
        .and_then(|(_, mem)| {
            mem.restore_with(
                &|_: u64, _: &[u8]| Ok(()),
                &ReadOptions {
                    threads: 1,
                    progress: None,
                },
            )
        });
    let _ = Manifest::decode(data);
});
