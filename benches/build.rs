//! Build throughput: encoding segments, linking persons and writing the index, in memory;
//! and the per-insurer encode alone (dedup and card-key order, hashes, segment), the build's
//! largest stage. `cargo bench --bench build`. (Snapshot parsing is measured by the full build
//! in `perf/`, whose report gives each stage's CPU time.)

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shikaku::domain::PersonKey;
use shikaku::nightly::{build_in_memory, encode_insurer};

mod common;
use common::{day, population, TODAY};

fn build(c: &mut Criterion) {
    let persons = 200_000;
    let insurers = population(persons);
    let key = PersonKey::demo();
    let mut g = c.benchmark_group("build");
    g.throughput(Throughput::Elements(persons as u64));
    g.sample_size(10);
    g.bench_function("encode_link_write_200k_persons", |b| {
        b.iter(|| {
            black_box(
                build_in_memory(insurers.clone(), &key, day(TODAY), "bench")
                    .unwrap()
                    .total_bytes(),
            )
        })
    });
    g.finish();
    // Every insurer of the population encoded in turn, as one build thread does.
    let rows: u64 = insurers.iter().map(|i| i.rows.len() as u64).sum();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(rows));
    g.sample_size(10);
    g.bench_function("encode_insurers_200k_persons", |b| {
        b.iter(|| {
            for (i, rows) in insurers.iter().enumerate() {
                let part = encode_insurer(rows.clone(), i as u32, &key, day(TODAY)).unwrap();
                black_box(part.segment.meta.xxh3);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
