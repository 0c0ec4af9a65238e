//! A change build's discovery at the nation's layout: 3,445 insurer directories, each with a
//! snapshot and `changes/` holding 97 change files (30 days of data-gen's deliveries hold
//! 333,978). `discover_at` lists every directory again (what a `shikaku build` does); a
//! watch's `discover_scanned` takes each unchanged directory's scan from its `ScanCache`
//! and lists only the one a change file landed in. The files are empty: discovery reads
//! names, not contents.
//! `SHIKAKU_BENCH_INSURERS=3445 SHIKAKU_BENCH_CHANGE_FILES=97 cargo bench --bench discover`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shikaku::domain::InsurerNumber;
use shikaku::snapshot::{discover_at, discover_scanned, ChangeTime, ScanCache};
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Writes the layout; every directory's time is set an hour back, as a delivery's directories
/// are between landings (a directory younger than two seconds is never kept).
fn layout(root: &Path, insurers: usize, change_files: usize) {
    let mut list = String::from("insurer_number,insurer_name,kind\n");
    let old = SystemTime::now() - Duration::from_secs(3600);
    for i in 0..insurers {
        let number = InsurerNumber::from_body(&format!("{:07}", 1_000_000 + i)).unwrap();
        let number = number.as_str();
        list.push_str(&format!("{number},保険者{i},kumiai\n"));
        let dir = root.join(number);
        let changes = dir.join("changes");
        fs::create_dir_all(&changes).unwrap();
        fs::write(dir.join("20261001.csv"), "").unwrap();
        for f in 0..change_files {
            let name = format!("202610{:02}-{:06}.csv", 1 + f % 30, 90000 + f);
            fs::write(changes.join(name), "").unwrap();
        }
        for d in [&changes, &dir] {
            fs::File::open(d).unwrap().set_modified(old).unwrap();
        }
    }
    fs::write(root.join("insurers.csv"), list).unwrap();
}

fn discover(c: &mut Criterion) {
    let insurers = env("SHIKAKU_BENCH_INSURERS", 3445);
    let change_files = env("SHIKAKU_BENCH_CHANGE_FILES", 97);
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), insurers, change_files);
    let now = ChangeTime::parse("20261101-000000").unwrap();
    let cache = ScanCache::new();
    let d = discover_scanned(dir.path(), now, Some(&cache)).unwrap();
    assert_eq!(cache.len(), insurers);
    assert_eq!(d, discover_at(dir.path(), now).unwrap());
    let mut g = c.benchmark_group(format!("discover_{insurers}x{change_files}"));
    g.sample_size(10);
    g.bench_function("listed_again", |b| {
        b.iter(|| black_box(discover_at(dir.path(), now).unwrap()))
    });
    g.bench_function("scans_kept", |b| {
        b.iter(|| black_box(discover_scanned(dir.path(), now, Some(&cache)).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, discover);
criterion_main!(benches);
