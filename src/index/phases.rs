//! Where verification spends its time: each phase's CPU time (the running thread's, summed
//! over the threads that ran it, so the phases add up to the process's CPU time whatever
//! else the machine runs), for `shikaku verify`'s profile. Counted process-wide; a phase
//! costs two clock reads per section or segment file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A phase of verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The main file's section checksums.
    MainChecksums,
    /// The person bucket directory and the persons in hash order.
    PersonOrder,
    /// Every person ref names a record.
    PersonRefs,
    /// The public-expense sections' structure.
    Kohi,
    /// The segment bodies' checksums.
    SegmentChecksums,
    /// Every record's codes and strings.
    SegmentRecords,
    /// Every card directory slot.
    SegmentDirectory,
    /// Every path of the card-key FST.
    SegmentFst,
    /// Signed: each file's bytes against the manifest and the index's own checksums.
    SignedChecksums,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::MainChecksums,
        Phase::PersonOrder,
        Phase::PersonRefs,
        Phase::Kohi,
        Phase::SegmentChecksums,
        Phase::SegmentRecords,
        Phase::SegmentDirectory,
        Phase::SegmentFst,
        Phase::SignedChecksums,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::MainChecksums => "main file checksums",
            Phase::PersonOrder => "person order",
            Phase::PersonRefs => "person refs",
            Phase::Kohi => "public-expense sections",
            Phase::SegmentChecksums => "segment checksums",
            Phase::SegmentRecords => "segment records",
            Phase::SegmentDirectory => "segment card directories",
            Phase::SegmentFst => "segment card-key FSTs",
            Phase::SignedChecksums => "signed: bytes against the manifest",
        }
    }
}

static SPENT_NS: [AtomicU64; Phase::ALL.len()] = [const { AtomicU64::new(0) }; Phase::ALL.len()];

/// Runs `f`, counting the CPU time its thread spent to `phase`.
pub(super) fn timed<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    let started = thread_cpu_ns();
    let out = f();
    let spent = thread_cpu_ns().saturating_sub(started);
    SPENT_NS[phase as usize].fetch_add(spent, Ordering::Relaxed);
    out
}

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Each phase's time so far in this process, summed over threads; phases never run left out.
pub fn phase_times() -> Vec<(Phase, Duration)> {
    Phase::ALL
        .iter()
        .map(|&p| {
            (
                p,
                Duration::from_nanos(SPENT_NS[p as usize].load(Ordering::Relaxed)),
            )
        })
        .filter(|(_, d)| !d.is_zero())
        .collect()
}
