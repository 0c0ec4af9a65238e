//! The public-expense stage of a build: every listed payer's register read (in parallel),
//! exact duplicates kept once, X1 across all certificates, and the rows accounted for as an
//! insurer's are (rows read = indexed + rejected + deduplicated).

use super::changes::{applied_report, check_change_files, rule_map};
use super::encode::dedup;
use super::insurer::report_line;
use super::insurer::superseded_report;
use super::report::{Counts, KohiReport, PayerReport, ReportLine};
use super::run::BuildError;
use crate::domain::{Certificate, Date, IndividualNumber, PayerNumber, PersonKey};
use crate::format::{encode_kohi, CertificateInput, EncodedKohi, FormatError};
use crate::snapshot::kohi::{
    materialize_payer, materialized_register_name, read_register, CertificateOutcome,
    KohiDiscovery, PayerRegister,
};
use crate::snapshot::{
    self, ChangeInput, Encoding, Finding, Rule, RuleCounts, SnapshotError, SnapshotFile,
};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// A certificate as the build holds it: where it was read, and whether X1 hides it from
/// person queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCertificate {
    pub certificate: Certificate,
    /// The register it was read from (`kohi/<payer>/<date>.csv`) and its line.
    pub file: String,
    pub line: u32,
    /// X1: its individual number is also on a certificate with another birthdate or sex.
    pub identity_unverified: bool,
}

/// Everything the public-expense stage gives the build.
#[derive(Debug, Default)]
pub struct KohiBuild {
    /// In payer order, then by certificate.
    pub certificates: Vec<HeldCertificate>,
    pub lines: Vec<ReportLine>,
    pub report: KohiReport,
}

/// Lays out the certificates of a build for the index: every listed payer (with or without
/// a register), each certificate with its keyed person hash.
pub fn encode_certificates(
    payers: &[(PayerNumber, &str)],
    certificates: &[HeldCertificate],
    key: &PersonKey,
) -> Result<EncodedKohi, FormatError> {
    let inputs: Vec<CertificateInput<'_>> = certificates
        .iter()
        .map(|h| CertificateInput {
            certificate: &h.certificate,
            person: h.certificate.individual_number.map(|n| key.hash(&n)),
            identity_unverified: h.identity_unverified,
        })
        .collect();
    encode_kohi(payers, &inputs)
}

/// One payer's register read, deduplicated and counted.
struct PayerRead {
    certificates: Vec<HeldCertificate>,
    lines: Vec<ReportLine>,
    report: PayerReport,
}

/// Reads every register of `discovery`, on rayon's pool.
pub fn build_registers(discovery: &KohiDiscovery, built_on: Date) -> Result<KohiBuild, BuildError> {
    let reads = discovery
        .registers
        .par_iter()
        .map(|r| read_payer(r, built_on))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = KohiBuild::default();
    for r in reads {
        out.certificates.extend(r.certificates);
        out.lines.extend(r.lines);
        out.report.payers.push(r.report);
    }
    unlisted_directories(&discovery.findings, &mut out);
    mark_mislinkage(&mut out);
    for p in &out.report.payers {
        out.report.totals.add(&p.counts);
    }
    if !out.report.totals.balanced() {
        return Err(BuildError::Accounting(
            "public-expense registers".to_owned(),
        ));
    }
    Ok(out)
}

fn read_payer(r: &PayerRegister, built_on: Date) -> Result<PayerRead, BuildError> {
    let mut read = match (&r.file, r.changes.is_empty()) {
        (Some(file), true) => read_plain(r, file, built_on)?,
        _ => read_state(r, built_on)?,
    };
    read.report
        .changes
        .extend(r.superseded.iter().map(superseded_report));
    Ok(read)
}

