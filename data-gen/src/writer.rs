//! Snapshot files: one per insurer, appended chunk by chunk in chunk order (so output does not
//! depend on thread scheduling), with a bounded buffer per insurer, and the manifest entries
//! whose line numbers are known only here.

use crate::model::{Row, Rule};
use crate::render::{encode, header_bytes, row_line};
use crate::universe::{Col, Universe};
use anyhow::{Context, Result};
use serde::Serialize;
use shikaku::domain::Date;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Pending bytes per insurer before they are appended to its file: bounds memory at
/// ~3,400 × 256 KiB in the worst case while keeping writes large.
const FLUSH_BYTES: usize = 256 * 1024;

/// Bytes that are invalid both in UTF-8 and in CP932 (0xFD–0xFF are never lead bytes).
pub const UNDECODABLE_BYTES: &[u8] = b"\xFD\xFE\xFF\xFD";

/// One manifest line: where a defect was put.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub file: String,
    pub line: u64,
    pub rule: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

/// The rendered rows of one chunk for one insurer.
#[derive(Debug, Default)]
pub struct InsOut {
    pub insurer: u32,
    pub bytes: Vec<u8>,
    pub lines: u64,
    /// (line offset within this chunk's rows, rule, field).
    pub marks: Vec<(u64, &'static str, Option<&'static str>)>,
}

/// Renders a chunk's rows grouped by insurer, in row order.
pub fn render_rows(u: &Universe, rows: &[Row]) -> Vec<InsOut> {
    let mut slot = vec![u32::MAX; u.insurers.len()];
    let mut outs: Vec<InsOut> = Vec::new();
    for row in rows {
        let i = row.rec.insurer as usize;
        if slot[i] == u32::MAX {
            slot[i] = outs.len() as u32;
            outs.push(InsOut {
                insurer: i as u32,
                ..InsOut::default()
            });
        }
        let out = &mut outs[slot[i] as usize];
        let ins = &u.insurers[i];
        let bytes = encode(&ins.habit, &row_line(ins, row));
        out.bytes.extend_from_slice(&bytes);
        if row.dup {
            out.bytes.extend_from_slice(&bytes);
            out.lines += 1;
        }
        if let Some(rule) = row.tag {
            out.marks
                .push((out.lines, rule.as_str(), row.field().map(Col::header)));
        }
        out.lines += 1;
    }
    outs
}

struct FileState {
    rel: String,
    path: PathBuf,
    pending: Vec<u8>,
    /// Lines already in the file or pending (the header is line 1).
    lines: u64,
}

pub struct Writer {
    files: Vec<FileState>,
    pub entries: Vec<Entry>,
    pub bytes: u64,
    pub rows: u64,
}

pub fn snapshot_rel(u: &Universe, insurer: u32, date: Date) -> String {
    format!(
        "{}/{}.csv",
        u.insurers[insurer as usize].number.as_str(),
        date.to_compact()
    )
}

impl Writer {
    /// Creates every insurer's directory and newest file with its header; the undecodable
    /// file gets its bad line right after the header.
    pub fn create(root: &Path, u: &Universe, date: Date) -> Result<Writer> {
        let mut w = Writer::empty();
        for (i, ins) in u.insurers.iter().enumerate() {
            let rel = snapshot_rel(u, i as u32, date);
            let mut head = header_bytes(&ins.habit);
            if Some(i as u32) == u.undecodable {
                head.extend_from_slice(&undecodable_line(u, i as u32, date));
                w.entries.push(Entry {
                    file: rel.clone(),
                    line: 2,
                    rule: Rule::Undecodable.as_str(),
                    field: Some("name"),
                });
            }
            w.add_file(root, rel, head)?;
        }
        Ok(w)
    }

    pub fn empty() -> Writer {
        Writer {
            files: Vec::new(),
            entries: Vec::new(),
            bytes: 0,
            rows: 0,
        }
    }

    /// Creates file `rel` under `root` (and its directory), to hold `head` (whole lines)
    /// first; it is file number `files` of this writer, the index `InsOut::insurer` names.
    pub fn add_file(&mut self, root: &Path, rel: String, head: Vec<u8>) -> Result<()> {
        let path = root.join(&rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let lines = head.iter().filter(|&&b| b == b'\n').count() as u64;
        self.files.push(FileState {
            rel,
            path,
            pending: head,
            lines,
        });
        Ok(())
    }

    pub fn append(&mut self, outs: Vec<InsOut>) -> Result<()> {
        for out in outs {
            let f = &mut self.files[out.insurer as usize];
            for (offset, rule, field) in out.marks {
                self.entries.push(Entry {
                    file: f.rel.clone(),
                    line: f.lines + offset + 1,
                    rule,
                    field,
                });
            }
            f.lines += out.lines;
            self.rows += out.lines;
            f.pending.extend_from_slice(&out.bytes);
            if f.pending.len() >= FLUSH_BYTES {
                self.bytes += flush(f)?;
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<()> {
        for f in &mut self.files {
            self.bytes += flush(f)?;
        }
        Ok(())
    }
}

fn flush(f: &mut FileState) -> Result<u64> {
    if f.pending.is_empty() {
        return Ok(0);
    }
    let mut file = OpenOptions::new()
        .append(true)
        .open(&f.path)
        .with_context(|| format!("cannot open {}", f.path.display()))?;
    file.write_all(&f.pending)
        .with_context(|| format!("cannot write {}", f.path.display()))?;
    let n = f.pending.len() as u64;
    f.pending.clear();
    Ok(n)
}

/// A row whose name holds bytes that no decoder accepts: the whole file must be rejected.
fn undecodable_line(u: &Universe, insurer: u32, date: Date) -> Vec<u8> {
    let ins = &u.insurers[insurer as usize];
    let row = crate::stale_row(u, insurer, 0, date, Some((Col::Name, "@@@@")));
    let mut bytes = encode(&ins.habit, &row_line(ins, &row));
    if let Some(at) = bytes.windows(4).position(|w| w == b"@@@@") {
        bytes.splice(at..at + 4, UNDECODABLE_BYTES.iter().copied());
    }
    bytes
}

/// Writes a small older snapshot (the build must prefer the newest file).
pub fn write_older(
    root: &Path,
    u: &Universe,
    insurer: u32,
    date: Date,
    rows: &[Row],
) -> Result<()> {
    let ins = &u.insurers[insurer as usize];
    let path = root.join(snapshot_rel(u, insurer, date));
    let mut bytes = header_bytes(&ins.habit);
    for row in rows {
        bytes.extend_from_slice(&encode(&ins.habit, &row_line(ins, row)));
    }
    fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
