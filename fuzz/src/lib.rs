//! What each fuzz target checks, as plain functions over bytes: the cargo-fuzz targets
//! (`fuzz_targets/`) call them under libFuzzer, and `tests/fuzz_regressions.rs` compiles this
//! crate's source into `cargo test` (stable) to replay the seeds and every crash found.
//!
//! Each check panics on a finding: a panic inside shikaku, or a property that does not hold.
//! It uses nothing but shikaku, serde_json and std (all at hand in shikaku's own tests), so
//! the test suite can include it by path.

pub mod batch;
pub mod changes;
pub mod claims;
pub mod fields;
pub mod fixture;
pub mod index;
pub mod input;
pub mod session;
pub mod snapshot;

/// Every target by name (the file names in `fuzz_targets/`, `seeds/` and the regression
/// directories) with its check.
/// A target's check: panics on a finding.
pub type Check = fn(&[u8]);

pub const TARGETS: &[(&str, Check)] = &[
    ("resp_session", session::resp),
    ("http_session", session::http),
    ("http_framing", session::http_framing),
    ("batch_json", batch::json),
    ("batch_csv", batch::csv),
    ("query_fields", fields::check),
    ("snapshot_rows", snapshot::rows),
    ("change_rows", changes::rows),
    ("index_bytes", index::bytes),
    ("index_mutate", index::mutate),
    ("uke_claims", claims::uke),
];

/// Runs target `name`'s check on `data`.
pub fn check(name: &str, data: &[u8]) {
    let (_, f) = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name:?}"));
    f(data)
}
