//! `shikaku person-key`: a new key file, and the keyed hashes of individual numbers (to find
//! a person's audit-log lines); `shikaku signing-key new`: the operator's signing key.

use super::args::{PersonKeyAction, SigningKeyAction};
use super::person_key;
use crate::domain::{mask_raw, IndividualNumber, PersonKey};
use anyhow::Context;
use std::process::ExitCode;

pub(super) fn run_person_key(action: PersonKeyAction) -> anyhow::Result<ExitCode> {
    match action {
        PersonKeyAction::New { out } => {
            let key = crate::keyfile::create(&out)?;
            println!("{:016x}", key.fingerprint());
            eprintln!(
                "person key written to {} (fingerprint {:016x}); keep a copy where the data directory's backups are",
                out.display(),
                key.fingerprint()
            );
            Ok(ExitCode::SUCCESS)
        }
        PersonKeyAction::Hash { key } => print_person_hashes(&person_key(key.file.as_deref())?),
    }
}

pub(super) fn run_signing_key(action: SigningKeyAction) -> anyhow::Result<ExitCode> {
    match action {
        SigningKeyAction::New { out } => {
            let public = crate::signing::new_key_file(&out)?;
            println!("{public}");
            eprintln!(
                "signing key written to {}; put the public key above in each server's and replica's trusted-keys file (serve --trusted-keys), and keep the key file on the builder only",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Standard input's individual numbers, hashed, one a line.
fn print_person_hashes(key: &PersonKey) -> anyhow::Result<ExitCode> {
    use std::io::BufRead;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let n = IndividualNumber::parse(&line)
            .map_err(|e| anyhow::anyhow!("line {}: {e}: {}", i + 1, mask_raw(line.trim())))?;
        println!("{}", key.hash(&n).to_hex());
    }
    Ok(ExitCode::SUCCESS)
}
