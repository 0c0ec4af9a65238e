//! Opening a generation: every offset, length and count the reader will use is checked
//! against the file and against each other, so no later read goes out of bounds or overflows
//! and a lookup needs no check of its own beyond the ones it already does. Checksums are
//! `verify`'s job (`verify.rs`).

use super::slots::InsurerSlots;
use super::{FileKind, Index, IndexFiles, InsurerInfo, Section, Segment};
use crate::domain::{InsurerKind, PersonKey};
use crate::format::*;
use std::ops::Range;

pub(super) fn malformed(what: impl Into<String>) -> FormatError {
    FormatError::Malformed(what.into())
}

fn range(
    offset: u64,
    bytes: u64,
    within: &Range<usize>,
    what: &str,
) -> Result<Range<usize>, FormatError> {
    let start = (within.start as u64)
        .checked_add(offset)
        .ok_or_else(|| malformed(format!("{what} offset overflows")))?;
    let end = start
        .checked_add(bytes)
        .ok_or_else(|| malformed(format!("{what} length overflows")))?;
    if end > within.end as u64 {
        return Err(malformed(format!("{what} lies outside its section")));
    }
    Ok(start as usize..end as usize)
}

/// `err` with `place` (a file, a table entry) put before its message.
pub(super) fn within(place: &str, err: FormatError) -> FormatError {
    match err {
        FormatError::Malformed(m) => malformed(format!("{place}: {m}")),
        other => other,
    }
}

/// The section table's entries, each checked: a kind this version knows, found once; its
/// bytes 8-aligned between the header and the table; no two sections overlapping. Returned in
/// the order of [`SectionKind::ALL`].
fn sections(
    table: &[u8],
    table_start: usize,
    kinds: &[SectionKind],
) -> Result<Vec<Section>, FormatError> {
    let mut found: Vec<Section> = Vec::with_capacity(kinds.len());
    for (i, entry) in table.chunks_exact(SECTION_ENTRY_BYTES).enumerate() {
        let e = SectionEntry::decode(entry);
        let at = |field: &str, problem: String| {
            malformed(format!("section table entry {i}: {field} {problem}"))
        };
        let kind = SectionKind::from_code_in(e.kind, kinds).ok_or_else(|| {
            at(
                "kind",
                format!(
                    "{} is not a section kind of format version {FORMAT_VERSION}",
                    e.kind
                ),
            )
        })?;
        if found.iter().any(|s| s.kind == kind) {
            return Err(at("kind", format!("{} repeats an earlier entry", e.kind)));
        }
        if e.offset < HEADER_BYTES as u64 || !e.offset.is_multiple_of(8) {
            return Err(at(
                "offset",
                format!("{} is inside the header or not 8-aligned", e.offset),
            ));
        }
        let end = e
            .offset
            .checked_add(e.bytes)
            .filter(|&end| end <= table_start as u64)
            .ok_or_else(|| {
                at(
                    "length",
                    format!("{} runs past the section table at {table_start}", e.bytes),
                )
            })?;
        let range = e.offset as usize..end as usize;
        if let Some(other) = found
            .iter()
            .find(|s| s.range.start < range.end && range.start < s.range.end)
        {
            return Err(at(
                "offset",
                format!(
                    "{}: the section overlaps the {} section",
                    e.offset,
                    other.kind.name()
                ),
            ));
        }
        found.push(Section {
            kind,
            range,
            xxh3: e.xxh3,
        });
    }
    let mut ordered = Vec::with_capacity(kinds.len());
    for &kind in kinds {
        let s = found
            .iter()
            .find(|s| s.kind == kind)
            .ok_or_else(|| malformed(format!("section table: no {} section", kind.name())))?;
        ordered.push(s.clone());
    }
    Ok(ordered)
}

