//! Where verification spends its time: each phase's time summed over the threads that ran
//! it (so on a pool of N threads the phases add up to about N times the wall time), for
//! `shikaku verify`'s profile. Counted process-wide; a phase costs two clock reads per
//! section or segment file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// Runs `f`, counting its time to `phase`.
pub(super) fn timed<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    SPENT_NS[phase as usize].fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    out
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
