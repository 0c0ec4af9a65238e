//! Per-core counters, summed only when `/metrics` is read.
//!
//! Each core owns one [`CoreMetrics`] and is its only writer, so an increment is a relaxed
//! load and store (plain `mov`s, no locked instruction); atomics are used only so the
//! `/metrics` reader on another core may read them. Nothing on the query path is shared
//! between cores.

use crate::domain::Validity;
use crate::query::QueryKind;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A counter with one writer (its core) and any number of readers.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: load + store cannot lose an update, and avoids a locked add.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Resp = 0,
    Http = 1,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Resp, Protocol::Http];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Resp => "resp",
            Protocol::Http => "http",
        }
    }
}

/// What a query came as: a single query over RESP or HTTP, or one slot of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Resp = 0,
    Http = 1,
    Batch = 2,
}

const VIAS: [&str; 3] = ["resp", "http", "batch"];

impl Via {
    pub fn as_str(self) -> &'static str {
        VIAS[self as usize]
    }
}
/// `unknown`: a malformed batch query that names no kind (only its errors are counted).
const KINDS: [&str; 4] = ["card", "person", "unknown", "kohi"];
/// Slot 0 counts malformed queries; 1–5 the validities.
const OUTCOMES: [&str; 6] = ["error", "1", "2", "3", "4", "5"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Card = 0,
    Person = 1,
    /// A malformed batch query without a valid `kind`.
    Unknown = 2,
    /// Public expense (公費).
    Kohi = 3,
}

impl Kind {
    pub fn of(kind: Option<QueryKind>) -> Kind {
        match kind {
            Some(QueryKind::Card) => Kind::Card,
            Some(QueryKind::Person) => Kind::Person,
            Some(QueryKind::Kohi) => Kind::Kohi,
            None => Kind::Unknown,
        }
    }
}

/// Upper bounds of the latency buckets, in nanoseconds (Prometheus `le`, in seconds).
const BUCKETS_NS: [u64; 15] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// One core's counters.
#[derive(Default)]
pub struct CoreMetrics {
    queries: [[[Counter; 6]; 4]; 3],
    requests: [Counter; 2],
    protocol_errors: [Counter; 2],
    open_connections: [Counter; 2],
    refused_connections: Counter,
    latency_buckets: [Counter; BUCKETS_NS.len() + 1],
    latency_sum_ns: Counter,
    latency_count: Counter,
    audit_lines: Counter,
    audit_lost: Counter,
    auth_refused: [Counter; 2],
    memory_refused: Counter,
    timed_out: Counter,
    descriptors_refused: Counter,
}

impl CoreMetrics {
    #[inline]
    pub fn query(&self, via: Via, kind: Kind, validity: Option<Validity>) {
        let slot = validity.map_or(0, |v| v.code() as usize);
        self.queries[via as usize][kind as usize][slot].add(1);
    }

    #[inline]
    pub fn requests(&self, p: Protocol, n: u64) {
        self.requests[p as usize].add(n);
    }

    pub fn protocol_error(&self, p: Protocol) {
        self.protocol_errors[p as usize].add(1);
    }

    pub fn connection_opened(&self, p: Protocol) {
        self.open_connections[p as usize].add(1);
    }

    pub fn connection_closed(&self, p: Protocol) {
        self.open_connections[p as usize].sub(1);
    }

    /// Credentials refused (a wrong institution code or token): a rising count is someone
    /// guessing.
    pub fn auth_refused(&self, p: Protocol) {
        self.auth_refused[p as usize].add(1);
    }

    /// Lines appended to the audit log, and lines lost because its writes failed.
    pub fn audit(&self, lines: u64, lost: u64) {
        self.audit_lines.add(lines);
        self.audit_lost.add(lost);
    }

    /// A request refused because the server's memory budget was spent.
    pub fn memory_refused(&self) {
        self.memory_refused.add(1);
    }

    /// A connection closed because its request did not arrive whole in time.
    pub fn request_timed_out(&self) {
        self.timed_out.add(1);
    }

    /// A connection refused because the process had no file descriptor left.
    pub fn descriptors_refused(&self) {
        self.descriptors_refused.add(1);
    }

    pub fn connection_refused(&self) {
        self.refused_connections.add(1);
    }

    pub fn open_connections(&self) -> u64 {
        Protocol::ALL
            .iter()
            .map(|p| self.open_connections[*p as usize].get())
            .sum()
    }

    /// Records `n` requests answered in `elapsed` together (one read batch): each is counted
    /// with the batch's mean time, which keeps the clock off the per-request path.
    #[inline]
    pub fn latency(&self, elapsed: Duration, n: u64) {
        if n == 0 {
            return;
        }
        let total = elapsed.as_nanos().min(u128::from(u64::MAX)) as u64;
        let each = total / n;
        let b = BUCKETS_NS
            .iter()
            .position(|&le| each <= le)
            .unwrap_or(BUCKETS_NS.len());
        self.latency_buckets[b].add(n);
        self.latency_sum_ns.add(total);
        self.latency_count.add(n);
    }
}

