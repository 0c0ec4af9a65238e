//! Build throughput: encoding segments, linking persons and writing the index, in memory.
//! `cargo bench --bench build`. (Snapshot parsing is measured separately by the full build in
//! `perf/`.)

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shikaku::domain::PersonKey;
use shikaku::nightly::build_in_memory;

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
}

criterion_group!(benches, build);
criterion_main!(benches);
