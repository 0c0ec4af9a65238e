//! Opening a generation (every bound checked, so no later read goes out of bounds) and
//! verifying it (every checksum recomputed).

use super::slots::InsurerSlots;
use super::{Index, IndexFiles, InsurerInfo, Part, Segment};
use crate::domain::PersonKey;
use crate::format::*;
use std::ops::Range;
use std::sync::Arc;

fn malformed(what: impl Into<String>) -> FormatError {
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

/// Checks a segment file against its insurer-table entry and lays out its parts.
fn open_segment<B: AsRef<[u8]>>(bytes: B, e: &InsurerEntry) -> Result<Segment<B>, FormatError> {
    let file_name = e.segment_file_name();
    let named = |err: FormatError| match err {
        FormatError::Malformed(m) => malformed(format!("{SEGMENTS_DIR}/{file_name}: {m}")),
        other => other,
    };
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
    let bytes = Arc::new(bytes);
    let fst = fst::Map::new(Part {
        bytes: Arc::clone(&bytes),
        range: fst,
    })
    .map_err(|err| named(malformed(format!("card keys: {err}"))))?;
    Ok(Segment {
        bytes,
        records,
        heap,
        directory,
        body,
        fst,
        file_name,
        heap_utf8: std::sync::OnceLock::new(),
    })
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
        mut load: impl FnMut(&InsurerEntry) -> Result<B, FormatError>,
    ) -> Result<Index<B>, FormatError> {
        let b = main.as_ref();
        let header = Header::decode(b)?;
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
        if xxh3(&b[table.clone()]) != header.section_table_xxh3 {
            return Err(FormatError::Checksum {
                what: "section table".into(),
            });
        }
        let sections: Vec<SectionEntry> = b[table]
            .chunks_exact(SECTION_ENTRY_BYTES)
            .map(SectionEntry::decode)
            .collect();
        let section = |kind: SectionKind| -> Result<(SectionEntry, Range<usize>), FormatError> {
            let e = sections
                .iter()
                .find(|s| s.kind == kind as u32)
                .copied()
                .ok_or_else(|| malformed(format!("no {} section", kind.name())))?;
            Ok((e, range(e.offset, e.bytes, &whole, kind.name())?))
        };
        let (ins_entry, ins_range) = section(SectionKind::Insurers)?;
        if xxh3(&b[ins_range.clone()]) != ins_entry.xxh3 {
            return Err(FormatError::Checksum {
                what: "insurer table".into(),
            });
        }
        if ins_range.len() != header.insurer_count as usize * INSURER_ENTRY_BYTES {
            return Err(malformed("insurer table size does not match the header"));
        }
        let (_, strings) = section(SectionKind::Strings)?;
        let (_, persons) = section(SectionKind::Persons)?;
        let (_, person_refs) = section(SectionKind::PersonRefs)?;
        let (_, person_buckets) = section(SectionKind::PersonBuckets)?;
        let buckets = 1u64 << person_bucket_bits(header.person_count);
        if persons.len() as u64 != header.person_count * PERSON_ENTRY_BYTES as u64
            || person_refs.len() % PERSON_REF_BYTES != 0
            || person_buckets.len() as u64 != (buckets + 1) * 4
        {
            return Err(malformed("person sections have the wrong size"));
        }
        let mut insurers = Vec::with_capacity(header.insurer_count as usize);
        let mut segments = Vec::with_capacity(header.insurer_count as usize);
        let mut record_total = 0u64;
        for chunk in b[ins_range].chunks_exact(INSURER_ENTRY_BYTES) {
            let entry = InsurerEntry::decode(chunk)?;
            let name_range = range(
                u64::from(entry.name_offset),
                u64::from(entry.name_bytes),
                &strings,
                "insurer name",
            )?;
            let name = std::str::from_utf8(&b[name_range])
                .map_err(|_| malformed("insurer name is not UTF-8"))?
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
            return Err(malformed("record count does not match the header"));
        }
        let insurer_keys: Vec<[u8; 8]> = insurers.iter().map(|i| i.entry.number.to_key()).collect();
        if !insurer_keys.windows(2).all(|w| w[0] < w[1]) {
            return Err(malformed("insurer table is not sorted"));
        }
        let insurer_slots = InsurerSlots::new(&insurer_keys);
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
            key,
        })
    }

    /// Every checksummed byte range of the main file with its expected xxh3 (each section),
    /// so a caller can verify by streaming the file instead of faulting in the mapping.
    pub fn checksummed_ranges(&self) -> Vec<(String, Range<usize>, u64)> {
        self.sections
            .iter()
            .map(|s| {
                let name = SectionKind::ALL
                    .iter()
                    .find(|k| **k as u32 == s.kind)
                    .map_or("unknown", |k| k.name());
                (
                    format!("{name} section"),
                    s.offset as usize..(s.offset + s.bytes) as usize,
                    s.xxh3,
                )
            })
            .collect()
    }

    /// Insurer `i`'s segment file: its name within `SEGMENTS_DIR`, the range of its body and
    /// the body's expected xxh3.
    pub fn segment_check(&self, i: usize) -> (&str, Range<usize>, u64) {
        let seg = &self.segments[i];
        (
            &seg.file_name,
            seg.body.clone(),
            self.insurers[i].entry.segment_xxh3,
        )
    }

    /// Recomputes every section and segment checksum. Run before serving a new generation.
    pub fn verify(&self) -> Result<(), FormatError> {
        let b = self.main.as_ref();
        for (what, r, expected) in self.checksummed_ranges() {
            if xxh3(&b[r]) != expected {
                return Err(FormatError::Checksum { what });
            }
        }
        for (i, seg) in self.segments.iter().enumerate() {
            let (name, body, expected) = self.segment_check(i);
            let b = (*seg.bytes).as_ref();
            if xxh3(&b[body]) != expected {
                return Err(FormatError::Checksum {
                    what: format!("segment file {SEGMENTS_DIR}/{name}"),
                });
            }
            // Checked here, before serving, rather than on a segment's first answer.
            seg.heap_utf8
                .get_or_init(|| std::str::from_utf8(&b[seg.heap.clone()]).is_ok());
        }
        let starts: Vec<u32> = b[self.person_buckets.clone()]
            .chunks_exact(4)
            .map(|c| u32_at(c, 0))
            .collect();
        if starts.first() != Some(&0)
            || starts.last().map(|&s| u64::from(s)) != Some(self.header.person_count)
            || !starts.windows(2).all(|w| w[0] <= w[1])
        {
            return Err(malformed("the person bucket directory is not in order"));
        }
        let refs = (self.person_refs.len() / PERSON_REF_BYTES) as u64;
        for p in self.person_table() {
            if u64::from(p.refs_start) + u64::from(p.refs_count) > refs {
                return Err(malformed("a person points past the person refs"));
            }
        }
        for r in b[self.person_refs.clone()]
            .chunks_exact(8)
            .map(|c| u64_at(c, 0))
        {
            let (ins, rec) = decode_person_ref(r);
            let ok = self
                .insurers
                .get(ins as usize)
                .is_some_and(|i| rec < i.entry.record_count);
            if !ok {
                return Err(malformed("a person ref points at no record"));
            }
        }
        Ok(())
    }
}
