//! The person section's structure, chosen by measurement: lookups of keyed hashes in
//! (a) the sorted table with interpolation search, (b) an `fst::Map` over the hashes, and
//! (c) the bucket directory over the same sorted table that the format uses (the position of
//! the first entry per `floor(log2 n)`-bit hash prefix, `format::find_person`). `SHIKAKU_BENCH_PERSONS=10000000 cargo bench --bench person` (default 10,000,000).
//! Random 16-byte hashes stand in for keyed BLAKE3 hashes (both uniform); the probes are
//! present hashes in random order. Every structure lives in a `Vec`, so they are compared on
//! equal terms; the bytes each adds to a person are printed.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shikaku::format::{find_person, person_bucket_starts, PERSON_ENTRY_BYTES};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, deterministic, uniform enough for hashes.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn persons() -> usize {
    std::env::var("SHIKAKU_BENCH_PERSONS")
        .ok()
        .and_then(|s| s.split(',').next_back()?.trim().parse().ok())
        .unwrap_or(10_000_000)
}

/// The alternative measured against: interpolation search of the sorted table (what format
/// 2 and the first cut of format 3 used). Keyed hashes are uniform, so the guess lands within
/// a few entries; a window around it is widened until it brackets the hash, and a binary
/// search finishes.
fn interpolation(table: &[u8], hash: &[u8; 16]) -> Option<usize> {
    let n = table.len() / PERSON_ENTRY_BYTES;
    if n == 0 {
        return None;
    }
    let key_at =
        |i: usize| -> &[u8] { &table[i * PERSON_ENTRY_BYTES..i * PERSON_ENTRY_BYTES + 16] };
    let prefix = u64::from_be_bytes(hash[..8].try_into().unwrap());
    let guess = ((u128::from(prefix) * n as u128) >> 64) as usize;
    let (mut lo, mut hi) = (guess.saturating_sub(8), (guess + 8).min(n));
    while lo > 0 && key_at(lo) > &hash[..] {
        lo = lo.saturating_sub((guess - lo).max(8) * 2);
    }
    while hi < n && key_at(hi - 1) < &hash[..] {
        hi = (hi + (hi - guess).max(8) * 2).min(n);
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        match key_at(mid).cmp(&hash[..]) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(mid),
        }
    }
    None
}

fn person_structures(c: &mut Criterion) {
    let n = persons();
    let mut rng = Rng(0x5eed);
    let mut hashes: Vec<[u8; 16]> = (0..n)
        .map(|_| {
            let mut h = [0u8; 16];
            h[..8].copy_from_slice(&rng.next().to_be_bytes());
            h[8..].copy_from_slice(&rng.next().to_be_bytes());
            h
        })
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut table = vec![0u8; hashes.len() * PERSON_ENTRY_BYTES];
    for (i, h) in hashes.iter().enumerate() {
        table[i * PERSON_ENTRY_BYTES..i * PERSON_ENTRY_BYTES + 16].copy_from_slice(h);
    }
    let fst = fst::Map::from_iter(hashes.iter().enumerate().map(|(i, h)| (h, i as u64))).unwrap();
    let starts: Vec<u8> = person_bucket_starts(hashes.iter().copied(), hashes.len() as u64)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let probes: Vec<[u8; 16]> = (0..1_000_000)
        .map(|_| hashes[(rng.next() % hashes.len() as u64) as usize])
        .collect();
    for p in probes.iter().take(1000) {
        let want = find_person(&table, &starts, p);
        assert!(want.is_some());
        assert_eq!(fst.get(p).map(|v| v as usize), want);
        assert_eq!(interpolation(&table, p), want);
    }
    eprintln!(
        "persons {}: sorted table 16 B/person of keys (inside its 24-byte entries); fst {:.1} B/person (would replace the keys); bucket directory adds {:.1} B/person",
        hashes.len(),
        fst.as_fst().as_bytes().len() as f64 / hashes.len() as f64,
        starts.len() as f64 / hashes.len() as f64
    );

    let mut g = c.benchmark_group(format!("person_{}", hashes.len()));
    let mut i = 0usize;
    g.bench_function("sorted_table_interpolation", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(interpolation(&table, black_box(&probes[i])))
        })
    });
    g.bench_function("fst", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(fst.get(black_box(&probes[i])))
        })
    });
    g.bench_function("bucket_directory", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(find_person(&table, &starts, black_box(&probes[i])))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(4));
    targets = person_structures
}
criterion_main!(benches);
