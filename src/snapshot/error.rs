//! Errors that stop a whole file (or the insurer list) from being read.

use super::types::Rule;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} {why}")]
    Undecodable {
        path: PathBuf,
        why: super::decode::Undecodable,
    },
    /// A FIFO, device, socket or directory where a snapshot file belongs.
    #[error("{path}: is {kind}, not a regular file; deliver snapshots as plain files")]
    NotRegularFile { path: PathBuf, kind: &'static str },
    /// A file over its kind's size limit (a change file: [`super::apply::MAX_CHANGE_FILE_BYTES`]).
    #[error("{path}: is {bytes} bytes, more than the {max_bytes} a change file may hold; deliver so many changes as a new snapshot instead")]
    TooLarge {
        path: PathBuf,
        bytes: u64,
        max_bytes: u64,
    },
    /// A symbolic link leading out of the snapshots directory.
    #[error("{path}: is a link to {target}, outside the snapshots directory; copy the file into the delivery instead")]
    OutsideSnapshots { path: PathBuf, target: PathBuf },
    /// A physical line longer than any header can be (a header is not a row: no row to
    /// reject, so the file is).
    #[error("{path}: line {line}: the header line is longer than {max_bytes} bytes")]
    HeaderTooLong {
        path: PathBuf,
        line: u64,
        max_bytes: usize,
    },
    #[error("{path}: no header row")]
    NoHeader { path: PathBuf },
    #[error("{path}: required column {column:?} missing from the header")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("{path}: column {column:?} named twice in the header")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{path}: line {line}: CSV error: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// A bad line of `insurers.csv`; the whole list is refused.
    #[error("{path}: line {line}: field {field}: {reason}")]
    InsurerLine {
        path: PathBuf,
        line: u64,
        field: &'static str,
        reason: String,
    },
}

impl SnapshotError {
    /// The file-level rule a snapshot rejected with this error is counted under.
    pub fn rule(&self) -> Rule {
        match self {
            SnapshotError::Undecodable { .. } => Rule::F1,
            SnapshotError::NoHeader { .. }
            | SnapshotError::HeaderTooLong { .. }
            | SnapshotError::MissingColumn { .. }
            | SnapshotError::DuplicateColumn { .. } => Rule::F2,
            SnapshotError::Io { .. }
            | SnapshotError::NotRegularFile { .. }
            | SnapshotError::TooLarge { .. }
            | SnapshotError::OutsideSnapshots { .. }
            | SnapshotError::Csv { .. }
            | SnapshotError::InsurerLine { .. } => Rule::F3,
        }
    }

    /// The column the error is about, if any (the `field` of the report line).
    pub fn field(&self) -> &str {
        match self {
            SnapshotError::MissingColumn { column, .. } => column,
            SnapshotError::DuplicateColumn { column, .. } => column,
            SnapshotError::InsurerLine { field, .. } => field,
            _ => "",
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> SnapshotError {
        SnapshotError::Io {
            path: path.into(),
            source,
        }
    }
}
