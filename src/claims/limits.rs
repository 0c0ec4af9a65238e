//! The claims check's limits, in one place.

/// Largest claims file read (bytes). A large hospital's month is a few hundred megabytes
/// (tens of thousands of receipts, an inpatient one of a few hundred records); the file is
/// read whole.
pub const UKE_MAX_BYTES: usize = 1024 * 1024 * 1024;
/// Fields of a record that are kept (the check reads none past `TO` 48); longer records are
/// read, their further fields ignored.
pub const UKE_MAX_FIELDS: usize = 64;
/// Largest `POST /v1/claims` body (bytes): a large hospital's month sent in one request. The
/// whole body is held in memory while it is checked.
pub const CLAIMS_BODY_MAX_BYTES: usize = 256 * 1024 * 1024;
/// Malformed receipts the summary details (each with its line and why); the rest are counted.
pub const SUMMARY_DETAILS_MAX: usize = 20;
