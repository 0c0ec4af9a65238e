//! Reading insurer snapshots (docs/delivery.md): discovering the files, decoding them, and turning every
//! data row into an indexed [`Record`](crate::domain::Record) or a reported reject.
//!
//! Flow for a build: [`discover`] the snapshots directory, then for each
//! [`InsurerSnapshot`] call [`read_snapshot`] (files are independent, so run them in parallel).
//! When it returns an error the file is rejected whole: call [`account_rejected_file`] so its
//! rows are still counted. Do the same for the newest file of an [`Finding::UnlistedDirectory`]
//! with [`Rule::F4`]. Then rows read = indexed + rejected (+ deduplicated, done by the build)
//! holds for every file.
//!
//! With change files: [`discover_at`] gives each insurer's [`InsurerDelivery`] (its newest
//! snapshot, the change files to apply, those superseded); read the change files with
//! [`ChangeInput::read_all`] and make the insurer's state with [`materialize`], which reads
//! the snapshot as above and applies each file ([`apply::apply_change_file`]: rows read =
//! applied + rejected per file). [`State`] and [`Change`] apply single changes, for a caller
//! that keeps a state of its own.
//!
//! Decisions where the contract is silent:
//! - **Rule order.** A row is rejected under the first failing rule in the order R0, R1, R2
//!   (number, then symbol), R3, R4, R5, R6, R7 (sex, relationship, reason_of_loss,
//!   copay_ratio, limit_category); later fields are not examined. Warnings are only computed
//!   for rows that are kept, in the order W1..W4; a row can carry several.
//! - **R0** malformed row: a row whose number of fields differs from the header's, a row with
//!   a cell holding a line break (no field of docs/delivery.md holds one: it is a quote left open, which
//!   swallows the rows after it; the reason names the lines the row spans, so they are in the
//!   report), a line longer than `read::LINE_BYTES_MAX` (64 KiB: skipped without being read
//!   into a record), or whose name or name_kana is longer than `row::MAX_NAME_BYTES` (1,024 bytes).
//!   Its raw text is never quoted (it may hold an individual number in any position).
//! - **File-level rule codes** (every data line of the file counts as read and rejected):
//!   F1 undecodable (neither UTF-8 nor CP932, or mixing them: a line of valid UTF-8 Japanese
//!   beside a line invalid as UTF-8, which read as CP932 would index mojibake), F2 unusable
//!   header (no header row, a header line longer than `read::LINE_BYTES_MAX`, a required
//!   column missing, or a column named twice), F3 not readable as CSV or not a regular file
//!   (a named pipe, device, socket or directory: refused before a byte is read, so none can
//!   stall a build) or a symbolic link whose target lies outside the snapshots directory, F4 directory of an insurer not listed in `insurers.csv`. A whole-file
//!   reject is one [`Issue`] with line 0, and the build logs it as a warning. A file the
//!   system cannot read (permissions, a disk error) is not a defect of the delivery: the
//!   build stops with an error naming it, rather than index the insurer without its members.
//! - **W0** unknown column: ignored, reported once per file with the header's line (1).
//! - **Required columns**: every column of docs/delivery.md except `symbol`, `individual_number`,
//!   `disqualification_date`, `reason_of_loss` and `limit_category`, whose values are optional;
//!   an absent optional column reads as empty in every row.
//! - **Header names** are matched after trimming white space, ASCII case-insensitively.
//! - **W1** covers every unusable individual number: bad check digit, wrong length, or not
//!   digits. The row is kept without it. The value is shown only through `mask_raw`.
//! - **W3** applies to records that cover the snapshot date: a record lost at the 75th birthday
//!   is history, not a wrong insurer.
//! - **W4 and empty kana**: an empty (or blank) `name_kana` is a W4 warning, because the kana is
//!   what tells people apart in X2 and what a clinic reads back; it is not a reject rule in
//!   docs/delivery.md. Katakana means, after NFKC: U+30A1–U+30FE (letters, ・, ー, ヽ, ヾ) and white space.
//!   The record keeps the NFKC form of the kana, trimmed (half-width kana become full-width).
//! - `name` is kept as written (only trimmed); an empty name is not a rule of docs/delivery.md.
//! - **`insurers.csv`**: any bad line (bad insurer number, unknown kind, empty name, wrong
//!   number of fields, an insurer listed twice) fails the whole list with an error naming
//!   file, line and field. A build that silently lost one insurer would publish "not found" for
//!   all its members; failing keeps the previous generation live until the list is fixed.
//!   Unknown columns there are ignored and reported as a [`Finding::UnknownInsurersColumn`].
//! - Snapshot file names are `YYYYMMDD.csv` with a real calendar date (extension matched
//!   case-insensitively); anything else in an insurer directory is a
//!   [`Finding::BadFileName`]. Older snapshots of an insurer are ignored silently. A file
//!   dated after the build's date is a [`Finding::FutureSnapshot`] and not read: a mistyped
//!   year would otherwise win as the newest file for decades.
//! - **Change files** (異動, `<insurer>/changes/YYYYMMDD-hhmmss.csv`, [`change`], [`apply`]):
//!   the snapshot's header with a required `change` column (F2 without it). Rules in order:
//!   R0, C3, then for `add`/`update` R1..R7 on the whole record (W1..W4 on a kept one, with
//!   the file's day as "today"); for `lose` and `delete` only the key (R1, R2, R3, R5 without
//!   the birthdate), and for `lose` R6 (disqualification_date required) and R7
//!   (reason_of_loss); then C4, then C1/C2. A change applies to every record of its key (a
//!   snapshot can hold one key twice). A file is read whole before it is applied, so one
//!   that fails part-way is rejected whole and changes nothing. A change file timed after
//!   the build's "now" is not read ([`Finding::FutureChange`]); one timed before its
//!   snapshot's day is superseded ([`Finding::SupersededChange`]).
//! - **Privacy**: reasons quote raw values of ordinary fields, but every quoted value has any
//!   run of 12 or more digits masked to its last four (single separators between the digits,
//!   as in `1234-5678-9018`, count in the run), so an individual number that strayed into
//!   another column does not leak either.

pub mod apply;
pub mod change;
pub(crate) mod decode;
mod dir_scan;
mod discover;
mod error;
mod header;
pub mod kohi;
pub mod materialize;
mod read;
mod row;
mod types;

pub use apply::{
    file_identity, materialize, ChangeInput, ChangeSummary, Identities, ListedFiles, Materialized,
    State,
};
pub use change::{read_changes_bytes, Change, ChangeKind, ChangeRow, RecordKey};
pub use decode::{count_data_lines, Encoding, Undecodable};
pub use dir_scan::{settled, ScanCache};
pub use discover::{
    discover, discover_at, discover_scanned, read_insurers, ChangeFile, ChangeTime, Discovery,
    Finding, InsurerDelivery, InsurerEntry, InsurerSnapshot, SnapshotFile, CHANGES_DIR,
    INSURERS_FILE,
};
pub use error::SnapshotError;
pub use header::Column;
pub use read::{
    account_rejected_file, read_snapshot, read_snapshot_bytes, read_snapshot_staged, FileContext,
    ReadStep,
};
pub use types::{FileSummary, Issue, RowOutcome, Rule, RuleCounts};

#[cfg(test)]
mod change_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
