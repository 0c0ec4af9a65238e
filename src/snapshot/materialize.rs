//! Writing an insurer's state as a plain snapshot, and a payer's as a plain register
//! (`shikaku materialize`): every column of
//! docs/delivery.md, in its documented order, each value as a snapshot gives it, so that
//! reading the file back yields the very same records (normalization is idempotent).

use super::apply::{materialize, materialized_file_name, ChangeInput};
use super::discover::{discover_at, ChangeTime, Discovery, InsurerDelivery, INSURERS_FILE};
use super::error::SnapshotError;
use super::header::Column;
use super::kohi::{
    discover_kohi, materialize_payer, materialized_register_name, KohiColumn, KOHI_DIR, PAYERS_FILE,
};
use super::types::RuleCounts;
use crate::domain::{Certificate, Record};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `records` as a snapshot: a header row, then one row per record in order (record `i`
/// on line `i + 2`, as the build numbers a materialized state's lines). UTF-8, LF.
pub fn write_snapshot_csv<W: Write>(w: W, records: &[Record]) -> csv::Result<()> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(w);
    out.write_record(Column::ALL.map(Column::name))?;
    for r in records {
        out.write_record(row(r))?;
    }
    out.flush()?;
    Ok(())
}

/// One record's cells, in `Column::ALL` order. The individual number is written in clear, as
/// the insurer delivered it: the output is a delivery, read by a build like any other.
fn row(r: &Record) -> [String; Column::ALL.len()] {
    let opt = |o: Option<String>| o.unwrap_or_default();
    [
        r.insurer.as_str().to_owned(),
        r.symbol.clone(),
        r.number.clone(),
        r.branch.to_string(),
        opt(r
            .individual_number
            .as_ref()
            .map(|n| String::from_utf8_lossy(n.expose_digits()).into_owned())),
        r.name.clone(),
        r.name_kana.clone(),
        r.sex.as_str().to_owned(),
        r.birthdate.to_string(),
        r.relationship.as_str().to_owned(),
        r.qualification_date.to_string(),
        opt(r.disqualification_date.map(|d| d.to_string())),
        opt(r.reason_of_loss.map(|c| c.as_str().to_owned())),
        r.copay_ratio.percent().to_string(),
        opt(r.limit_category.map(|c| c.as_str().to_owned())),
    ]
}

/// Writes a payer's certificates as a register, as [`write_snapshot_csv`] writes an
/// insurer's records (certificate `i` on line `i + 2`).
pub fn write_register_csv<W: Write>(w: W, certificates: &[Certificate]) -> csv::Result<()> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(w);
    out.write_record(KohiColumn::ALL.map(KohiColumn::name))?;
    for c in certificates {
        out.write_record(register_row(c))?;
    }
    out.flush()?;
    Ok(())
}

/// One certificate's cells, in `KohiColumn::ALL` order (the individual number in clear, as
/// the payer delivered it).
fn register_row(c: &Certificate) -> [String; KohiColumn::ALL.len()] {
    let opt = |o: Option<String>| o.unwrap_or_default();
    let institutions: Vec<&str> = c.institutions.iter().map(|i| i.as_str()).collect();
    [
        c.payer.to_string(),
        c.recipient.clone(),
        opt(c
            .individual_number
            .as_ref()
            .map(|n| String::from_utf8_lossy(n.expose_digits()).into_owned())),
        c.name.clone(),
        c.name_kana.clone(),
        opt(c.sex.map(|s| s.as_str().to_owned())),
        c.birthdate.to_string(),
        c.valid_from.to_string(),
        opt(c.valid_to.map(|d| d.to_string())),
        opt(c.copay_limit_yen.map(|y| y.to_string())),
        institutions.join(";"),
    ]
}

/// What [`materialize_delivery`] wrote.
#[derive(Debug, Default)]
pub struct Totals {
    pub insurers: u64,
    pub records: u64,
    pub payers: u64,
    pub certificates: u64,
    pub changes_applied: u64,
    pub changes_superseded: u64,
    pub rows_rejected: u64,
    pub by_rule: RuleCounts,
}

