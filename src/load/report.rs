//! What a run counted, per thread while running and merged at the end, and the report printed
//! for people (`text`) and scripts (`--json`).

use super::Mode;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in ns from 1 ns to one hour with 3 significant digits; a longer
/// latency is recorded as one hour (and would be reported as such, never dropped).
const HIST_MAX_NS: u64 = 3_600_000_000_000;
/// Longest error or failure message kept for the report.
const MAX_MESSAGE: usize = 300;

/// Counters of one load thread, and after `merge` of the whole run.
#[derive(Debug, Clone)]
pub struct Stats {
    /// From each measured request's intended send time to its reply: the run's latency.
    pub latency_ns: Histogram<u64>,
    /// From the intended send time to the write that carried the request: the client's (or
    /// its core's) lateness, part of `latency_ns`. Open loop shows here when the pacer or the
    /// writer was held up; a request waiting at the outstanding cap shows here too.
    pub lag_ns: Histogram<u64>,
    /// From that write to the reply: the server's and the network's part of `latency_ns`.
    pub service_ns: Histogram<u64>,
    /// Requests handed to a connection (warm-up included).
    pub sent: u64,
    /// Replies received (warm-up included).
    pub replies: u64,
    /// Replies to requests intended after the warm-up: these are in the histogram and rate.
    pub measured: u64,
    /// Answers whose validity equals `expected`.
    pub right: u64,
    /// Answers with another validity.
    pub wrong: u64,
    /// Replies that are neither an answer nor an error (nil, other bulk, +OK, ...).
    pub unexpected: u64,
    /// `-ERR ...` replies.
    pub errors: u64,
    pub connection_failures: u64,
    /// Requests that were due but never answered (connection failed or the run timed out).
    pub unanswered: u64,
    /// Open loop: requests that found their connection at the outstanding cap and so went
    /// out later than intended (their latency still counts from the intended time).
    pub cap_hits: u64,
    /// Open loop: requests not even queued because their connection's backlog was full.
    pub dropped: u64,
    /// Time of the last measured reply, ns of the run clock.
    pub last_reply_ns: u64,
    pub first_error: Option<String>,
    pub first_failure: Option<String>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            latency_ns: histogram(),
            lag_ns: histogram(),
            service_ns: histogram(),
            sent: 0,
            replies: 0,
            measured: 0,
            right: 0,
            wrong: 0,
            unexpected: 0,
            errors: 0,
            connection_failures: 0,
            unanswered: 0,
            cap_hits: 0,
            dropped: 0,
            last_reply_ns: 0,
            first_error: None,
            first_failure: None,
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("constant histogram bounds are valid")
}

impl Stats {
    /// A measured reply to a request intended at `intended`, written at `written`, answered
    /// at `now` (ns of the run clock).
    pub fn record_reply(&mut self, intended: u64, written: u64, now: u64) {
        debug_assert!(intended <= written, "a request is written after it is due");
        self.latency_ns
            .saturating_record(now.saturating_sub(intended).max(1));
        self.lag_ns
            .saturating_record(written.saturating_sub(intended).max(1));
        self.service_ns
            .saturating_record(now.saturating_sub(written).max(1));
    }

    /// A request due in the measured part of the run that was never answered (its
    /// connection failed, it was dropped, or the run ended first): recorded as the longest
    /// latency the histogram holds, one hour, so the percentiles count it as infinitely late
    /// rather than leave it out (which would hide a stalled server: coordinated omission).
    pub fn record_never_answered(&mut self) {
        self.unanswered += 1;
        self.latency_ns.saturating_record(HIST_MAX_NS);
    }

