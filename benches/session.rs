//! The server's work per request without the kernel: `RespSession::process` over ELIG.CARD
//! and ELIG.PERSON commands (parse, normalize, look up, write the answer JSON and its RESP
//! frame), one command per call as at pipelining depth 1 and sixteen per call as at depth 16.
//! This is the part of a request the server, not the network, decides; `perf/` measures the
//! whole.
//!
//! `cargo bench --bench session` (SHIKAKU_BENCH_PERSONS, default 1,000,000; the index is a
//! mapped, verified generation as a server serves it). `audited_depth/16` is depth 16 with an
//! audit log (`serve --audit-dir`) written to a temporary directory; `preloaded_depth/1` and
//! `/16` serve the same generation copied into 2 MB pages (`serve --preload`).

mod common;

use common::{day, population, Rng, TODAY};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shikaku::domain::PersonKey;
use shikaku::index::MappedIndex;
use shikaku::server::metrics::CoreMetrics;
use shikaku::server::resp::RespSession;
use shikaku::server::session::{Ctx, Session, Shared};
use shikaku::server::Live;
use std::sync::Arc;

/// Commands in the workload the bench cycles through: far more cards than the caches hold.
const COMMANDS: usize = 100_000;

fn bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// The workload encoded as RESP commands back to back, and where each ends: four card
/// queries (every insurer, random members) to one person query, as the load generator's
/// workload mixes them.
fn commands(insurers: &[shikaku::nightly::InsurerRows]) -> (Vec<u8>, Vec<usize>) {
    let mut rng = Rng(11);
    let rows: Vec<_> = insurers.iter().flat_map(|i| i.rows.iter()).collect();
    let (mut bytes, mut ends) = (Vec::new(), Vec::new());
    while ends.len() < COMMANDS {
        let (r, _) = rows[rng.below(rows.len() as u64) as usize];
        if ends.len() % 5 == 4 {
            let Some(n) = &r.individual_number else {
                continue;
            };
            bytes.extend_from_slice(b"*3\r\n");
            bulk(&mut bytes, b"ELIG.PERSON");
            bulk(&mut bytes, n.expose_digits());
        } else {
            bytes.extend_from_slice(b"*7\r\n");
            bulk(&mut bytes, b"ELIG.CARD");
            bulk(&mut bytes, r.insurer.as_str().as_bytes());
            bulk(&mut bytes, r.symbol.as_bytes());
            bulk(&mut bytes, r.number.as_bytes());
            bulk(&mut bytes, &r.branch.as_bytes());
            bulk(&mut bytes, r.birthdate.to_string().as_bytes());
        }
        bulk(&mut bytes, TODAY.as_bytes());
        ends.push(bytes.len());
    }
    (bytes, ends)
}

fn sessions(c: &mut Criterion) {
    let persons = std::env::var("SHIKAKU_BENCH_PERSONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let insurers = population(persons);
    let (bytes, ends) = commands(&insurers);
    let key = PersonKey::demo();
    let files = shikaku::nightly::build_in_memory(insurers, &key, day(TODAY), "bench").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = shikaku::nightly::write_files(&files, dir.path()).unwrap();
    let index = MappedIndex::open_file(&path, key.clone()).unwrap();
    let live = Arc::new(Live::new(index).unwrap());
    let preloaded =
        Arc::new(Live::new(MappedIndex::open_file_preloaded(&path, key).unwrap()).unwrap());
    let shared = Shared {
        live: live.clone(),
        auth: None,
        cores: vec![Arc::new(CoreMetrics::default())],
        reload: Default::default(),
        draining: Default::default(),
        budget: Default::default(),
    };
    let generation = live.load();
    let ctx = Ctx {
        generation: &generation,
        today: day(TODAY),
        shared: &shared,
        metrics: &shared.cores[0],
        audit: None,
    };
    // Every command must be answered, not refused: a bench of errors would measure nothing.
    let mut session = RespSession::new(1);
    let mut out = Vec::new();
    let mut consumed = 0;
    while consumed < bytes.len() {
        out.clear();
        let step = session.process(&bytes[consumed..], &ctx, &mut out);
        assert!(step.consumed > 0, "the workload parses whole");
        consumed += step.consumed;
        assert!(
            out.first() == Some(&b'$') && !out.windows(3).any(|w| w == b"\n-E"),
            "no command is refused"
        );
    }

    // With an audit log (`serve --audit-dir`): a line per query, written to a file as a core
    // writes it (64 KiB at a time).
    let audit_dir = tempfile::tempdir().unwrap();
    let audit_log = std::cell::RefCell::new(
        shikaku::server::audit::AuditLog::create(audit_dir.path(), "bench", 0).unwrap(),
    );
    let audited = Ctx {
        audit: Some(shikaku::server::session::Audit {
            log: &audit_log,
            peer: Some("127.0.0.1:5000".parse().unwrap()),
            at_us: 1_795_857_601_000_123,
        }),
        ..ctx
    };

    let preloaded_generation = preloaded.load();
    let preloaded_ctx = Ctx {
        generation: &preloaded_generation,
        ..ctx
    };

    let mut g = c.benchmark_group(format!("resp_session_{persons}"));
    for (name, depth, ctx) in [
        ("depth", 1usize, &ctx),
        ("depth", 16, &ctx),
        ("audited_depth", 16, &audited),
        ("preloaded_depth", 1, &preloaded_ctx),
        ("preloaded_depth", 16, &preloaded_ctx),
    ] {
        g.throughput(Throughput::Elements(depth as u64));
        let mut session = RespSession::new(1);
        let mut out = Vec::with_capacity(64 << 10);
        let mut at = 0usize; // command index
        g.bench_function(BenchmarkId::new(name, depth), |b| {
            b.iter(|| {
                if at + depth > ends.len() {
                    at = 0;
                }
                let start = if at == 0 { 0 } else { ends[at - 1] };
                let input = &bytes[start..ends[at + depth - 1]];
                out.clear();
                let step = session.process(input, ctx, &mut out);
                debug_assert_eq!(step.requests, depth as u64);
                at += depth;
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = sessions
}
criterion_main!(benches);
