//! `shikaku claims FILE…`: every file read, checked and written in turn, one output and one
//! summary for all of them. A file that cannot be read at all is named with why (and the
//! line), and the others are still checked. Before the run's first row, every part of the
//! generation its receipts can read is verified (`VerifiedSoFar`), each part once.

use super::check::card_query;
use super::limits::UKE_MAX_BYTES;
use super::output::{check_file, FileColumn, Format, RowWriter, Summary};
use super::uke::{parse, UkeError, UkeFile};
use crate::format::FormatError;
use crate::index::Index;
use crate::query::checked::VerifiedSoFar;
use std::io::{Read, Write};
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
    #[error("{path}: more than {UKE_MAX_BYTES} bytes read from it, the most a claims file may hold (split the month into volumes)")]
    StreamTooLarge { path: PathBuf },
}

/// Why a run stopped before its last file.
#[derive(Debug, Error)]
pub enum RunError {
    /// The rows could not be written.
    #[error("writing the rows: {0}")]
    Write(#[from] std::io::Error),
    /// A part of the generation that a file's receipts read failed verification.
    #[error("{0}")]
    Verify(#[from] FormatError),
}

/// What a run of several files gives.
#[derive(Debug)]
pub struct FilesOutcome {
    pub summary: Summary,
    /// The files not checked, with why.
    pub failed: Vec<FileError>,
}

/// Checks `paths` in order against `index`, writing every row into `out` (one CSV header or
/// JSON array for all). `index` need not be verified: every part of it that the files reach
/// is verified before the first row of any of them, so a damaged part stops the run with
/// nothing written. A write error on `out` stops the run too.
pub fn check_files<B: AsRef<[u8]>>(
    index: &Index<B>,
    paths: &[PathBuf],
    format: Format,
    out: &mut impl Write,
) -> Result<FilesOutcome, RunError> {
    let mut verified = VerifiedSoFar::new(index);
    let mut rows = Rows::new(format, paths.len());
    let run_bytes: u64 = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    if run_bytes.saturating_mul(SEGMENT_BYTES_PER_FILE_BYTE) >= verified.unverified_segment_bytes()
    {
        // A large run: everything verified, then each file read, checked and let go in turn.
        verified.everything(index)?;
        for path in paths {
            match read(path) {
                Ok(bytes) => match parse(&bytes) {
                    Ok(file) => rows.file(index, path, &file, out)?,
                    Err(error) => rows.unreadable(path, error),
                },
                Err(e) => rows.failed.push(e),
            }
        }
        return Ok(rows.end(out)?);
    }
    // A small run: every file read and parsed once, and what it reaches verified, before the
    // first row. The files are held meanwhile (a pipe can be read once only), each at most
    // UKE_MAX_BYTES.
    let (contents, unread): (Vec<_>, Vec<_>) = paths
        .iter()
        .map(|p| match read(p) {
            Ok(bytes) => (bytes, None),
            Err(e) => (Vec::new(), Some(e)),
        })
        .unzip();
    let parsed: Vec<_> = contents
        .iter()
        .zip(&unread)
        .map(|(bytes, unread)| unread.is_none().then(|| parse(bytes)))
        .collect();
    for file in parsed.iter().flatten().flatten() {
        verify_reached(index, file, &mut verified)?;
    }
    for ((path, parsed), unread) in paths.iter().zip(parsed).zip(unread) {
        match parsed {
            Some(Ok(file)) => rows.file(index, path, &file, out)?,
            Some(Err(error)) => rows.unreadable(path, error),
            None => rows.failed.extend(unread),
        }
    }
    Ok(rows.end(out)?)
}

/// The one output of a run: its rows, its summary, and the files that could not be read.
struct Rows {
    writer: RowWriter,
    buf: Vec<u8>,
    summary: Summary,
    failed: Vec<FileError>,
}

impl Rows {
    /// The output of `files` files; the header (or the JSON array's opening) is written with
    /// the first file's rows.
    fn new(format: Format, files: usize) -> Rows {
        let column = if files > 1 {
            FileColumn::Named
        } else {
            FileColumn::Unnamed
        };
        let writer = RowWriter::new(format, column);
        let mut buf = Vec::with_capacity(1 << 20);
        writer.begin(&mut buf);
        Rows {
            writer,
            buf,
            summary: Summary::default(),
            failed: Vec::new(),
        }
    }

    /// Checks `file` and writes its rows.
    fn file<B: AsRef<[u8]>>(
        &mut self,
        index: &Index<B>,
        path: &Path,
        file: &UkeFile<'_>,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        let name = path.display().to_string();
        let (writer, buf, summary) = (&mut self.writer, &mut self.buf, &mut self.summary);
        check_file(index, &name, file, writer, buf, summary, |_, _, _| {});
        out.write_all(buf)?;
        buf.clear();
        Ok(())
    }

    fn unreadable(&mut self, path: &Path, error: UkeError) {
        self.failed.push(FileError::Uke {
            path: path.to_path_buf(),
            error,
        });
    }

    fn end(mut self, out: &mut impl Write) -> std::io::Result<FilesOutcome> {
        self.writer.end(&mut self.buf);
        out.write_all(&self.buf)?;
        out.flush()?;
        Ok(FilesOutcome {
            summary: self.summary,
            failed: self.failed,
        })
    }
}

/// Finding what a receipt reaches (its card query read, its card's records and their persons
/// found) costs about 1.6 µs for a receipt of ~230 bytes, 7 ns a byte of the file; verifying
/// costs about 1.4 ns a byte of segment (both measured at 1M persons). So a run whose files
/// hold a quarter as many bytes as the generation's segments, or more, verifies the whole
/// generation first: cheaper than looking, and it reaches most of it anyway. A clinic's
/// month (hundreds of KB) against a nation's segments (18 GB) looks.
const SEGMENT_BYTES_PER_FILE_BYTE: u64 = 4;

/// Verifies every part of `index` that the receipts of `file` can read, unless verified before.
fn verify_reached<B: AsRef<[u8]>>(
    index: &Index<B>,
    file: &UkeFile<'_>,
    verified: &mut VerifiedSoFar,
) -> Result<(), FormatError> {
    for r in &file.receipts {
        if verified.all_segments() {
            break;
        }
        if let Some(q) = card_query(file, r) {
            verified.card(index, &q)?;
        }
    }
    Ok(())
}

/// The bytes of `path`, at most `UKE_MAX_BYTES`: a regular file is refused by its size, a
/// pipe or a device (`/dev/stdin`) when it gives more.
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
    let bytes = read_at_most(path, len as usize, UKE_MAX_BYTES + 1).map_err(io)?;
    if bytes.len() > UKE_MAX_BYTES {
        return Err(FileError::StreamTooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// At most `limit` bytes of `path`, in a buffer that never grows past `limit` (a stream's
/// doubling buffer would reach twice the limit): room for `size_hint` (a regular file's
/// size) first, read straight into it, then doubling, capped.
fn read_at_most(path: &Path, size_hint: usize, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut reader = std::fs::File::open(path)?.take(limit as u64);
    let mut bytes: Vec<u8> = Vec::with_capacity(size_hint.saturating_add(1).min(limit));
    loop {
        let spare = bytes.capacity() - bytes.len();
        if spare == 0 {
            if bytes.len() >= limit {
                return Ok(bytes);
            }
            let target = (bytes.capacity() * 2).clamp(bytes.len() + 1, limit);
            bytes.reserve_exact(target - bytes.len());
            continue;
        }
        let n = (&mut reader).take(spare as u64).read_to_end(&mut bytes)?;
        if n < spare {
            return Ok(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_at_most;

    /// `(bytes in the file, size hint, limit)` → bytes read; the buffer never beyond the limit.
    #[test]
    fn reads_stop_at_the_limit_and_the_buffer_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for (len, hint, limit, expected) in [
            (10, 10, 100, 10),
            (10, 0, 100, 10),
            (10, 10, 4, 4),
            (0, 0, 4, 0),
            (300_000, 0, 1 << 20, 300_000),
            (300_000, 0, 70_000, 70_000),
        ] {
            let content: Vec<u8> = (0..len).map(|i| i as u8).collect();
            std::fs::write(&path, &content).unwrap();
            let got = read_at_most(&path, hint, limit).unwrap();
            assert_eq!(got, content[..expected], "{len} {hint} {limit}");
            assert!(got.capacity() <= limit.max(1), "{}", got.capacity());
        }
        // A device that never ends.
        let zeros = read_at_most(std::path::Path::new("/dev/zero"), 0, 1 << 20).unwrap();
        assert_eq!((zeros.len(), zeros.capacity()), (1 << 20, 1 << 20));
    }
}