    pub fn note_error(&mut self, msg: &[u8]) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(clip(&String::from_utf8_lossy(msg)));
        }
    }

    pub fn note_failure(&mut self, msg: &str) {
        self.connection_failures += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(clip(msg));
        }
    }

    pub fn merge(&mut self, o: Stats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_ns.add(&o.latency_ns);
        let _ = self.lag_ns.add(&o.lag_ns);
        let _ = self.service_ns.add(&o.service_ns);
        self.sent += o.sent;
        self.replies += o.replies;
        self.measured += o.measured;
        self.right += o.right;
        self.wrong += o.wrong;
        self.unexpected += o.unexpected;
        self.errors += o.errors;
        self.connection_failures += o.connection_failures;
        self.unanswered += o.unanswered;
        self.cap_hits += o.cap_hits;
        self.dropped += o.dropped;
        self.last_reply_ns = self.last_reply_ns.max(o.last_reply_ns);
        self.first_error = self.first_error.take().or(o.first_error);
        self.first_failure = self.first_failure.take().or(o.first_failure);
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The result of a run, as printed. Latencies in µs.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    /// "closed" or "open".
    pub loop_kind: &'static str,
    pub connections: usize,
    /// Closed loop: requests outstanding per connection (null in open loop).
    pub pipeline: Option<usize>,
    /// Open loop: the cap on requests outstanding per connection (null in closed loop).
    pub max_outstanding: Option<usize>,
    /// Closed loop in batches of `pipeline` (redis-benchmark -P) rather than refilling each slot.
    pub batch: bool,
    pub threads: usize,
    /// Open loop: the total rate asked for.
    pub target_rate: Option<f64>,
    pub sent: u64,
    pub replies: u64,
    pub measured: u64,
    /// Seconds from the end of the warm-up to the last measured reply.
    pub elapsed_s: f64,
    /// Measured replies per second.
    pub rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    /// The client's part of the latency: intended send time to the write (`Stats::lag_ns`).
    pub lag_p99_us: f64,
    pub lag_p9999_us: f64,
    pub lag_max_us: f64,
    /// The server's and network's part: the write to the reply (`Stats::service_ns`).
    pub service_p50_us: f64,
    pub service_p99_us: f64,
    pub service_p9999_us: f64,
    pub service_max_us: f64,
    pub right: u64,
    pub wrong: u64,
    pub unexpected: u64,
    pub errors: u64,
    pub connection_failures: u64,
    pub unanswered: u64,
    pub cap_hits: u64,
    pub dropped: u64,
    pub first_error: Option<String>,
    pub first_failure: Option<String>,
    /// True when any answer was wrong or unexpected, or any error reply, connection failure
    /// or unanswered request occurred: the exit status is then non-zero.
    pub failed: bool,
}

/// The run's shape, for the report.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub mode: Mode,
    pub connections: usize,
    /// Closed loop: the depth; open loop: the outstanding cap.
    pub pipeline: usize,
    pub batch: bool,
    pub threads: usize,
    pub target_rate: Option<f64>,
}