/// A payer without change files: its register, lines as in the file.
fn read_plain(
    r: &PayerRegister,
    file: &SnapshotFile,
    built_on: Date,
) -> Result<PayerRead, BuildError> {
    let name = file.rel_path.to_string();
    let mut rows: Vec<(Certificate, u32)> = Vec::new();
    let mut lines = Vec::new();
    let summary = read_register(r.payer.number, file, |outcome| match outcome {
        CertificateOutcome::Indexed {
            certificate,
            line,
            warnings,
        } => {
            rows.push((certificate, u32::try_from(line).unwrap_or(u32::MAX)));
            lines.extend(warnings.into_iter().map(report_line));
        }
        CertificateOutcome::Rejected(issue) => lines.push(report_line(issue)),
    });
    let summary = match summary {
        Ok(summary) => summary,
        // The system failed to read it: the build stops rather than lose a payer's list.
        Err(e @ SnapshotError::Io { .. }) => return Err(e.into()),
        Err(e) => {
            let said = e.to_string();
            warn_rejected_whole(e.rule(), &said);
            lines.clear();
            rows.clear();
            snapshot::account_rejected_file(file, None, e.rule(), e.field(), &said)
        }
    };
    lines.extend(summary.file_warnings.iter().cloned().map(report_line));
    lines.extend(summary.file_reject.iter().cloned().map(report_line));
    if summary.indexed != rows.len() as u64 {
        return Err(BuildError::Accounting(name));
    }
    let read = Read {
        counts: Counts {
            rows_read: summary.rows_read,
            rows_rejected: summary.rejected,
            by_rule: rule_map(&summary.by_rule),
            ..Counts::default()
        },
        rows,
        lines,
    };
    let mut report = payer_report(r, Some(name.clone()), summary.encoding);
    report.snapshot_date = Some(file.date.to_string());
    finish(read, name, report, built_on)
}

/// A payer with change files: its state materialized (register, then each change file), its
/// certificates numbered as the materialized register lists them (`i + 2`), findings on the
/// state naming lines of that file, as an insurer's state does.
fn read_state(r: &PayerRegister, built_on: Date) -> Result<PayerRead, BuildError> {
    // Read once: what is hashed is what is applied.
    let inputs = ChangeInput::read_all(&r.changes)?;
    let m = materialize_payer(r, &inputs)?;
    check_change_files(&m.changes, &m.issues)?;
    let state_file = materialized_register_name(r, m.date);
    let mut by_rule = RuleCounts::default();
    let (mut rows_read, mut rows_rejected) = (0, 0);
    for (read, rejected, rules) in m
        .register
        .iter()
        .map(|s| (s.rows_read, s.rejected, &s.by_rule))
        .chain(
            m.changes
                .iter()
                .map(|c| (c.rows_read, c.rejected, &c.by_rule)),
        )
    {
        rows_read += read;
        rows_rejected += rejected;
        by_rule.merge(rules);
    }
    let rows = m
        .certificates
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, u32::try_from(i + 2).unwrap_or(u32::MAX)))
        .collect();
    let read = Read {
        counts: Counts {
            rows_read,
            rows_rejected,
            rows_replaced: m.replaced,
            by_rule: rule_map(&by_rule),
            ..Counts::default()
        },
        rows,
        lines: m.issues.into_iter().map(report_line).collect(),
    };
    let encoding = m.register.as_ref().and_then(|s| s.encoding);
    let mut report = payer_report(r, r.file.as_ref().map(|f| f.rel_path.to_string()), encoding);
    report.snapshot_date = Some(m.date.to_string());
    report.state_file = Some(state_file.clone());
    report.changes = m.changes.iter().map(applied_report).collect();
    finish(read, state_file, report, built_on)
}

/// What a payer's files gave before deduplication: its certificates with their lines, the
/// report lines so far, and the counts of rows read, rejected and replaced.
struct Read {
    rows: Vec<(Certificate, u32)>,
    lines: Vec<ReportLine>,
    counts: Counts,
}

/// Deduplicates a payer's certificates (findings naming `file`), counts them and checks the
/// accounting: rows read = indexed + rejected + deduplicated + replaced.
fn finish(
    mut read: Read,
    file: String,
    mut report: PayerReport,
    built_on: Date,
) -> Result<PayerRead, BuildError> {
    let duplicates = dedup(&mut read.rows, &file);
    let mut counts = read.counts;
    counts.rows_indexed = read.rows.len() as u64;
    counts.rows_deduplicated = duplicates.len() as u64;
    counts.covered_today = read.rows.iter().filter(|(c, _)| c.covers(built_on)).count() as u64;
    for l in &duplicates {
        counts.count_rule(l.rule);
    }
    read.lines.extend(duplicates);
    if !counts.balanced() {
        return Err(BuildError::Accounting(file));
    }
    report.counts = counts;
    let certificates = read
        .rows
        .into_iter()
        .map(|(certificate, line)| HeldCertificate {
            certificate,
            file: file.clone(),
            line,
            identity_unverified: false,
        })
        .collect();
    Ok(PayerRead {
        certificates,
        lines: read.lines,
        report,
    })
}

