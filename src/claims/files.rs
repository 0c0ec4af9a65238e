//! `shikaku claims FILE…`: every file read, checked and written in turn, one output and one
//! summary for all of them. A file that cannot be read at all is named with why (and the
//! line), and the others are still checked.

use super::limits::UKE_MAX_BYTES;
use super::output::{check_file, FileColumn, Format, RowWriter, Summary};
use super::uke::{parse, UkeError};
use crate::index::Index;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why one file was not checked.
#[derive(Debug, Error)]
pub enum FileError {
    #[error("{path}: cannot read it: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Uke { path: PathBuf, error: UkeError },
}

/// What a run of several files gives.
#[derive(Debug)]
pub struct FilesOutcome {
    pub summary: Summary,
    /// The files not checked, with why.
    pub failed: Vec<FileError>,
}

/// Checks `paths` in order against `index`, writing every row into `out` (one CSV header or
/// JSON array for all); a write error on `out` stops the run.
pub fn check_files<B: AsRef<[u8]>>(
    index: &Index<B>,
    paths: &[PathBuf],
    format: Format,
    out: &mut impl Write,
) -> std::io::Result<FilesOutcome> {
    let column = if paths.len() > 1 {
        FileColumn::Named
    } else {
        FileColumn::Unnamed
    };
    let mut writer = RowWriter::new(format, column);
    let mut buf = Vec::with_capacity(1 << 20);
    writer.begin(&mut buf);
    let mut summary = Summary::default();
    let mut failed = Vec::new();
    for path in paths {
        let bytes = match read(path) {
            Ok(b) => b,
            Err(e) => {
                failed.push(e);
                continue;
            }
        };
        let file = match parse(&bytes) {
            Ok(f) => f,
            Err(error) => {
                failed.push(FileError::Uke {
                    path: path.clone(),
                    error,
                });
                continue;
            }
        };
        let name = path.display().to_string();
        check_file(
            index,
            &name,
            &file,
            &mut writer,
            &mut buf,
            &mut summary,
            |_, _, _| {},
        );
        out.write_all(&buf)?;
        buf.clear();
    }
    writer.end(&mut buf);
    out.write_all(&buf)?;
    out.flush()?;
    Ok(FilesOutcome { summary, failed })
}

fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    let io = |error| FileError::Io {
        path: path.to_path_buf(),
        error,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > UKE_MAX_BYTES as u64 {
        return Err(FileError::Uke {
            path: path.to_path_buf(),
            error: UkeError::TooLarge(len as usize),
        });
    }
    std::fs::read(path).map_err(io)
}
