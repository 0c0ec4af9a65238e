//! `DATA/watch.json`: what `shikaku build --watch` is doing and what its last build, upload
//! and promotion came to, rewritten (by rename) at each step, for the operator and for
//! monitoring. Every text in it is masked as `report.json`'s are.

use crate::domain::text::mask_digit_runs;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const STATUS_FILE: &str = "watch.json";

/// How a build of the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Published: live in the data directory.
    Published,
    /// Refused by the delivery guard: kept under `refused/`; the loop waits for new files.
    Refused,
    /// Failed (a file the build cannot read, the data directory busy or full): tried again.
    Failed,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Build {
    pub outcome: Option<Outcome>,
    pub generation: Option<String>,
    /// The `.csv` files that landed (or went) since the build before, relative to the
    /// snapshots directory.
    pub files: Vec<String>,
    pub error: Option<String>,
    /// From the first file seen to the build's start (the settle window).
    pub settle_ms: u64,
    pub elapsed_ms: u64,
    pub phases_ms: BTreeMap<String, u64>,
    /// Rows the build rejected (its report says which, and why).
    pub rows_rejected: u64,
    pub generation_kind: Option<String>,
    /// When the build then merged the layers (at 32, `docs/operations.md`): the merge, live
    /// now; `generation` and the figures above stay the change generation's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Upload {
    pub generation: Option<String>,
    pub bytes: u64,
    pub uploaded_bytes: u64,
    pub elapsed_ms: u64,
    pub error: Option<String>,
    /// Generations built and not yet uploaded, oldest first.
    pub waiting: Vec<String>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// `watching`, `settling`, `building`, `stopped`.
    pub state: &'static str,
    pub snapshots: String,
    pub builds: u64,
    pub failures: u64,
    /// Failures since the last build that published.
    pub failing_for: u64,
    pub last_build: Build,
    pub last_upload: Option<Upload>,
    /// What the fleet's promote policy last decided.
    pub promote: Option<String>,
    /// Why the snapshots directory could not be read, while it cannot.
    pub scan_error: Option<String>,
}

pub fn masked(text: &str) -> String {
    mask_digit_runs(text).into_owned()
}

impl Status {
    /// Writes `DATA/watch.json` by rename; a failure is logged, never the loop's end.
    pub fn write(&self, data: &Path) {
        let path = data.join(STATUS_FILE);
        let tmp = data.join(format!(".{STATUS_FILE}.tmp"));
        let body = serde_json::to_vec_pretty(self).expect("a status serializes");
        let written = std::fs::create_dir_all(data)
            .and_then(|()| std::fs::write(&tmp, body))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
}