fn payer_report(
    r: &PayerRegister,
    file: Option<String>,
    encoding: Option<Encoding>,
) -> PayerReport {
    PayerReport {
        payer_number: r.payer.number.to_string(),
        payer_name: r.payer.name.clone(),
        file,
        encoding: encoding.map(|e| e.as_str().to_owned()),
        ..PayerReport::default()
    }
}

/// Said where the operator looks, not only in rejects.csv: none of the file's rows applied.
fn warn_rejected_whole(rule: Rule, said: &str) {
    tracing::warn!(
        "rejected whole ({rule}): {}",
        crate::domain::text::mask_digit_runs(said)
    );
}

/// The newest register of a directory under `kohi/` that no listed payer owns: its rows are
/// read and rejected under F4, so the accounting still names them.
fn unlisted_directories(findings: &[Finding], out: &mut KohiBuild) {
    for f in findings {
        let Finding::UnlistedPayerDirectory {
            dir,
            newest: Some(file),
        } = f
        else {
            continue;
        };
        let summary = snapshot::account_rejected_file(
            file,
            None,
            Rule::F4,
            "payer_number",
            "the payer is not listed in kohi/payers.csv",
        );
        let counts = Counts {
            rows_read: summary.rows_read,
            rows_rejected: summary.rejected,
            by_rule: rule_map(&summary.by_rule),
            ..Counts::default()
        };
        out.lines
            .extend(summary.file_reject.into_iter().map(report_line));
        out.report.payers.push(PayerReport {
            payer_number: dir.trim_start_matches("kohi/").to_owned(),
            payer_name: String::new(),
            file: Some(file.rel_path.to_string()),
            snapshot_date: Some(file.date.to_string()),
            encoding: summary.encoding.map(|e| e.as_str().to_owned()),
            counts,
            ..PayerReport::default()
        });
    }
}

/// X1 across the certificates of every payer: one individual number on certificates whose
/// birthdate or sex differ (a sex left empty differs from none) marks every certificate with
/// that number identity-unverified, and each gets a report line.
fn mark_mislinkage(out: &mut KohiBuild) {
    let mut by_number: BTreeMap<IndividualNumber, Vec<usize>> = BTreeMap::new();
    for (i, held) in out.certificates.iter().enumerate() {
        if let Some(n) = held.certificate.individual_number {
            by_number.entry(n).or_default().push(i);
        }
    }
    let by_file: BTreeMap<String, usize> = out
        .report
        .payers
        .iter()
        .enumerate()
        // Certificates name their payer's state when change files made it, else its register.
        .filter_map(|(i, p)| Some((p.state_file.clone().or_else(|| p.file.clone())?, i)))
        .collect();
    for group in by_number.values().filter(|g| g.len() > 1) {
        let first = &out.certificates[group[0]].certificate;
        let differ = group.iter().any(|&i| {
            let c = &out.certificates[i].certificate;
            c.birthdate != first.birthdate
                || (c.sex.is_some() && first.sex.is_some() && c.sex != first.sex)
        });
        if !differ {
            continue;
        }
        for &i in group {
            out.certificates[i].identity_unverified = true;
            let held = &out.certificates[i];
            let others: Vec<String> = group
                .iter()
                .filter(|&&j| j != i)
                .take(3)
                .map(|&j| {
                    format!(
                        "{} line {}",
                        out.certificates[j].file, out.certificates[j].line
                    )
                })
                .collect();
            out.lines.push(ReportLine {
                file: held.file.clone(),
                line: u64::from(held.line),
                rule: "X1",
                field: "individual_number".into(),
                reason: format!(
                    "suspected mislinkage: the same individual number is on certificates with a different birthdate or sex ({}); hidden from person queries until the payer fixes it",
                    others.join(", ")
                ),
            });
            if let Some(&p) = by_file.get(&held.file) {
                out.report.payers[p].counts.count_rule("X1");
            }
        }
    }
}
