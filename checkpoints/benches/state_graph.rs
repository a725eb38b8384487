//! Encode and decode of a graph of 1,000,000 small shared objects, each
//! reached twice (two vectors of `Arc`s) and holding a `Weak` to an earlier
//! object. Throughput is in objects per second.

use std::sync::{Arc, Weak};
use std::time::Duration;

use checkpoints::state;
use checkpoints::Stateify;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const OBJECTS: usize = 1_000_000;

#[derive(Stateify)]
struct Small {
    id: u64,
    mode: u32,
    name: [u8; 8],
    parent: Weak<Small>,
}

#[derive(Stateify)]
struct Graph {
    by_id: Vec<Arc<Small>>,
    reversed: Vec<Arc<Small>>,
}

fn build() -> Graph {
    let mut by_id: Vec<Arc<Small>> = Vec::with_capacity(OBJECTS);
    for i in 0..OBJECTS {
        let parent = if i == 0 {
            Weak::new()
        } else {
            Arc::downgrade(&by_id[i / 2])
        };
        by_id.push(Arc::new(Small {
            id: i as u64,
            mode: 0o644,
            name: *b"object\0\0",
            parent,
        }));
    }
    let reversed = by_id.iter().rev().cloned().collect();
    Graph { by_id, reversed }
}

fn bench(c: &mut Criterion) {
    let graph = build();
    let saved = state::save(&graph).expect("save");
    assert_eq!(saved.objects, OBJECTS);
    eprintln!(
        "state_graph: {} objects → {} bytes",
        saved.objects,
        saved.bytes.len()
    );

    let mut group = c.benchmark_group("state_graph");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(OBJECTS as u64));
    group.bench_function("encode_1M_shared_objects", |b| {
        b.iter(|| state::save(&graph).expect("save").bytes.len())
    });
    group.bench_function("decode_1M_shared_objects", |b| {
        b.iter_batched(
            || (),
            |()| state::load::<Graph>(&saved).expect("load"),
            // The loaded graph is dropped outside the timed region.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
