//! Where a build's time goes: wall and CPU time of each phase (`Phases`), and the CPU time of
//! each stage of the per-insurer work, summed over the threads that ran it (`StageTimes`).
//! Phases run one after the other, so their wall times add up to the build's; the stages of
//! `read_encode` run on every core at once, so only their CPU times say where that phase
//! goes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// CPU time this process has used, every thread together.
pub(super) fn process_cpu() -> Duration {
    cpu_clock(rustix::time::ClockId::ProcessCPUTime)
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    cpu_clock(rustix::time::ClockId::ThreadCPUTime)
}

fn cpu_clock(id: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(id);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Wall and CPU time of each build phase, in milliseconds, for the report and the log.
pub(super) struct Phases {
    wall_since: Instant,
    cpu_since: Duration,
    pub wall_ms: BTreeMap<String, u64>,
    pub cpu_ms: BTreeMap<String, u64>,
}

impl Phases {
    pub(super) fn new() -> Phases {
        Phases {
            wall_since: Instant::now(),
            cpu_since: process_cpu(),
            wall_ms: BTreeMap::new(),
            cpu_ms: BTreeMap::new(),
        }
    }

    /// Ends `phase`, started where the previous one ended.
    pub(super) fn end(&mut self, phase: &str) {
        let wall_ms = self.wall_since.elapsed().as_millis() as u64;
        let cpu_now = process_cpu();
        let cpu_ms = cpu_now.saturating_sub(self.cpu_since).as_millis() as u64;
        self.wall_ms.insert(phase.to_owned(), wall_ms);
        self.cpu_ms.insert(phase.to_owned(), cpu_ms);
        tracing::debug!(
            phase,
            wall_ms,
            cpu_ms,
            peak_rss_mb = peak_rss_mb(),
            "build phase done"
        );
        self.wall_since = Instant::now();
        self.cpu_since = cpu_now;
    }
}

/// The process's peak resident memory so far (Linux `VmHWM`), for the phase log.
pub(super) fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// A stage of reading and encoding one insurer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The snapshot file read into memory.
    ReadFile,
    /// Its encoding checked (UTF-8) or decoded (CP932).
    Decode,
    /// CSV rows split and checked under the row rules, into records.
    ParseRows,
    /// Deduplicated, sorted by card key, person hashes, the segment encoded (FST, heap,
    /// directory), card conflicts found.
    Encode,
    /// The segment file written and fsynced.
    WriteSegment,
    /// An insurer's state with change files: its snapshot read and parsed, its change files
    /// applied (`snapshot::materialize`).
    Materialize,
    /// A change generation's insurer: its state compared card by card with the parent's
    /// view, the changed cards encoded again as a delta segment.
    Diff,
}

impl Stage {
    const ALL: [Stage; 7] = [
        Stage::ReadFile,
        Stage::Decode,
        Stage::ParseRows,
        Stage::Encode,
        Stage::WriteSegment,
        Stage::Materialize,
        Stage::Diff,
    ];

    fn name(self) -> &'static str {
        match self {
            Stage::ReadFile => "read_file",
            Stage::Decode => "decode",
            Stage::ParseRows => "parse_rows",
            Stage::Encode => "encode",
            Stage::WriteSegment => "write_segment",
            Stage::Materialize => "materialize",
            Stage::Diff => "diff",
        }
    }
}

/// CPU time per [`Stage`], summed over every thread (nanoseconds).
#[derive(Debug, Default)]
pub(crate) struct StageTimes([AtomicU64; Stage::ALL.len()]);

impl StageTimes {
    fn add(&self, stage: Stage, cpu: Duration) {
        let ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        self.0[stage as usize].fetch_add(ns, Ordering::Relaxed);
    }

    /// Milliseconds by stage name, for the report.
    pub(super) fn cpu_ms(&self) -> BTreeMap<String, u64> {
        Stage::ALL
            .iter()
            .map(|&s| {
                let ns = self.0[s as usize].load(Ordering::Relaxed);
                (s.name().to_owned(), ns / 1_000_000)
            })
            .collect()
    }

    /// A clock for the calling thread, charging its CPU time to stages as they end.
    pub(crate) fn clock(&self) -> StageClock<'_> {
        StageClock {
            times: self,
            since: thread_cpu(),
        }
    }
}

/// One thread's CPU time since the last stage it ended. Not `Send`: thread CPU time is the
/// calling thread's only.
pub(crate) struct StageClock<'a> {
    times: &'a StageTimes,
    since: Duration,
}

impl StageClock<'_> {
    /// Ends `stage`: the thread's CPU time since the last `end` (or the clock's start) is
    /// charged to it.
    pub(crate) fn end(&mut self, stage: Stage) {
        let now = thread_cpu();
        self.times.add(stage, now.saturating_sub(self.since));
        self.since = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_charged_the_cpu_time_spent_in_them() {
        let times = StageTimes::default();
        let mut clock = times.clock();
        let spin = |ms: u64| {
            let until = thread_cpu() + Duration::from_millis(ms);
            let mut x = 0u64;
            while thread_cpu() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        };
        spin(30);
        clock.end(Stage::Encode);
        clock.end(Stage::Decode);
        let ms = times.cpu_ms();
        assert!(ms["encode"] >= 30, "{ms:?}");
        assert!(ms["decode"] < 30, "{ms:?}");
        assert_eq!(ms.len(), Stage::ALL.len());
    }

    #[test]
    fn phases_record_wall_and_cpu_time() {
        let mut phases = Phases::new();
        let until = process_cpu() + Duration::from_millis(20);
        while process_cpu() < until {
            std::hint::black_box(0);
        }
        phases.end("spin");
        assert!(phases.cpu_ms["spin"] >= 20, "{:?}", phases.cpu_ms);
        assert!(phases.wall_ms.contains_key("spin"));
    }
}