/// Checks the counts and layout fields of insurer-table entry `i` that the segment's layout
/// is computed from, so that arithmetic cannot overflow and every count bounds the next.
fn check_entry(i: usize, e: &InsurerEntry) -> Result<(), FormatError> {
    let at = |field: &str, problem: String| {
        malformed(format!(
            "insurer table entry {i} ({}): {field} {problem}",
            e.number.as_str()
        ))
    };
    if e.segment_offset != SEGMENT_HEADER_BYTES as u64 {
        return Err(at(
            "segment offset",
            format!("is {}, not {SEGMENT_HEADER_BYTES}", e.segment_offset),
        ));
    }
    if InsurerKind::from_code(e.kind).is_none() {
        return Err(at("kind", format!("{} is no insurer kind", e.kind)));
    }
    if e.key_count > e.record_count || (e.key_count == 0) != (e.record_count == 0) {
        return Err(at(
            "card key count",
            format!("{} does not fit {} records", e.key_count, e.record_count),
        ));
    }
    if e.covered_count > e.record_count {
        return Err(at(
            "covered count",
            format!("{} exceeds {} records", e.covered_count, e.record_count),
        ));
    }
    if u64::from(e.directory_slots) > directory_slots_for(e.key_count as usize) as u64 {
        return Err(at(
            "directory slots",
            format!(
                "{} are more than {} card keys need",
                e.directory_slots, e.key_count
            ),
        ));
    }
    Ok(())
}

/// Checks a segment file against its insurer-table entry and lays out its parts.
fn open_segment<B: AsRef<[u8]>>(bytes: B, e: &InsurerEntry) -> Result<Segment<B>, FormatError> {
    let file_name = e.segment_file_name();
    let place = format!("{SEGMENTS_DIR}/{file_name}");
    let named = |err: FormatError| within(&place, err);
    let b = bytes.as_ref();
    let header = SegmentHeader::decode(b).map_err(named)?;
    if header.number != e.number || header.body_xxh3 != e.segment_xxh3 {
        return Err(named(malformed(
            "holds another insurer's or another build's segment",
        )));
    }
    if b.len() as u64 != e.segment_end() {
        return Err(named(malformed(format!(
            "is {} bytes, the insurer table says {}; the copy is incomplete",
            b.len(),
            e.segment_end()
        ))));
    }
    let whole = 0..b.len();
    let rec_bytes = u64::from(e.record_count) * RECORD_BYTES as u64;
    let records = range(e.segment_offset, rec_bytes, &whole, "records").map_err(named)?;
    let fst = range(e.fst_offset(), u64::from(e.fst_bytes), &whole, "card keys").map_err(named)?;
    let heap = range(
        e.heap_offset(),
        u64::from(e.heap_bytes),
        &whole,
        "string heap",
    )
    .map_err(named)?;
    let directory = range(
        e.directory_offset(),
        u64::from(e.directory_slots) * DIRECTORY_SLOT_BYTES as u64,
        &whole,
        "card directory",
    )
    .map_err(named)?;
    let body = SEGMENT_HEADER_BYTES.min(b.len())..b.len();
    let segment = Segment {
        bytes,
        directory,
        records,
        heap,
        heap_utf8: std::sync::OnceLock::new(),
        body,
        fst,
        file_name,
    };
    segment.fst().map_err(named)?;
    Ok(segment)
}

impl<B: AsRef<[u8]>> Index<B> {
    /// Opens a generation held in memory (tests, benches): see [`Index::open_with`].
    pub fn open(files: IndexFiles<B>, key: PersonKey) -> Result<Index<B>, FormatError> {
        let mut segments = files.segments.into_iter();
        Index::open_with(files.main, key, |e| {
            segments.next().ok_or_else(|| FormatError::MissingSegment {
                file: e.segment_file_name(),
                error: "not given".into(),
            })
        })
    }

    /// Checks header, section table and insurer table, each segment file's header and size
    /// (`load` gives the file of an insurer-table entry), and the bounds of every part, so no
    /// later read can go out of bounds. Checksums of the large sections and of segment bodies
    /// are `verify`'s job.
    pub fn open_with(
        main: B,
        key: PersonKey,
        load: impl FnMut(&InsurerEntry) -> Result<B, FormatError>,
    ) -> Result<Index<B>, FormatError> {
        Index::open_as(main, key, load, FileKind::Main)
    }

