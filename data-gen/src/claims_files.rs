//! The claims files on disk: each institution's `RECEIPTC.UKE` (its `IR` record giving the
//! institution code's 10 digits), the ground truth `truth.csv`, and the claims directory
//! beside the snapshots.

use crate::claims::{ClaimsPlan, GenReceipt};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Institution `i`'s code: prefecture, fee table 1 (医科), district, number and check digit.
pub(crate) fn institution_code(i: u32) -> String {
    let body = format!(
        "{:02}1{:02}{:04}",
        1 + i % 47,
        i / 47 % 100,
        i / 4700 % 10_000
    );
    let check = shikaku::domain::text::luhn_check_digit(body.as_bytes());
    format!("{body}{check}")
}

/// Receipts by verdict and reason (`verdict reason`, `ok` alone).
pub type Counts = BTreeMap<String, u64>;

/// `<OUT>.claims`, beside the snapshot directory `out`.
pub fn default_dir(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".claims");
    out.with_file_name(name)
}

/// The claims directory made ready: created, or emptied of an earlier run's files with
/// `overwrite`; anything else in it refuses the run.
pub fn prepare_dir(dir: &Path, overwrite: bool) -> Result<()> {
    if dir.exists() {
        let entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        if !entries.is_empty() && !overwrite {
            bail!(
                "{} is not empty; choose another --claims-out or pass --overwrite",
                dir.display()
            );
        }
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name == TRUTH_FILE {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            } else if name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit()) && path.is_dir()
            {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

const TRUTH_FILE: &str = "truth.csv";

/// Writes `<institution code>/RECEIPTC.UKE` into `dir` for every institution with receipts,
/// and `truth.csv` (`file,receipt,line,verdict,reason,days`, `file` relative to `dir`).
pub fn write(dir: &Path, plan: &ClaimsPlan, receipts: &[GenReceipt]) -> Result<Counts> {
    // Institutions by number: a certificate's designated one may lie beyond the plan's.
    let mut by_inst: BTreeMap<u32, Vec<&GenReceipt>> = BTreeMap::new();
    for r in receipts {
        by_inst.entry(r.institution).or_default().push(r);
    }
    let mut truth = String::from("file,receipt,line,verdict,reason,days\n");
    let mut counts = Counts::new();
    let (y, m, _) = plan.first.ymd();
    let (cy, cm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    for (&i, list) in &by_inst {
        let i = i as usize;
        let code = institution_code(i as u32);
        let rel = format!("{code}/RECEIPTC.UKE");
        // Habits by institution: mostly CP932 and CRLF, as the spec asks; some UTF-8 and LF.
        let utf8 = i % 5 == 4;
        let eol = if i % 7 == 6 { "\n" } else { "\r\n" };
        let mut text = String::with_capacity(list.len() * 700);
        let _ = write!(
            text,
            "IR,1,{},1,{},,医療法人 架空会 第{i}診療所,{cy:04}{cm:02},00,0300000000{eol}",
            &code[0..2],
            &code[3..10]
        );
        let mut line = 1u64;
        let mut points = 0u64;
        for (n, r) in list.iter().enumerate() {
            line += 1;
            let number = n + 1;
            let _ = write!(text, "RE,{number},{}{eol}", r.re_tail);
            let mut days = String::new();
            for (k, d) in r.days.iter().enumerate() {
                if k > 0 {
                    days.push(';');
                }
                days.push_str(&plan.day(*d).to_string());
            }
            let _ = writeln!(
                truth,
                "{rel},{number},{line},{},{},{days}",
                r.verdict, r.reason
            );
            for rec in r.body.lines() {
                line += 1;
                text.push_str(rec);
                text.push_str(eol);
            }
            points += r.points;
            let key = if r.reason.is_empty() {
                r.verdict.to_string()
            } else {
                format!("{} {}", r.verdict, r.reason)
            };
            *counts.entry(key).or_default() += 1;
        }
        let _ = write!(text, "GO,{},{points},99{eol}", list.len());
        let mut bytes = if utf8 {
            text.into_bytes()
        } else {
            let (b, _, lossy) = encoding_rs::SHIFT_JIS.encode(&text);
            if lossy {
                text.into_bytes()
            } else {
                b.into_owned()
            }
        };
        bytes.push(0x1a);
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap_or(dir))
            .with_context(|| format!("cannot create {}", path.display()))?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let path = dir.join(TRUTH_FILE);
    std::fs::write(&path, truth).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(counts)
}