/// Renders the Prometheus text format, summing every core's counters.
/// What `/metrics` tells of the generations: the one served and the reloads refused.
pub struct LiveFacts<'a> {
    pub generation: &'a str,
    pub epoch: u64,
    /// How it was verified: `signed` (checksums against a trusted signature) or `deep`.
    pub verified: &'a str,
    /// The served generation's build date (`build --date`, default the day it ran in Japan).
    pub built_on: crate::domain::Date,
    pub reload_refusals: u64,
    /// CURRENT names a generation that was refused, and an older one is served.
    pub refused_now: bool,
    /// Panics caught per background thread (each restarted), by thread name.
    pub background_panics: [(&'static str, u64); 2],
    /// What the connections' read buffers hold of the memory budget now, and the budget.
    pub buffered_bytes: usize,
    pub budget_bytes: usize,
}

pub fn render(out: &mut String, cores: &[std::sync::Arc<CoreMetrics>], live: &LiveFacts<'_>) {
    let LiveFacts {
        generation,
        epoch,
        verified,
        ..
    } = live;
    let sum = |f: &dyn Fn(&CoreMetrics) -> u64| cores.iter().map(|c| f(c)).sum::<u64>();
    out.push_str("# HELP shikaku_queries_total Eligibility queries answered, by command, protocol and validity (error: malformed).\n# TYPE shikaku_queries_total counter\n");
    for (v, via) in VIAS.iter().enumerate() {
        for (k, kind) in KINDS.iter().enumerate() {
            // A query of unknown kind was never answered: only its error line is shown.
            let outcomes = if k == Kind::Unknown as usize {
                1
            } else {
                OUTCOMES.len()
            };
            for (o, outcome) in OUTCOMES.iter().enumerate().take(outcomes) {
                let n = sum(&|c| c.queries[v][k][o].get());
                let _ = writeln!(
                    out,
                    "shikaku_queries_total{{command=\"{kind}\",via=\"{via}\",validity=\"{outcome}\"}} {n}"
                );
            }
        }
    }
    type PerProtocol = fn(&CoreMetrics) -> &[Counter; 2];
    let per_protocol: [(&str, &str, &str, PerProtocol); 4] = [
        (
            "shikaku_requests_total",
            "Requests (RESP commands, HTTP requests) handled.",
            "counter",
            |c| &c.requests,
        ),
        (
            "shikaku_protocol_errors_total",
            "Requests refused as malformed or over a limit.",
            "counter",
            |c| &c.protocol_errors,
        ),
        (
            "shikaku_open_connections",
            "Connections open now.",
            "gauge",
            |c| &c.open_connections,
        ),
        (
            "shikaku_auth_refused_total",
            "Credentials refused (wrong institution code or token).",
            "counter",
            |c| &c.auth_refused,
        ),
    ];
    for (name, help, kind, counters) in per_protocol {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for p in Protocol::ALL {
            let n = sum(&|c| counters(c)[p as usize].get());
            let _ = writeln!(out, "{name}{{protocol=\"{}\"}} {n}", p.as_str());
        }
    }
    let counters: [(&str, &str, u64); 6] = [
        (
            "shikaku_refused_connections_total",
            "Connections refused at the per-core limit.",
            sum(&|c| c.refused_connections.get()),
        ),
        (
            "shikaku_descriptor_refusals_total",
            "Connections refused because the process was out of file descriptors.",
            sum(&|c| c.descriptors_refused.get()),
        ),
        (
            "shikaku_memory_budget_refusals_total",
            "Requests refused because the memory budget for request buffers was spent.",
            sum(&|c| c.memory_refused.get()),
        ),
        (
            "shikaku_request_timeouts_total",
            "Connections closed because a request did not arrive whole within its deadline.",
            sum(&|c| c.timed_out.get()),
        ),
        (
            "shikaku_audit_lines_total",
            "Lines appended to the audit log (serve --audit-dir).",
            sum(&|c| c.audit_lines.get()),
        ),
        (
            "shikaku_audit_lost_total",
            "Audit lines lost because the log could not be written.",
            sum(&|c| c.audit_lost.get()),
        ),
    ];
    for (name, help, n) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {n}"
        );
    }
    out.push_str("# HELP shikaku_request_duration_seconds Time to answer a request (mean over its pipelined read batch).\n# TYPE shikaku_request_duration_seconds histogram\n");
    let mut cumulative = 0;
    for (i, le) in BUCKETS_NS.iter().enumerate() {
        cumulative += sum(&|c| c.latency_buckets[i].get());
        let _ = writeln!(
            out,
            "shikaku_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
            *le as f64 / 1e9
        );
    }
    cumulative += sum(&|c| c.latency_buckets[BUCKETS_NS.len()].get());
    let _ = writeln!(
        out,
        "shikaku_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        out,
        "shikaku_request_duration_seconds_sum {}",
        sum(&|c| c.latency_sum_ns.get()) as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "shikaku_request_duration_seconds_count {}",
        sum(&|c| c.latency_count.get())
    );
    out.push_str("# HELP shikaku_live_generation The generation being served (1), by id, and how it was verified (signed: checksums against a trusted signature; deep: every structural check here).\n# TYPE shikaku_live_generation gauge\n");
    let _ = writeln!(
        out,
        "shikaku_live_generation{{id=\"{generation}\",epoch=\"{epoch}\",verified=\"{verified}\"}} 1"
    );
    // Midnight in Japan of the build date: a nightly build moves it on by a day, so an alert
    // on its age finds a generation that was not refreshed, whatever restarts happened.
    out.push_str("# HELP shikaku_live_generation_built_on_timestamp_seconds Start (00:00 Japan time) of the served generation's build date, Unix seconds.\n# TYPE shikaku_live_generation_built_on_timestamp_seconds gauge\n");
    let _ = writeln!(
        out,
        "shikaku_live_generation_built_on_timestamp_seconds {}",
        i64::from(live.built_on.days()) * 86_400 - 9 * 3600
    );
    out.push_str("# HELP shikaku_reload_refusals_total Reloads refused (a generation that failed to open or verify; the one before kept serving).\n# TYPE shikaku_reload_refusals_total counter\n");
    let _ = writeln!(
        out,
        "shikaku_reload_refusals_total {}",
        live.reload_refusals
    );
    out.push_str("# HELP shikaku_reload_refused 1 while CURRENT names a generation that was refused (an older one is served; see /v1/generation).\n# TYPE shikaku_reload_refused gauge\n");
    let _ = writeln!(out, "shikaku_reload_refused {}", u8::from(live.refused_now));
    out.push_str("# HELP shikaku_background_panics_total Panics caught in a background thread, which was restarted (a reload that panicked is refused), by thread.\n# TYPE shikaku_background_panics_total counter\n");
    for (thread, count) in live.background_panics {
        let _ = writeln!(
            out,
            "shikaku_background_panics_total{{thread=\"{thread}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP shikaku_request_buffer_bytes Bytes the connections' read buffers hold beyond their first size (of shikaku_memory_budget_bytes).\n# TYPE shikaku_request_buffer_bytes gauge\nshikaku_request_buffer_bytes {}\n# HELP shikaku_memory_budget_bytes The memory budget for request buffers (serve --memory-budget-bytes).\n# TYPE shikaku_memory_budget_bytes gauge\nshikaku_memory_budget_bytes {}",
        live.buffered_bytes, live.budget_bytes
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sums_cores() {
        let cores = vec![
            Arc::new(CoreMetrics::default()),
            Arc::new(CoreMetrics::default()),
        ];
        cores[0].query(Via::Resp, Kind::Card, Some(Validity::Eligible));
        cores[1].query(Via::Resp, Kind::Card, Some(Validity::Eligible));
        cores[1].query(Via::Batch, Kind::Person, None);
        cores[0].latency(Duration::from_micros(20), 4);
        cores[0].connection_opened(Protocol::Http);
        cores[1].audit(3, 1);
        cores[0].audit(2, 0);
        cores[1].auth_refused(Protocol::Http);
        let mut out = String::new();
        render(
            &mut out,
            &cores,
            &LiveFacts {
                generation: "g1",
                epoch: 0,
                verified: "deep",
                built_on: crate::domain::Date::parse("2026-11-24").unwrap(),
                reload_refusals: 2,
                refused_now: true,
                background_panics: [("reload", 1), ("reaper", 0)],
                buffered_bytes: 5,
                budget_bytes: 9,
            },
        );
        assert!(out.contains("shikaku_reload_refusals_total 2\n"), "{out}");
        assert!(
            out.contains("\nshikaku_background_panics_total{thread=\"reload\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("\nshikaku_audit_lines_total 5\n"), "{out}");
        assert!(out.contains("\nshikaku_audit_lost_total 1\n"), "{out}");
        assert!(
            out.contains("\nshikaku_auth_refused_total{protocol=\"http\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("shikaku_reload_refused 1\n"), "{out}");
        assert!(out.contains("\nshikaku_request_buffer_bytes 5\n"), "{out}");
        assert!(out.contains("\nshikaku_memory_budget_bytes 9\n"), "{out}");
        // 2026-11-24 00:00 in Japan is 2026-11-23 15:00 UTC.
        assert!(
            out.contains("\nshikaku_live_generation_built_on_timestamp_seconds 1795446000\n"),
            "{out}"
        );
        assert!(
            out.contains("shikaku_queries_total{command=\"card\",via=\"resp\",validity=\"1\"} 2\n"),
            "{out}"
        );
        assert!(out.contains(
            "shikaku_queries_total{command=\"person\",via=\"batch\",validity=\"error\"} 1\n"
        ));
        assert!(
            out.contains("shikaku_request_duration_seconds_bucket{le=\"0.000005\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("shikaku_request_duration_seconds_count 4\n"));
        assert!(out.contains("shikaku_open_connections{protocol=\"http\"} 1\n"));
        assert!(
            out.contains("shikaku_live_generation{id=\"g1\",epoch=\"0\",verified=\"deep\"} 1\n")
        );
    }
}
