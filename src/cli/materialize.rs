//! `shikaku materialize`: each insurer's state written as a plain snapshot, so that a full
//! build over the output answers as a build over the delivery with its change files does.

use super::args::MaterializeArgs;
use crate::domain::text::mask_digit_runs;
use crate::domain::Date;
use crate::snapshot::materialize::{materialize_delivery, Totals};
use crate::snapshot::ChangeTime;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;

pub(super) fn run_materialize(args: MaterializeArgs) -> anyhow::Result<ExitCode> {
    let now = match &args.date {
        Some(d) => ChangeTime::for_build(Date::parse(d).with_context(|| format!("--date {d:?}"))?),
        None => ChangeTime::now_jst(),
    };
    // Progress as the build logs it: every tenth of the insurers.
    let progress = |done: usize, of: usize| {
        if done * 10 / of.max(1) > (done - 1) * 10 / of.max(1) {
            tracing::info!("{done} of {of} insurers materialized");
        }
    };
    let (discovery, totals) = materialize_delivery(&args.snapshots, &args.out, now, progress)
        .with_context(|| {
            format!(
                "materializing {} into {}",
                args.snapshots.display(),
                args.out.display()
            )
        })?;
    for finding in &discovery.findings {
        tracing::warn!("{}", mask_digit_runs(&finding.to_string()));
    }
    eprint!("{}", summary(&totals, &args.out));
    Ok(ExitCode::SUCCESS)
}

fn summary(t: &Totals, out: &Path) -> String {
    use std::fmt::Write as _;
    let mut s = format!(
        "materialized {} insurers, {} records, into {}: {} change files applied, {} superseded, {} rows rejected\n",
        t.insurers,
        t.records,
        out.display(),
        t.changes_applied,
        t.changes_superseded,
        t.rows_rejected
    );
    for (rule, n) in t.by_rule.iter() {
        let _ = writeln!(s, "  {rule:<4} {n:>9}  {}", rule.description());
    }
    if t.payers > 0 {
        let _ = writeln!(
            s,
            "  and {} public-expense payers, {} certificates (kohi/)",
            t.payers, t.certificates
        );
    }
    if t.rows_rejected > 0 {
        s.push_str("(shikaku build over the delivery lists each rejected row in rejects.csv)\n");
    }
    s
}