impl Report {
    pub fn new(shape: Shape, s: &Stats, elapsed_s: f64) -> Report {
        let h = &s.latency_ns;
        let q = |p: f64| quantile_us(h, p);
        let failed =
            s.wrong + s.unexpected + s.errors + s.connection_failures + s.unanswered + s.dropped
                > 0;
        Report {
            mode: shape.mode,
            loop_kind: if shape.target_rate.is_some() {
                "open"
            } else {
                "closed"
            },
            connections: shape.connections,
            pipeline: shape.target_rate.is_none().then_some(shape.pipeline),
            max_outstanding: shape.target_rate.map(|_| shape.pipeline),
            batch: shape.batch,
            threads: shape.threads,
            target_rate: shape.target_rate,
            sent: s.sent,
            replies: s.replies,
            measured: s.measured,
            elapsed_s,
            rate: if elapsed_s > 0.0 {
                s.measured as f64 / elapsed_s
            } else {
                0.0
            },
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: max_us(h),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            lag_p99_us: quantile_us(&s.lag_ns, 0.99),
            lag_p9999_us: quantile_us(&s.lag_ns, 0.9999),
            lag_max_us: max_us(&s.lag_ns),
            service_p50_us: quantile_us(&s.service_ns, 0.5),
            service_p99_us: quantile_us(&s.service_ns, 0.99),
            service_p9999_us: quantile_us(&s.service_ns, 0.9999),
            service_max_us: max_us(&s.service_ns),
            right: s.right,
            wrong: s.wrong,
            unexpected: s.unexpected,
            errors: s.errors,
            connection_failures: s.connection_failures,
            unanswered: s.unanswered,
            cap_hits: s.cap_hits,
            dropped: s.dropped,
            first_error: s.first_error.clone(),
            first_failure: s.first_failure.clone(),
            failed,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    pub fn text(&self) -> String {
        let mode = match self.mode {
            Mode::Elig => "ELIG",
            Mode::EligKeyed => "ELIG.CARD (the rows redis-get sends)",
            Mode::RedisGet => "GET",
            Mode::Ping => "PING",
        };
        let shape = match (self.target_rate, self.pipeline, self.max_outstanding) {
            (Some(r), _, Some(cap)) => format!("open loop at {r:.0}/s, at most {cap} outstanding"),
            (_, Some(p), _) if self.batch => format!("closed loop, batches of {p}"),
            (_, Some(p), _) => format!("closed loop, pipeline {p}"),
            _ => String::new(),
        };
        let mut t = format!(
            "{mode} {shape}: {} connections, {} threads\n\
             requests: {} sent, {} replies, {} measured in {:.2} s = {:.0}/s\n\
             latency µs: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1}  mean {:.1}\n\
             of which the client's lag (due to written) µs: p99 {:.1}  p99.99 {:.1}  max {:.1}\n\
             and the server's (written to answered) µs: p50 {:.1}  p99 {:.1}  p99.99 {:.1}  max {:.1}\n\
             answers: {} right, {} wrong, {} unexpected; {} error replies; {} connection failures; {} unanswered\n",
            self.connections,
            self.threads,
            self.sent,
            self.replies,
            self.measured,
            self.elapsed_s,
            self.rate,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.p9999_us,
            self.max_us,
            self.mean_us,
            self.lag_p99_us,
            self.lag_p9999_us,
            self.lag_max_us,
            self.service_p50_us,
            self.service_p99_us,
            self.service_p9999_us,
            self.service_max_us,
            self.right,
            self.wrong,
            self.unexpected,
            self.errors,
            self.connection_failures,
            self.unanswered,
        );
        if self.cap_hits + self.dropped > 0 {
            t += &format!(
                "warning: the server fell behind the schedule: {} requests waited at the outstanding cap, {} dropped at the backlog limit\n",
                self.cap_hits, self.dropped
            );
        }
        if let Some(e) = &self.first_error {
            t += &format!("first error reply: {e}\n");
        }
        if let Some(e) = &self.first_failure {
            t += &format!("first connection failure: {e}\n");
        }
        t
    }
}

/// The value at quantile `p` in µs; 0 for an empty histogram.
fn quantile_us(h: &Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(p) as f64 / 1000.0
    }
}

/// The largest value recorded in µs (0 for an empty histogram). One definition for the three
/// histograms, so the parts of a latency never report a maximum above the whole's.
fn max_us(h: &Histogram<u64>) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.max() as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (load audit): requests dropped at the open loop's backlog limit did not
    /// fail the run; they are now failures, and timed as never answered.
    #[test]
    fn dropped_requests_fail_the_run() {
        let mut s = Stats {
            dropped: 1,
            ..Stats::default()
        };
        s.record_never_answered();
        let shape = Shape {
            mode: Mode::Elig,
            connections: 1,
            pipeline: 1,
            threads: 1,
            target_rate: Some(1.0),
            batch: false,
        };
        let r = Report::new(shape, &s, 1.0);
        assert!(r.failed);
        assert_eq!((r.dropped, r.unanswered), (1, 1));
        assert!(r.max_us >= 0.99 * HIST_MAX_NS as f64 / 1e3, "{r:?}");
    }
}
