//! The nightly build: snapshot rows in, a verified index generation out. Stages: per insurer
//! (`encode`, in parallel), across insurers (`link`), then write (`format::writer`).

mod changes;
pub mod encode;
pub mod html;
mod insurer;
pub mod kohi;
mod layer;
mod layer_cards;
mod layer_diff;
mod layer_merge;
mod layer_plan;
pub mod link;
mod profile;
pub mod report;
pub mod report_files;
pub mod reuse;
pub mod run;

pub use encode::{encode_insurer, InsurerPart, InsurerRows, Link};
pub use link::{link_persons, Persons};
pub use report::{
    ChangeOutcome, ChangeReport, Counts, GenerationKind, InsurerReport, KohiReport, LayerReport,
    PayerReport, Report, ReportLine,
};

use crate::domain::{Date, PersonKey};
use crate::format::writer::{segment_file_bytes, write_index, IndexContents, InsurerInput};
use crate::format::{EncodedKohi, FormatError};
use crate::index::IndexFiles;
use rayon::prelude::*;
use std::io::{Seek, Write};

/// Encodes every insurer (in parallel) and links persons. `insurers` need not be sorted.
pub fn assemble(
    mut insurers: Vec<InsurerRows>,
    key: &PersonKey,
    built_on: Date,
) -> Result<(Vec<InsurerPart>, Persons), FormatError> {
    insurers.sort_by_key(|i| i.number.to_key());
    if let Some(w) = insurers.windows(2).find(|w| w[0].number == w[1].number) {
        return Err(FormatError::Malformed(format!(
            "insurer {} appears twice",
            w[0].number
        )));
    }
    let mut parts = insurers
        .into_par_iter()
        .enumerate()
        .map(|(i, rows)| encode_insurer(rows, i as u32, key, built_on))
        .collect::<Result<Vec<_>, _>>()?;
    let persons = link_persons(&mut parts);
    Ok((parts, persons))
}

/// Writes the main file of an assembled index into `w` (its segment files are the parts'
/// segments, written by the caller).
pub fn write_assembled<W: Write + Seek>(
    w: &mut W,
    parts: &[InsurerPart],
    persons: &Persons,
    generation_id: &str,
    built_on: Date,
    key: &PersonKey,
    kohi: &EncodedKohi,
) -> std::io::Result<crate::format::Header> {
    let inputs: Vec<InsurerInput<'_>> = parts
        .iter()
        .map(|p| InsurerInput {
            number: p.number,
            kind: p.kind.code(),
            name: &p.name,
            snapshot_date: p.snapshot_date,
            covered_count: p.covered_count,
            segment: p.segment.meta,
        })
        .collect();
    write_index(
        w,
        &IndexContents {
            generation_id,
            built_on,
            person_key_fingerprint: key.fingerprint(),
            insurers: &inputs,
            persons: &persons.entries,
            person_refs: &persons.refs,
            kohi,
        },
    )
}

/// Builds an index in memory (tests, benches): the main file and the segment files.
pub fn build_in_memory(
    insurers: Vec<InsurerRows>,
    key: &PersonKey,
    built_on: Date,
    generation_id: &str,
) -> Result<IndexFiles<Vec<u8>>, FormatError> {
    build_in_memory_with_kohi(
        insurers,
        &EncodedKohi::default(),
        key,
        built_on,
        generation_id,
    )
}

/// [`build_in_memory`] with public-expense certificates (`kohi::encode_certificates`).
pub fn build_in_memory_with_kohi(
    insurers: Vec<InsurerRows>,
    kohi: &EncodedKohi,
    key: &PersonKey,
    built_on: Date,
    generation_id: &str,
) -> Result<IndexFiles<Vec<u8>>, FormatError> {
    let (parts, persons) = assemble(insurers, key, built_on)?;
    let mut cur = std::io::Cursor::new(Vec::new());
    write_assembled(
        &mut cur,
        &parts,
        &persons,
        generation_id,
        built_on,
        key,
        kohi,
    )
    .map_err(|e| FormatError::Malformed(e.to_string()))?;
    Ok(IndexFiles {
        main: cur.into_inner(),
        segments: parts
            .iter()
            .map(|p| segment_file_bytes(p.number, &p.segment))
            .collect(),
    })
}

/// Writes a generation built in memory into `dir` as a build would (`index.shk` and
/// `segments/`), for tests and benches that need files. Returns the main file's path.
pub fn write_files(
    files: &IndexFiles<Vec<u8>>,
    dir: &std::path::Path,
) -> std::io::Result<std::path::PathBuf> {
    let segments = dir.join(crate::format::SEGMENTS_DIR);
    std::fs::create_dir_all(&segments)?;
    for bytes in &files.segments {
        let h = crate::format::SegmentHeader::decode(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        std::fs::write(
            segments.join(crate::format::segment_file_name(&h.number, h.body_xxh3)),
            bytes,
        )?;
    }
    let main = dir.join(crate::generations::INDEX_FILE);
    std::fs::write(&main, &files.main)?;
    Ok(main)
}
