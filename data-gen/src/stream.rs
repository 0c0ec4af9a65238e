//! Change files on disk: the groups of every chunk, spread over each day's hours in files
//! named by their registration time in Japan (`<insurer>/changes/<YYYYMMDD>-<hhmmss>.csv`),
//! and the materialized snapshots (the ground truth) dated as `shikaku materialize` dates them.

use crate::changes::{Group, CAUSES};
use crate::render::{encode, row_line};
use crate::universe::{Encoding, Habit, Universe};
use crate::writer::{snapshot_rel, Entry};
use anyhow::{Context, Result};
use rand::Rng;
use serde::Serialize;
use shikaku::domain::Date;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// RNG streams of the file schedule, one per insurer and day.
const SCHEDULE_STREAM: u64 = 0x4348_414E_0000_0000;
/// Most files one insurer registers in a day (about one every half hour of office time).
const MAX_FILES_PER_DAY: usize = 24;
/// Groups per file before an insurer splits its day's registrations into more files.
const GROUPS_PER_FILE: usize = 3;

/// What the change streams wrote, for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChangesSummary {
    pub days: u32,
    pub first_day: String,
    pub last_day: String,
    /// Queries (and claims truth) hold for the state after the last day, dated after it.
    pub queries_date: String,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    /// Rows by `change` cell as written (defect rows included).
    pub rows_by_change: BTreeMap<String, u64>,
    /// Real events by cause.
    pub events: BTreeMap<String, u64>,
    /// Injected defects by rule (C1–C4, R1–R7, W1–W4).
    pub defects: BTreeMap<String, u64>,
    /// Insurers with at least one change file.
    pub insurers_changed: u64,
    /// Where the materialized snapshots went; `None` with `--no-materialized`.
    pub materialized_dir: Option<String>,
}

impl ChangesSummary {
    pub fn add_events(&mut self, causes: &[u64; 6], defects: &BTreeMap<&'static str, u64>) {
        for (name, n) in CAUSES.iter().zip(causes) {
            *self.events.entry(name.to_string()).or_default() += n;
        }
        for (k, n) in defects {
            *self.defects.entry(k.to_string()).or_default() += n;
        }
    }
}

/// A time of day (seconds) at which an insurer registers: mostly office hours, some evening
/// work and a few night batches.
fn registration_second(rng: &mut impl Rng) -> u32 {
    let r: f64 = rng.gen();
    let (lo, hi) = if r < 0.85 {
        (8 * 3600 + 1800, 19 * 3600)
    } else if r < 0.95 {
        (19 * 3600, 24 * 3600)
    } else {
        (0, 8 * 3600 + 1800)
    };
    rng.gen_range(lo..hi)
}

/// Distinct registration times, in order, for `n` files of one insurer and day.
fn file_times(rng: &mut impl Rng, n: usize) -> Vec<u32> {
    let mut set = BTreeSet::new();
    while set.len() < n {
        set.insert(registration_second(rng));
    }
    set.into_iter().collect()
}

fn change_header(h: &Habit) -> Vec<u8> {
    let quote = |s: &str| {
        if h.quote_all {
            format!("\"{s}\"")
        } else {
            s.to_string()
        }
    };
    let mut line = String::new();
    if h.encoding == Encoding::Utf8Bom {
        line.push('\u{FEFF}');
    }
    line.push_str(&quote("change"));
    for c in &h.columns {
        line.push(',');
        line.push_str(&quote(c.header()));
    }
    line.push_str(if h.crlf { "\r\n" } else { "\n" });
    encode(h, &line)
}

/// Writes every change file; returns the summary's counts, the defects' entries and each
/// insurer's last day with a change file.
pub fn write(
    out: &Path,
    u: &Universe,
    seed: u64,
    start: Date,
    groups: Vec<Group>,
    summary: &mut ChangesSummary,
) -> Result<(Vec<Entry>, Vec<Option<u16>>)> {
    let mut buckets: BTreeMap<(u32, u16), Vec<Group>> = BTreeMap::new();
    for g in groups {
        buckets.entry((g.insurer, g.day)).or_default().push(g);
    }
    let mut entries = Vec::new();
    let mut last_day = vec![None; u.insurers.len()];
    for ((insurer, day), groups) in buckets {
        let stream = SCHEDULE_STREAM ^ (u64::from(insurer) << 16) ^ u64::from(day);
        let mut rng = crate::rng_for(seed, stream);
        let n = groups
            .len()
            .min(1 + groups.len() / GROUPS_PER_FILE)
            .min(MAX_FILES_PER_DAY);
        let times = file_times(&mut rng, n);
        let mut slots: Vec<Vec<Group>> = vec![Vec::new(); n];
        for g in groups {
            slots[rng.gen_range(0..n)].push(g);
        }
        let date = start.add_days(i32::from(day));
        for (time, slot) in times.iter().zip(slots) {
            if slot.is_empty() {
                continue;
            }
            let rel = change_rel(u, insurer, date, *time);
            write_file(out, u, insurer, &rel, &slot, &mut entries, summary)?;
        }
        last_day[insurer as usize] = Some(day);
    }
    summary.insurers_changed = last_day.iter().filter(|d| d.is_some()).count() as u64;
    Ok((entries, last_day))
}

fn change_rel(u: &Universe, insurer: u32, date: Date, second: u32) -> String {
    format!(
        "{}/changes/{}-{:02}{:02}{:02}.csv",
        u.insurers[insurer as usize].number.as_str(),
        date.to_compact(),
        second / 3600,
        second / 60 % 60,
        second % 60
    )
}

fn write_file(
    out: &Path,
    u: &Universe,
    insurer: u32,
    rel: &str,
    groups: &[Group],
    entries: &mut Vec<Entry>,
    summary: &mut ChangesSummary,
) -> Result<()> {
    let ins = &u.insurers[insurer as usize];
    let h = &ins.habit;
    let mut bytes = change_header(h);
    let mut line = 1;
    for cr in groups.iter().flat_map(|g| &g.rows) {
        line += 1;
        let cell = if h.quote_all {
            format!("\"{}\",", cr.change)
        } else {
            format!("{},", cr.change)
        };
        bytes.extend_from_slice(&encode(h, &(cell + &row_line(ins, &cr.row))));
        *summary.rows_by_change.entry(cr.change.clone()).or_default() += 1;
        if let Some(rule) = cr.defect {
            let field = match rule {
                "C3" => Some("change"),
                _ => cr.row.field().map(|c| c.header()),
            };
            entries.push(Entry {
                file: rel.to_string(),
                line,
                rule,
                field,
            });
        }
    }
    let path = out.join(rel);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    summary.files += 1;
    summary.rows += line - 1;
    summary.bytes += bytes.len() as u64;
    Ok(())
}

/// Dates each materialized snapshot with its insurer's last change day, as `shikaku
/// materialize` does (the snapshot's own day when it had none).
pub fn date_materialized(
    dir: &Path,
    u: &Universe,
    start: Date,
    last: &[Option<u16>],
) -> Result<()> {
    for (i, day) in last.iter().enumerate() {
        let Some(day) = day.filter(|d| *d > 0) else {
            continue;
        };
        let from = dir.join(snapshot_rel(u, i as u32, start));
        let to = dir.join(snapshot_rel(u, i as u32, start.add_days(i32::from(day))));
        fs::rename(&from, &to).with_context(|| format!("cannot rename {}", from.display()))?;
    }
    Ok(())
}
