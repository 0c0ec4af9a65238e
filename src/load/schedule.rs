//! When each request is meant to be sent.
//!
//! Latency is measured from a request's intended send time, not from when the client got
//! round to sending it: a server that stalls for 100 ms must show 100 ms of latency on every
//! request that should have gone out during the stall, not one slow request followed by a
//! pause in sending ("coordinated omission"). In closed loop the intended time is the send
//! time, since the next request is only meant to go when a reply frees its slot. In open loop
//! the intended times follow a fixed, evenly spaced timetable that nothing about replies can
//! move: this module computes it from the request number alone.

/// The open-loop timetable of one load thread. The total rate R is shared evenly by T
/// threads: thread t's k-th request is due at `start + (t + k·T) / R`, so the union over all
/// threads is one evenly spaced sequence at rate R.
#[derive(Debug, Clone, Copy)]
pub struct OpenSchedule {
    start_ns: u64,
    phase_ns: f64,
    interval_ns: f64,
}

impl OpenSchedule {
    /// `rate` is the total requests per second of all `threads` (must be positive and finite).
    pub fn new(start_ns: u64, rate: f64, threads: usize, thread: usize) -> OpenSchedule {
        debug_assert!(rate.is_finite() && rate > 0.0 && thread < threads);
        OpenSchedule {
            start_ns,
            phase_ns: 1e9 * thread as f64 / rate,
            interval_ns: 1e9 * threads as f64 / rate,
        }
    }

    /// Intended send time of this thread's request `k`, in ns of the run's clock. Computed
    /// from `k` directly rather than by adding intervals, so rounding never accumulates.
    pub fn intended(&self, k: u64) -> u64 {
        self.start_ns + (self.phase_ns + k as f64 * self.interval_ns) as u64
    }

    /// How many requests are due at `now`: the least k whose intended time is after `now`.
    pub fn due_by(&self, now: u64) -> u64 {
        let since = now.saturating_sub(self.start_ns) as f64 - self.phase_ns;
        // The float estimate can be off by one either way at a boundary: settle it with
        // `intended`, the one definition of the timetable.
        let mut k = if since < 0.0 {
            0
        } else {
            (since / self.interval_ns) as u64 + 1
        };
        while k > 0 && self.intended(k - 1) > now {
            k -= 1;
        }
        while self.intended(k) <= now {
            k += 1;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced() {
        // 30 000/s over 4 threads: each thread every 133 333.3 ns, threads 33 333.3 ns apart.
        let threads = 4;
        let scheds: Vec<_> = (0..threads)
            .map(|t| OpenSchedule::new(1_000, 30_000.0, threads, t))
            .collect();
        for s in &scheds {
            for k in 0..100_000u64 {
                let gap = s.intended(k + 1) - s.intended(k);
                assert!((133_333..=133_334).contains(&gap), "k {k}: gap {gap}");
            }
            // No drift: the millionth request is where the rate says.
            let exact = 1e9 * 4.0 * 1e6 / 30_000.0;
            let drift = (s.intended(1_000_000) - s.intended(0)) as f64 - exact;
            assert!(drift.abs() < 2.0, "drift {drift}");
        }
        // Merged over threads, the timetable is one sequence at the total rate.
        let mut all: Vec<u64> = scheds
            .iter()
            .flat_map(|s| (0..1000).map(|k| s.intended(k)))
            .collect();
        all.sort_unstable();
        assert_eq!(all[0], 1_000);
        for w in all.windows(2) {
            assert!((33_333..=33_334).contains(&(w[1] - w[0])), "{w:?}");
        }
    }

    #[test]
    fn due_by_matches_intended() {
        let s = OpenSchedule::new(5_000, 7_000.0, 3, 2);
        assert_eq!(s.due_by(0), 0);
        assert_eq!(s.due_by(s.intended(0) - 1), 0);
        for k in 0..10_000 {
            assert_eq!(s.due_by(s.intended(k)), k + 1, "k {k}");
            assert_eq!(s.due_by(s.intended(k + 1) - 1), k + 1, "k {k}");
        }
    }

    /// A pacer that polls whenever it happens to run (here: late and irregularly, as when
    /// replies are slow and the client is busy) sends the same requests with the same
    /// intended times as one polling every nanosecond: replies cannot move the timetable.
    #[test]
    fn intended_times_do_not_depend_on_when_the_pacer_runs() {
        let s = OpenSchedule::new(0, 100_000.0, 1, 0);
        let pace = |polls: &[u64]| {
            let mut sent = Vec::new();
            for &now in polls {
                for k in sent.len() as u64..s.due_by(now) {
                    sent.push(s.intended(k));
                }
            }
            sent
        };
        let end = 5_000_000u64;
        let dense: Vec<u64> = (0..=end).collect();
        // Stalls of up to 2 ms between polls, like a client waiting on slow replies.
        let mut sparse = Vec::new();
        let (mut lcg, mut t) = (12_345u64, 0u64);
        while t < end {
            lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            t = (t + (lcg >> 53) * 1_000).min(end);
            sparse.push(t);
        }
        let (dense, sparse) = (pace(&dense), pace(&sparse));
        assert_eq!(dense.len(), 501);
        assert_eq!(dense, sparse);
        assert!(dense.windows(2).all(|w| w[1] - w[0] == 10_000));
    }
}
