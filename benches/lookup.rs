//! Card and person lookups against the in-memory baseline, side by side in one run.
//!
//! `cargo bench --bench lookup` (set `SHIKAKU_BENCH_PERSONS=1000000,10000000` for the sizes;
//! default 1,000,000). The population is synthesized here, deterministically: families on
//! employee cards across insurers of uneven size, a fifth with a lost qualification, 80% linked
//! to an individual number. The baseline is a `std::collections::HashMap` from the full card key
//! (insurer, symbol, number, branch) to the owned record(s), answering the same question
//! (birthdate match, covered on the date).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shikaku::domain::*;
use shikaku::index::{Index, IndexFiles};
use shikaku::nightly::{build_in_memory, InsurerRows};
use shikaku::query::{CardQuery, Lookup, Outcome, PersonQuery};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;
use common::{day, population, Rng, TODAY};

/// Counts live heap bytes, to measure the baseline's memory.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` was allocated by `alloc` above with the same layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The in-memory baseline: full card key (insurer ‖ symbol ‖ 0 ‖ number ‖ 0 ‖ branch) →
/// records. Lookups build the key into a reused buffer, so the baseline pays no allocation.
type Baseline = HashMap<Box<[u8]>, Vec<Record>>;

fn full_key(
    out: &mut Vec<u8>,
    insurer: &InsurerNumber,
    symbol: &str,
    number: &str,
    branch: Branch,
) {
    out.clear();
    out.extend_from_slice(&insurer.to_key());
    out.extend_from_slice(symbol.as_bytes());
    out.push(0);
    out.extend_from_slice(number.as_bytes());
    out.push(0);
    out.push(branch.value());
}

fn baseline(insurers: &[InsurerRows]) -> Baseline {
    let mut map: Baseline = HashMap::new();
    let mut key = Vec::new();
    for ins in insurers {
        for (r, _) in &ins.rows {
            full_key(&mut key, &r.insurer, &r.symbol, &r.number, r.branch);
            map.entry(key.clone().into_boxed_slice())
                .or_default()
                .push(r.clone());
        }
    }
    map.shrink_to_fit();
    map
}

fn baseline_card(map: &Baseline, key: &mut Vec<u8>, q: &CardQuery, date: Date) -> u8 {
    full_key(
        key,
        &q.insurer,
        &q.symbol,
        &q.number,
        q.branch.unwrap_or(Branch::new(0).unwrap()),
    );
    match map.get(key.as_slice()) {
        None => 4,
        Some(rs) => {
            let mut found = 4;
            for r in rs.iter().filter(|r| r.birthdate == q.birthdate) {
                found = if r.covers(date) { 1 } else { 2 };
            }
            found
        }
    }
}

fn workload(insurers: &[InsurerRows], n: usize) -> (Vec<CardQuery>, Vec<PersonQuery>) {
    let mut rng = Rng(11);
    let mut cards = Vec::with_capacity(n);
    let mut persons = Vec::with_capacity(n);
    let nonempty: Vec<&InsurerRows> = insurers.iter().filter(|i| !i.rows.is_empty()).collect();
    while cards.len() < n {
        let ins = nonempty[rng.below(nonempty.len() as u64) as usize];
        let (r, _) = &ins.rows[rng.below(ins.rows.len() as u64) as usize];
        cards.push(CardQuery {
            insurer: r.insurer,
            symbol: r.symbol.clone(),
            number: r.number.clone(),
            branch: Some(r.branch),
            birthdate: r.birthdate,
            date: Some(day(TODAY)),
            limit_consent: false,
        });
        if let Some(n) = r.individual_number {
            persons.push(PersonQuery {
                individual_number: n,
                date: Some(day(TODAY)),
                limit_consent: false,
            });
        }
    }
    (cards, persons)
}

