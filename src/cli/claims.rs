//! `shikaku claims`: claims files checked against the live generation.

use super::args::ClaimsArgs;
use crate::claims::files::{check_files, RunError};
use crate::claims::Format;
use crate::generations::Store;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Rows on stdout, the summary (and each file that could not be read) on stderr. Exit 0 when
/// every receipt of every file was checked, whatever the verdicts; 1 when a file could not be
/// read.
pub(super) fn run_claims(args: ClaimsArgs, key_file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let key = super::person_key(key_file.as_deref())?;
    let index = Store::new(&args.data)
        .open_current(key)
        .with_context(|| format!("opening the live generation in {}", args.data.display()))?;
    // Not verified whole here: `check_files` verifies what each file's receipts can read
    // before its first row (the main file, their insurers' segments), so a clinic's file
    // does not wait for every insurer's segment to be checked.
    let format = if args.json { Format::Json } else { Format::Csv };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let outcome = match check_files(&index, &args.files, format, &mut out) {
        Ok(outcome) => outcome,
        Err(RunError::Write(e)) => return Err(e).context("writing the rows"),
        Err(RunError::Verify(e)) => {
            return Err(e).with_context(|| super::data::failed_verification(&index, &args.data))
        }
    };
    eprint!("{}", outcome.summary.render());
    for e in &outcome.failed {
        eprintln!("error: {e}");
    }
    Ok(if outcome.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
