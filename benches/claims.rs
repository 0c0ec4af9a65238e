//! The claims pre-check per receipt, against the benchmarks' synthetic population (1,000,000
//! persons by default; `SHIKAKU_BENCH_PERSONS` to change), side by side in one run with the
//! same receipts answered the way a clinic's software would do it today: one card query per
//! receipt and day of service, each parsed and answered as a batch query is (answer JSON
//! written), here in process (without HTTP; `perf/claims.sh` measures the HTTP batch way).
//!
//! `cargo bench --bench claims`. The claims file: `SHIKAKU_BENCH_RECEIPTS` receipts (default
//! 100,000) of the month before the population's snapshot date, each on a random record, in
//! CP932, with one to four days of service.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shikaku::claims::output::{FileColumn, RowWriter};
use shikaku::claims::{check_file, parse, Format, Summary};
use shikaku::domain::*;
use shikaku::index::Index;
use shikaku::nightly::{build_in_memory, InsurerRows};
use shikaku::query::{write_answer, CardFields, CardQuery, Lookup};
use std::fmt::Write as _;

mod common;
use common::{day, population, Rng, TODAY};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A claims file of `receipts` receipts for October 2026, CP932, CRLF; and the receipts'
/// card queries (one per day of service) as a clinic's software would send them.
fn claims_file(insurers: &[InsurerRows], receipts: usize) -> (Vec<u8>, Vec<[String; 6]>) {
    let records: Vec<&Record> = insurers
        .iter()
        .flat_map(|i| &i.rows)
        .map(|(r, _)| r)
        .collect();
    let mut rng = Rng(11);
    let mut text = String::from("IR,1,13,1,1234567,,ベンチ医院,202611,00,0312345678\r\n");
    let mut queries = Vec::new();
    for n in 1..=receipts {
        let r = records[rng.below(records.len() as u64) as usize];
        let sex = if r.sex == Sex::Female { 2 } else { 1 };
        let _ = write!(
            text,
            "RE,{n},1112,202610,{},{sex},{},{}{}\r\n",
            r.name,
            r.birthdate.to_compact(),
            ",".repeat(30),
            r.name_kana
        );
        let _ = write!(
            text,
            "HO,{},{},{},2,{},,,,,,,,,\r\nSN,1,01,,,,{},,\r\nSY,8840107,,1,,,,,\r\n",
            r.insurer.as_str(),
            r.symbol,
            r.number,
            100 + rng.below(5000),
            r.branch
        );
        let mut days = [""; 31];
        let visits = 1 + rng.below(4) as usize;
        for _ in 0..visits {
            let d = rng.below(31) as usize;
            days[d] = "1";
        }
        let _ = write!(
            text,
            "SI,12,1,112007410,,288,{visits},,,,,,,{}\r\n",
            days.join(",")
        );
        for (d, _) in days.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
            queries.push([
                r.insurer.as_str().to_string(),
                r.symbol.clone(),
                r.number.clone(),
                r.branch.to_string(),
                r.birthdate.to_compact(),
                format!("2026-10-{:02}", d + 1),
            ]);
        }
    }
    let _ = write!(text, "GO,{receipts},0,99\r\n");
    let (bytes, _, lossy) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!lossy);
    let mut bytes = bytes.into_owned();
    bytes.push(0x1a);
    (bytes, queries)
}

fn bench(c: &mut Criterion) {
    let persons = env_count("SHIKAKU_BENCH_PERSONS", 1_000_000);
    let receipts = env_count("SHIKAKU_BENCH_RECEIPTS", 100_000);
    let insurers = population(persons);
    let (file, queries) = claims_file(&insurers, receipts);
    let files = build_in_memory(insurers, &PersonKey::demo(), day(TODAY), "g-bench").unwrap();
    let index = Index::open(files, PersonKey::demo()).unwrap();
    let mut out = Vec::with_capacity(receipts * 80);
    let mut group = c.benchmark_group(format!("claims_{persons}_persons"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(receipts as u64));
    group.bench_function("parse", |b| {
        b.iter(|| black_box(parse(&file).unwrap().receipts.len()))
    });
    group.bench_function("check", |b| {
        b.iter(|| {
            out.clear();
            let f = parse(&file).unwrap();
            let mut w = RowWriter::new(Format::Csv, FileColumn::Unnamed);
            w.begin(&mut out);
            let mut s = Summary::default();
            check_file(&index, "bench", &f, &mut w, &mut out, &mut s, |_, _, _| {});
            black_box(s.receipts)
        })
    });
    // The same receipts as one card query per day, each parsed and answered with its JSON.
    let today = day(TODAY);
    group.bench_function("query_per_day", |b| {
        b.iter(|| {
            out.clear();
            for q in &queries {
                let query = CardQuery::parse(&CardFields {
                    insurer_number: Some(&q[0]),
                    symbol: Some(&q[1]),
                    number: Some(&q[2]),
                    branch: Some(&q[3]),
                    birthdate: Some(&q[4]),
                    date: Some(&q[5]),
                    limit_consent: false,
                })
                .unwrap();
                let outcome = index.card(&query, today);
                write_answer(&mut out, &outcome, today, index.generation(), false);
            }
            black_box(out.len())
        })
    });
    group.finish();
    eprintln!(
        "claims bench: {receipts} receipts, {} card queries (days of service), {} bytes of UKE",
        queries.len(),
        file.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