#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A file left there from an earlier run would be read as part of this state.
    #[error("{path} is not empty; give a new or empty directory (an earlier file there would be read as part of this state)")]
    NotEmpty { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MaterializeError + '_ {
    move |source| MaterializeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes the delivery in `snapshots` as of `now` into `out` (new or empty): `insurers.csv`
/// as delivered, and each insurer's state as `<insurer>/<YYYYMMDD>.csv`
/// ([`materialized_file_name`]). `progress(done, of)` after each insurer.
pub fn materialize_delivery(
    snapshots: &Path,
    out: &Path,
    now: ChangeTime,
    progress: impl Fn(usize, usize) + Sync,
) -> Result<(Discovery, Totals), MaterializeError> {
    use rayon::prelude::*;
    let discovery = discover_at(snapshots, now)?;
    prepare_out(out)?;
    let to = out.join(INSURERS_FILE);
    std::fs::copy(snapshots.join(INSURERS_FILE), &to).map_err(io(&to))?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let of = discovery.deliveries.len();
    // Insurers are independent, as in a build: one at a time per core.
    let each = discovery
        .deliveries
        .par_iter()
        .map(|d| {
            let mut totals = Totals::default();
            materialize_one(d, out, &mut totals)?;
            progress(
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                of,
            );
            Ok(totals)
        })
        .collect::<Result<Vec<Totals>, MaterializeError>>()?;
    let mut totals = Totals::default();
    for t in &each {
        totals.add(t);
    }
    materialize_registers(snapshots, out, now, &mut totals)?;
    Ok((discovery, totals))
}

/// The public-expense part: `kohi/payers.csv` as delivered, and each payer's state as
/// `kohi/<payer>/<YYYYMMDD>.csv` ([`materialized_register_name`]). Nothing without `kohi/`.
fn materialize_registers(
    snapshots: &Path,
    out: &Path,
    now: ChangeTime,
    totals: &mut Totals,
) -> Result<(), MaterializeError> {
    if !snapshots.join(KOHI_DIR).is_dir() {
        return Ok(());
    }
    let kohi = discover_kohi(snapshots, now)?;
    let dir = out.join(KOHI_DIR);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let to = dir.join(PAYERS_FILE);
    std::fs::copy(snapshots.join(KOHI_DIR).join(PAYERS_FILE), &to).map_err(io(&to))?;
    for register in &kohi.registers {
        let inputs = ChangeInput::read_all(&register.changes)?;
        let m = materialize_payer(register, &inputs)?;
        write_file(
            &out.join(materialized_register_name(register, m.date)),
            |w| write_register_csv(w, &m.certificates),
        )?;
        totals.payers += 1;
        totals.certificates += m.certificates.len() as u64;
        totals.changes_applied += m.changes.len() as u64;
        totals.changes_superseded += register.superseded.len() as u64;
        let read = m.register.iter().map(|s| (s.rejected, &s.by_rule));
        for (rejected, by_rule) in read.chain(m.changes.iter().map(|c| (c.rejected, &c.by_rule))) {
            totals.rows_rejected += rejected;
            totals.by_rule.merge(by_rule);
        }
    }
    Ok(())
}

/// Creates `path` (and its directory) and writes it through `write`, flushed.
fn write_file(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> csv::Result<()>,
) -> Result<(), MaterializeError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut w = std::io::BufWriter::new(file);
    write(&mut w)
        .map_err(std::io::Error::from)
        .and_then(|()| w.flush())
        .map_err(io(path))
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        self.insurers += other.insurers;
        self.records += other.records;
        self.payers += other.payers;
        self.certificates += other.certificates;
        self.changes_applied += other.changes_applied;
        self.changes_superseded += other.changes_superseded;
        self.rows_rejected += other.rows_rejected;
        self.by_rule.merge(&other.by_rule);
    }
}

fn prepare_out(out: &Path) -> Result<(), MaterializeError> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        if entries.next().is_some() {
            return Err(MaterializeError::NotEmpty {
                path: out.to_owned(),
            });
        }
    }
    std::fs::create_dir_all(out).map_err(io(out))
}

fn materialize_one(
    d: &InsurerDelivery,
    out: &Path,
    totals: &mut Totals,
) -> Result<(), MaterializeError> {
    let inputs = ChangeInput::read_all(&d.changes)?;
    let m = materialize(d, &inputs)?;
    let path = out.join(materialized_file_name(d.insurer.number, m.date));
    write_file(&path, |w| write_snapshot_csv(w, &m.records))?;
    totals.insurers += 1;
    totals.records += m.records.len() as u64;
    totals.changes_applied += m.changes.len() as u64;
    totals.changes_superseded += d.superseded.len() as u64;
    let snapshot = m.snapshot.iter().map(|s| (s.rejected, &s.by_rule));
    for (rejected, by_rule) in snapshot.chain(m.changes.iter().map(|c| (c.rejected, &c.by_rule))) {
        totals.rows_rejected += rejected;
        totals.by_rule.merge(by_rule);
    }
    Ok(())
}
