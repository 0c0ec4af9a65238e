//! What a following replica tells about itself through the server: whether it keeps up with
//! the fleet's pointer, and how far behind it is when it does not (`/healthz`,
//! `/v1/generation`, `/metrics`). Written by the follower thread, read by the cores when
//! asked (a mutex: these are rare requests, never the query path).

use super::trouble::{TroubleKind, Troubles};
use std::fmt::Write as _;
use std::sync::Mutex;

#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// What the pointer named when last read.
    pub fleet_live: Option<String>,
    /// When the pointer last moved (ms since the Unix epoch).
    pub fleet_changed_ms: u64,
    /// The generations in the store up to the fleet's live one (what is behind is counted
    /// against the generation serving when asked: [`Facts::generations_behind`]).
    pub stored_up_to_live: Vec<String>,
    /// Sealed generations held ready.
    pub ready: Vec<String>,
    /// Last time the store answered (ms since the Unix epoch), 0 never.
    pub store_seen_ms: u64,
    /// What keeps the replica from following the fleet now (and how often each kind began).
    pub troubles: Troubles,
    pub download_failures: u64,
}

impl Facts {
    /// Generations in the store newer than `serving`, up to the fleet's live one; 1 when the
    /// live one is not in the listing yet but is not what serves.
    pub fn generations_behind(&self, serving: &str) -> u64 {
        let listed = self
            .stored_up_to_live
            .iter()
            .filter(|g| g.as_str() > serving)
            .count() as u64;
        match &self.fleet_live {
            Some(live) if live != serving => listed.max(1),
            _ => 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct FollowHealth {
    facts: Mutex<Facts>,
    replica: String,
}

impl FollowHealth {
    pub fn new(replica: &str) -> FollowHealth {
        FollowHealth {
            facts: Mutex::default(),
            replica: replica.to_owned(),
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut Facts)) {
        f(&mut self.facts.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn facts(&self) -> Facts {
        self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `serving` is not what the fleet serves, and for how long (seconds).
    fn behind(f: &Facts, serving: &str, now_ms: u64) -> (bool, u64) {
        match &f.fleet_live {
            Some(live) if live != serving => {
                (true, now_ms.saturating_sub(f.fleet_changed_ms) / 1000)
            }
            _ => (false, 0),
        }
    }
}

impl crate::server::live::FleetReport for FollowHealth {
    /// The JSON object `"fleet":{...}` for `/healthz` and `/v1/generation`, without the key.
    fn write_json(&self, out: &mut Vec<u8>, serving: &str) {
        let f = self.facts();
        let now = super::unix_now_ms();
        let (behind, behind_s) = Self::behind(&f, serving, now);
        let store_s = if f.store_seen_ms == 0 {
            None
        } else {
            Some(now.saturating_sub(f.store_seen_ms) / 1000)
        };
        let value = serde_json::json!({
            "replica": self.replica,
            "fleet_live": f.fleet_live,
            "behind": behind,
            "behind_seconds": behind_s,
            "generations_behind": f.generations_behind(serving),
            "ready": f.ready,
            "store_last_seen_seconds_ago": store_s,
            "trouble": f.troubles.summary(),
            "troubles": f.troubles.now().iter().map(|t| serde_json::json!({
                "kind": t.kind().name(),
                "generation": t.generation(),
                "message": t.to_string(),
            })).collect::<Vec<_>>(),
        });
        out.extend_from_slice(value.to_string().as_bytes());
    }

    /// Prometheus lines for `/metrics`.
    fn write_metrics(&self, out: &mut String, serving: &str) {
        let f = self.facts();
        let now = super::unix_now_ms();
        let (behind, behind_s) = Self::behind(&f, serving, now);
        let store_s = if f.store_seen_ms == 0 {
            -1.0
        } else {
            now.saturating_sub(f.store_seen_ms) as f64 / 1000.0
        };
        let lines: [(&str, &str, &str, f64); 6] = [
            ("shikaku_fleet_behind", "gauge", "1 when the generation served is not the one the fleet's pointer names.", f64::from(u8::from(behind))),
            ("shikaku_fleet_behind_seconds", "gauge", "Seconds since the pointer named a generation this replica does not serve (0 when it does).", behind_s as f64),
            ("shikaku_fleet_generations_behind", "gauge", "Generations in the store newer than the one served, up to the fleet's live one.", f.generations_behind(serving) as f64),
            ("shikaku_fleet_ready_generations", "gauge", "Generations held ready (downloaded, verified, sealed).", f.ready.len() as f64),
            ("shikaku_fleet_store_last_seen_seconds", "gauge", "Seconds since the store last answered (-1: never).", store_s),
            ("shikaku_fleet_download_failures_total", "counter", "Downloads or verifications of a generation that failed.", f.download_failures as f64),
        ];
        for (name, kind, help, value) in lines {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        write_troubles(out, &f.troubles);
    }
}

/// `shikaku_fleet_troubles{kind}` and `shikaku_fleet_troubles_total{kind}`, every kind given
/// (0 when none), so a rule can watch a kind before it ever happened.
fn write_troubles(out: &mut String, troubles: &Troubles) {
    let _ = writeln!(out, "# HELP shikaku_fleet_troubles Faults keeping this replica from following the fleet now, by kind (/healthz fleet.troubles names them).\n# TYPE shikaku_fleet_troubles gauge");
    for kind in TroubleKind::ALL {
        let now = troubles.now().iter().filter(|t| t.kind() == kind).count();
        let _ = writeln!(
            out,
            "shikaku_fleet_troubles{{kind=\"{}\"}} {now}",
            kind.name()
        );
    }
    let _ = writeln!(out, "# HELP shikaku_fleet_troubles_total Faults that began, by kind (each logged when it begins and ends).\n# TYPE shikaku_fleet_troubles_total counter");
    for kind in TroubleKind::ALL {
        let _ = writeln!(
            out,
            "shikaku_fleet_troubles_total{{kind=\"{}\"}} {}",
            kind.name(),
            troubles.began(kind)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: counted by the follower a tick after a swap, `generations_behind` was 1
    /// while `behind` was false for a second after each swap; now both are of the
    /// generation serving when asked.
    #[test]
    fn generations_behind_is_counted_against_the_generation_serving() {
        let f = Facts {
            fleet_live: Some("g3".into()),
            stored_up_to_live: vec!["g1".into(), "g2".into(), "g3".into()],
            ..Facts::default()
        };
        let check = |serving: &str, expected: u64| {
            assert_eq!(f.generations_behind(serving), expected, "serving {serving}")
        };
        check("g1", 2);
        check("g2", 1);
        check("g3", 0);
        // Rolled back past what is served, or the live one not listed yet: behind by one.
        check("g4", 1);
        let unlisted = Facts {
            fleet_live: Some("g5".into()),
            ..f.clone()
        };
        assert_eq!(unlisted.generations_behind("g3"), 1);
    }
}