fn sizes() -> Vec<usize> {
    std::env::var("SHIKAKU_BENCH_PERSONS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000_000])
}

fn lookups(c: &mut Criterion) {
    for persons in sizes() {
        let insurers = population(persons);
        let (cards, people) = workload(&insurers, 100_000);
        let before = LIVE.load(Ordering::Relaxed);
        let map = baseline(&insurers);
        let baseline_bytes = LIVE.load(Ordering::Relaxed) - before;
        let key = PersonKey::demo();
        let bytes = build_in_memory(insurers, &key, day(TODAY), "bench").unwrap();
        let index_bytes = bytes.total_bytes();
        // Production reads mapped files; the Vec copy shows what the mapping costs.
        let dir = tempfile::tempdir().unwrap();
        let path = shikaku::nightly::write_files(&bytes, dir.path()).unwrap();
        let mapped = shikaku::index::MappedIndex::open_file(&path, key.clone()).unwrap();
        // As a server does before serving a generation: checks every checksum, which also
        // maps every page, so lookups do not take first-touch page faults.
        mapped.verify().unwrap();
        let packed = Index::open(packed(&bytes), key.clone()).unwrap();
        packed.verify().unwrap();
        let index = Index::open(bytes, key).unwrap();
        eprintln!(
            "persons {persons}: index_bytes {index_bytes} ({:.1} B/person), baseline_bytes {baseline_bytes} ({:.1} B/person), ratio {:.2}",
            index_bytes as f64 / persons as f64,
            baseline_bytes as f64 / persons as f64,
            index_bytes as f64 / baseline_bytes as f64
        );
        let today = day(TODAY);
        let eligible = cards
            .iter()
            .filter(|q| matches!(index.card(q, today), Outcome::Eligible(_)))
            .count();
        assert!(
            eligible > cards.len() / 2,
            "workload should mostly hit current members"
        );

        let mut g = c.benchmark_group(format!("lookup_{persons}"));
        g.throughput(Throughput::Elements(1));
        let mut i = 0usize;
        g.bench_function(BenchmarkId::new("card", "index"), |b| {
            b.iter(|| {
                i = (i + 1) % cards.len();
                black_box(index.card(black_box(&cards[i]), today).validity())
            })
        });
        let mut key_buf = Vec::with_capacity(64);
        g.bench_function(BenchmarkId::new("card", "index_mmap"), |b| {
            b.iter(|| {
                i = (i + 1) % cards.len();
                black_box(mapped.card(black_box(&cards[i]), today).validity())
            })
        });
        g.bench_function(BenchmarkId::new("card", "hashmap"), |b| {
            b.iter(|| {
                i = (i + 1) % cards.len();
                black_box(baseline_card(
                    &map,
                    &mut key_buf,
                    black_box(&cards[i]),
                    today,
                ))
            })
        });
        g.bench_function(BenchmarkId::new("person", "index"), |b| {
            b.iter(|| {
                i = (i + 1) % people.len();
                black_box(index.person(black_box(&people[i]), today).validity())
            })
        });
        g.finish();

        // Criterion reports mean times; the per-lookup distribution gives the p50 and the
        // tail. Each lookup is timed on its own with `Instant` (about 20 ns of clock reads,
        // shown as `clock` and included in every figure).
        let n = cards.len();
        distribution(&format!("lookup_{persons}/clock"), n, |_| 0);
        distribution(&format!("lookup_{persons}/card/index_mmap"), n, |i| {
            mapped.card(&cards[i], today).validity() as u64
        });
        distribution(&format!("lookup_{persons}/card/index_packed"), n, |i| {
            packed.card(&cards[i], today).validity() as u64
        });
        distribution(&format!("lookup_{persons}/card/keys_only"), n, |i| {
            let q = &cards[i];
            mapped
                .card_records(&q.insurer, &q.symbol, &q.number)
                .count() as u64
        });
        distribution(&format!("lookup_{persons}/card/hashmap"), n, |i| {
            u64::from(baseline_card(&map, &mut key_buf, &cards[i], today))
        });
        distribution(
            &format!("lookup_{persons}/person/index_mmap"),
            people.len(),
            |i| mapped.person(&people[i], today).validity() as u64,
        );
        distribution(
            &format!("lookup_{persons}/person/index_packed"),
            people.len(),
            |i| packed.person(&people[i], today).validity() as u64,
        );
    }
}

/// A generation's files packed into one anonymous region advised to use 2 MB pages. A mapped
/// segment file is its own mapping, too small for 2 MB pages, so every segment access risks a
/// TLB miss; `index_packed` against `index_mmap` shows what that layout costs.
#[derive(Clone)]
struct Packed {
    region: std::sync::Arc<memmap2::Mmap>,
    range: std::ops::Range<usize>,
}

impl AsRef<[u8]> for Packed {
    fn as_ref(&self) -> &[u8] {
        &self.region[self.range.clone()]
    }
}

fn packed(files: &IndexFiles<Vec<u8>>) -> IndexFiles<Packed> {
    let all: Vec<&Vec<u8>> = std::iter::once(&files.main)
        .chain(&files.segments)
        .collect();
    let total: usize = all.iter().map(|f| f.len().next_multiple_of(64)).sum();
    let mut region = memmap2::MmapMut::map_anon(total.max(1)).unwrap();
    // Only a hint: without transparent huge pages the region is plain 4 KB pages.
    let _ = region.advise(memmap2::Advice::HugePage);
    let mut ranges = Vec::with_capacity(all.len());
    let mut at = 0;
    for f in &all {
        region[at..at + f.len()].copy_from_slice(f);
        ranges.push(at..at + f.len());
        at += f.len().next_multiple_of(64);
    }
    let region = std::sync::Arc::new(region.make_read_only().unwrap());
    let mut parts = ranges.into_iter().map(|range| Packed {
        region: region.clone(),
        range,
    });
    IndexFiles {
        main: parts.next().unwrap(),
        segments: parts.collect(),
    }
}

/// Times `f(i)` for every workload index, three passes after a warm-up pass, and prints the
/// distribution of single-lookup times.
fn distribution(name: &str, n: usize, mut f: impl FnMut(usize) -> u64) {
    let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    let mut sink = 0u64;
    for pass in 0..4 {
        for i in 0..n {
            let t = std::time::Instant::now();
            sink = sink.wrapping_add(black_box(f(black_box(i))));
            let ns = t.elapsed().as_nanos() as u64;
            if pass > 0 {
                h.record(ns).unwrap();
            }
        }
    }
    black_box(sink);
    eprintln!(
        "{name}: single-lookup ns p50 {} p90 {} p99 {} mean {:.0} (n {})",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.mean(),
        h.len()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(5));
    targets = lookups
}
criterion_main!(benches);
