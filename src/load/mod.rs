//! `shikaku load`: a load generator for the RESP port, and `shikaku redis-export`, which
//! loads Redis with the same answers for a side-by-side comparison (`perf/compare_redis.sh`).
//!
//! The workload (`queries.csv` with an `expected` validity per query) is encoded into RESP
//! once; the run then only copies bytes. N connections are spread over T threads, each with
//! its own monoio runtime. Closed loop keeps P requests outstanding per connection; open loop
//! sends at a fixed total rate whatever the replies. Every request is timed from its intended
//! send time (see `schedule`), every reply checked against `expected`.

mod driver;
pub mod export;
mod report;
pub mod resp;
pub mod schedule;
pub mod workload;

pub use report::{Report, Shape, Stats};
pub use workload::{card_key, Mode, Workload, WorkloadError};

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

pub const MAX_CONNECTIONS: usize = 10_000;
pub const MAX_PIPELINE: usize = 1_024;
pub const MAX_THREADS: usize = 64;
/// Open loop: most requests outstanding on one connection.
pub const MAX_OUTSTANDING: usize = 65_536;
pub const MAX_RATE: f64 = 100_000_000.0;
pub const MAX_SECONDS: f64 = 86_400.0;
pub const MAX_REQUESTS: u64 = 1_000_000_000_000;

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{0}")]
    Config(String),
    #[error("cannot start a load thread's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot open a connection to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("another load thread failed to set up")]
    Aborted,
    #[error("a load thread panicked")]
    Panicked,
}

/// How long the run issues requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// Seconds after the warm-up.
    Duration(f64),
    /// Requests after the warm-up.
    Requests(u64),
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    pub connections: usize,
    /// Closed loop: requests outstanding per connection.
    pub pipeline: usize,
    /// Closed loop: send `pipeline` requests at once and the next batch only when all are
    /// answered, as redis-benchmark -P does (default: refill each slot as its reply comes).
    pub batch: bool,
    /// Open loop at this total rate (requests/s); `None` for closed loop.
    pub rate: Option<f64>,
    /// Open loop: most requests outstanding per connection.
    pub max_outstanding: usize,
    pub length: Length,
    pub threads: usize,
    /// `AUTH code token` on every connection first.
    pub auth: Option<(String, String)>,
    /// Seconds of load before measuring starts.
    pub warmup: f64,
}

impl LoadConfig {
    /// Checks every limit, so the run itself has nothing left to refuse.
    pub fn check(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::Config(m));
        if !(1..=MAX_CONNECTIONS).contains(&self.connections) {
            return bad(format!("--connections must be 1..={MAX_CONNECTIONS}"));
        }
        if !(1..=MAX_PIPELINE).contains(&self.pipeline) {
            return bad(format!("--pipeline must be 1..={MAX_PIPELINE}"));
        }
        if !(1..=MAX_OUTSTANDING).contains(&self.max_outstanding) {
            return bad(format!("--max-outstanding must be 1..={MAX_OUTSTANDING}"));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return bad(format!("--threads must be 1..={MAX_THREADS}"));
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0 && r <= MAX_RATE) {
                return bad(format!("--rate must be above 0 and at most {MAX_RATE}"));
            }
        }
        if !(0.0..=MAX_SECONDS).contains(&self.warmup) {
            return bad(format!("--warmup must be 0..={MAX_SECONDS} seconds"));
        }
        match self.length {
            Length::Duration(s) if !(s > 0.0 && s <= MAX_SECONDS) => bad(format!(
                "--duration must be above 0 and at most {MAX_SECONDS} seconds"
            )),
            Length::Requests(k) if !(1..=MAX_REQUESTS).contains(&k) => {
                bad(format!("--requests must be 1..={MAX_REQUESTS}"))
            }
            _ => Ok(()),
        }
    }

    /// Threads actually used: never more than connections.
    fn thread_count(&self) -> usize {
        self.threads.min(self.connections)
    }
}

/// Runs the load and returns its report; `Err` only when the run could not start.
/// Wrong answers, error replies and connection failures are in the report (`failed`).
pub fn run(cfg: &LoadConfig, workload: Arc<Workload>, mode: Mode) -> Result<Report, LoadError> {
    cfg.check()?;
    let threads = cfg.thread_count();
    let secs = |s: f64| Duration::from_secs_f64(s).as_nanos() as u64;
    let shared = Arc::new(driver::RunShared {
        workload,
        addr: cfg.addr,
        auth: cfg.auth.clone(),
        threads,
        connections: cfg.connections,
        cap: if cfg.rate.is_some() {
            cfg.max_outstanding
        } else {
            cfg.pipeline
        },
        batch: cfg.batch && cfg.rate.is_none(),
        rate: cfg.rate,
        warmup_ns: secs(cfg.warmup),
        duration_ns: match cfg.length {
            Length::Duration(s) => Some(secs(s)),
            Length::Requests(_) => None,
        },
        requests: match cfg.length {
            Length::Requests(k) => Some(k),
            Length::Duration(_) => None,
        },
        origin: Instant::now(),
        gate: Barrier::new(threads),
        setup_failed: AtomicBool::new(false),
        setup_error: Mutex::new(None),
    });
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("load-{t}"))
                .spawn(move || driver::run_thread(&shared, t))
        })
        .collect();
    let mut results = Vec::with_capacity(threads);
    for h in handles {
        let h = h.map_err(LoadError::Runtime)?;
        results.push(h.join().map_err(|_| LoadError::Panicked)?);
    }
    let setup_error = shared
        .setup_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(e) = setup_error {
        return Err(e);
    }
    let mut total = Stats::default();
    let mut measure_start = u64::MAX;
    for r in results {
        let r = r?;
        measure_start = measure_start.min(r.measure_start_ns);
        total.merge(r.stats);
    }
    // The measured window: the duration asked for (a server that died midway is not credited
    // with its rate until then), or until the last reply when the run counts requests.
    let window_end = match shared.duration_ns {
        Some(d) => total.last_reply_ns.max(measure_start.saturating_add(d)),
        None => total.last_reply_ns,
    };
    let elapsed_s = window_end.saturating_sub(measure_start) as f64 / 1e9;
    let shape = Shape {
        mode,
        connections: cfg.connections,
        pipeline: if cfg.rate.is_some() {
            cfg.max_outstanding
        } else {
            cfg.pipeline
        },
        threads,
        target_rate: cfg.rate,
        batch: cfg.batch && cfg.rate.is_none(),
    };
    Ok(Report::new(shape, &total, elapsed_s))
}