    /// [`Index::open_with`] for a main file or a layer file (`kind`): a layer file is opened
    /// as a small index of its own, which [`Index::add_layer`] then stacks on its base.
    pub(super) fn open_as(
        main: B,
        key: PersonKey,
        mut load: impl FnMut(&InsurerEntry) -> Result<B, FormatError>,
        kind: FileKind,
    ) -> Result<Index<B>, FormatError> {
        let b = main.as_ref();
        let header = Header::decode_as(b, kind.magic())?;
        if header.person_key_fingerprint != key.fingerprint() {
            return Err(FormatError::PersonKeyMismatch {
                index: header.person_key_fingerprint,
                configured: key.fingerprint(),
            });
        }
        let whole = 0..b.len();
        let table_len = u64::from(header.section_count) * SECTION_ENTRY_BYTES as u64;
        let table = range(
            header.section_table_offset,
            table_len,
            &whole,
            "section table",
        )?;
        if table.start < HEADER_BYTES || table.end != b.len() {
            return Err(malformed(format!(
                "header: section table offset {} does not place the table between the header and the end of the file",
                header.section_table_offset
            )));
        }
        if xxh3(&b[table.clone()]) != header.section_table_xxh3 {
            return Err(FormatError::Checksum {
                what: "section table".into(),
            });
        }
        let sections = sections(&b[table.clone()], table.start, kind.sections())?;
        let section = |kind: SectionKind| sections[kind.position()].range.clone();
        let ins_range = section(SectionKind::Insurers);
        if xxh3(&b[ins_range.clone()]) != sections[SectionKind::Insurers.position()].xxh3 {
            return Err(FormatError::Checksum {
                what: "insurer table".into(),
            });
        }
        if ins_range.len() as u64 != u64::from(header.insurer_count) * INSURER_ENTRY_BYTES as u64 {
            return Err(malformed(format!(
                "header: insurer count {} does not match the insurers section's {} bytes",
                header.insurer_count,
                ins_range.len()
            )));
        }
        let strings = section(SectionKind::Strings);
        let persons = section(SectionKind::Persons);
        let person_refs = section(SectionKind::PersonRefs);
        let person_buckets = section(SectionKind::PersonBuckets);
        let persons_bytes = header
            .person_count
            .checked_mul(PERSON_ENTRY_BYTES as u64)
            .filter(|&n| n == persons.len() as u64);
        if persons_bytes.is_none() {
            return Err(malformed(format!(
                "header: person count {} does not match the persons section's {} bytes",
                header.person_count,
                persons.len()
            )));
        }
        if person_refs.len() % PERSON_REF_BYTES != 0 {
            return Err(malformed(format!(
                "section table: the person refs section's {} bytes are not whole refs",
                person_refs.len()
            )));
        }
        // person_count fits the file (checked above), so the bucket count cannot overflow.
        let buckets = 1u64 << person_bucket_bits(header.person_count);
        if person_buckets.len() as u64 != (buckets + 1) * 4 {
            return Err(malformed(format!(
                "section table: the person buckets section has {} bytes, {} persons need {}",
                person_buckets.len(),
                header.person_count,
                (buckets + 1) * 4
            )));
        }
        let mut insurers = Vec::with_capacity(header.insurer_count as usize);
        let mut segments = Vec::with_capacity(header.insurer_count as usize);
        let mut record_total = 0u64;
        for (i, chunk) in b[ins_range].chunks_exact(INSURER_ENTRY_BYTES).enumerate() {
            let entry = InsurerEntry::decode(chunk)
                .map_err(|e| within(&format!("insurer table entry {i}"), e))?;
            check_entry(i, &entry)?;
            let name_range = range(
                u64::from(entry.name_offset),
                u64::from(entry.name_bytes),
                &strings,
                &format!("insurer table entry {i}: name"),
            )?;
            let name = std::str::from_utf8(&b[name_range])
                .map_err(|_| malformed(format!("insurer table entry {i}: name is not UTF-8")))?
                .to_owned();
            let seg = open_segment(load(&entry)?, &entry)?;
            record_total += u64::from(entry.record_count);
            insurers.push(InsurerInfo {
                number_str: entry.number.as_str().to_owned(),
                entry,
                name,
            });
            segments.push(seg);
        }
        if record_total != header.record_count {
            return Err(malformed(format!(
                "header: record count {} is not the insurer table's {record_total}",
                header.record_count
            )));
        }
        let insurer_keys: Vec<[u8; 8]> = insurers.iter().map(|i| i.entry.number.to_key()).collect();
        if !insurer_keys.windows(2).all(|w| w[0] < w[1]) {
            return Err(malformed("insurer table is not sorted"));
        }
        let insurer_slots = InsurerSlots::new(&insurer_keys);
        let kohi = super::kohi::open_kohi(b, &header, &sections)?;
        Ok(Index {
            main,
            header,
            sections,
            insurer_slots,
            insurers,
            segments,
            persons,
            person_refs,
            person_buckets,
            kohi,
            key,
            segment_files: Vec::new(),
            main_file: None,
            path: None,
            layers: None,
            layers_read: 0,
        })
    }
}
