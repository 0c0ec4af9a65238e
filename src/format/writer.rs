//! Serializer: encodes insurer segments in memory, writes each as a segment file into any
//! `Write`, and writes the main index file into a caller's `Write + Seek` (files in
//! production, `Vec`s and a `Cursor` in tests).

use super::*;
use crate::domain::Record;
use std::io::{self, Seek, SeekFrom, Write};

/// One record handed to the segment encoder, with what the build learned about it.
#[derive(Debug, Clone, Copy)]
pub struct SegmentInput<'a> {
    pub record: &'a Record,
    pub line: u32,
    pub person: Option<PersonHash>,
}

/// An insurer's encoded segment body: records, FST and heap laid out as in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSegment {
    pub bytes: Vec<u8>,
    pub meta: SegmentMeta,
}

/// What the insurer table says of a segment body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMeta {
    /// xxh3 of the body, taken once where the segment is made (in parallel, per insurer).
    pub xxh3: u64,
    pub record_count: u32,
    pub key_count: u32,
    pub fst_bytes: u32,
    pub heap_bytes: u32,
    pub directory_slots: u32,
}

impl SegmentMeta {
    /// The meta of a segment already in an index (for reuse by an incremental build).
    pub fn of(e: &InsurerEntry) -> SegmentMeta {
        SegmentMeta {
            xxh3: e.segment_xxh3,
            record_count: e.record_count,
            key_count: e.key_count,
            fst_bytes: e.fst_bytes,
            heap_bytes: e.heap_bytes,
            directory_slots: e.directory_slots,
        }
    }

    /// Bytes of the body these counts describe.
    pub fn body_bytes(&self) -> u64 {
        segment_body_bytes(
            self.record_count,
            self.fst_bytes,
            self.heap_bytes,
            self.directory_slots,
        )
    }
}

/// Writes a whole segment file: header, then the body.
pub fn write_segment_file<W: Write>(
    w: &mut W,
    number: InsurerNumber,
    seg: &EncodedSegment,
) -> io::Result<()> {
    // Pair assertion: the body is what its meta says.
    assert_eq!(seg.meta.body_bytes(), seg.bytes.len() as u64);
    debug_assert_eq!(xxh3(&seg.bytes), seg.meta.xxh3);
    let header = SegmentHeader {
        number,
        body_xxh3: seg.meta.xxh3,
    };
    w.write_all(&header.encode())?;
    w.write_all(&seg.bytes)
}

/// A segment file in memory.
pub fn segment_file_bytes(number: InsurerNumber, seg: &EncodedSegment) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEGMENT_HEADER_BYTES + seg.bytes.len());
    write_segment_file(&mut out, number, seg).expect("writing to a Vec cannot fail");
    out
}

fn too_big(what: &str) -> FormatError {
    FormatError::Malformed(format!("{what} exceeds the format's limit"))
}

/// Encodes one insurer's records. `inputs` must be sorted by encoded card key (see
/// [`card_key`]) and free of exact duplicates; records of one
/// card keep their order.
pub fn encode_segment(inputs: &[SegmentInput<'_>]) -> Result<EncodedSegment, FormatError> {
    let record_count = u32::try_from(inputs.len()).map_err(|_| too_big("record count"))?;
    // Every buffer sized before it is filled (the FST's by a bound measured on generated
    // data, ~6 bytes a key): grown by doubling, they were copied and page-faulted again
    // and again (a tenth of a build's CPU).
    let heap_bytes: usize = inputs
        .iter()
        .map(|i| {
            let r = i.record;
            r.symbol.len() + r.number.len() + r.name.len() + r.name_kana.len()
        })
        .sum();
    let fst_bytes_guess = inputs.len() * 8 + 1024;
    let directory_bytes_max = directory_slots_for(inputs.len()) * DIRECTORY_SLOT_BYTES;
    let mut records = Vec::with_capacity(
        inputs.len() * RECORD_BYTES + fst_bytes_guess + heap_bytes + directory_bytes_max + 24,
    );
    let mut heap: Vec<u8> = Vec::with_capacity(heap_bytes);
    let mut fst = fst::MapBuilder::new(Vec::with_capacity(fst_bytes_guess))
        .map_err(|e| FormatError::Malformed(format!("fst: {e}")))?;
    let mut key = [0u8; MAX_CARD_KEY_BYTES];
    let mut key_count = 0u32;
    let mut directory_keys: Vec<(Vec<u8>, u32, u16)> = Vec::new();
    let mut group_start = 0usize;
    while group_start < inputs.len() {
        let first = inputs[group_start].record;
        let group_end = group_start
            + inputs[group_start..]
                .iter()
                .take_while(|i| i.record.symbol == first.symbol && i.record.number == first.number)
                .count();
        let count = group_end - group_start;
        if count > MAX_RECORDS_PER_CARD {
            return Err(too_big("records on one card"));
        }
        let len =
            card_key(&first.symbol, &first.number, &mut key).ok_or_else(|| too_big("card key"))?;
        fst.insert(
            &key[..len],
            encode_card_value(group_start as u32, count as u16),
        )
        .map_err(|e| FormatError::Malformed(format!("card keys out of order: {e}")))?;
        if len <= DIRECTORY_KEY_MAX {
            directory_keys.push((key[..len].to_vec(), group_start as u32, count as u16));
        }
        key_count += 1;
        for input in &inputs[group_start..group_end] {
            let entry = record_entry(input, &mut heap)?;
            let encoded = entry.encode();
            // Pair assertion: what we write decodes to what we meant.
            debug_assert_eq!(RecordEntry::decode(&encoded).as_ref(), Ok(&entry));
            records.extend_from_slice(&encoded);
        }
        group_start = group_end;
    }
    let fst = fst
        .into_inner()
        .map_err(|e| FormatError::Malformed(format!("fst: {e}")))?;
    let fst_bytes = u32::try_from(fst.len()).map_err(|_| too_big("fst"))?;
    let heap_bytes = u32::try_from(heap.len()).map_err(|_| too_big("string heap"))?;
    let mut bytes = records;
    pad8(&mut bytes);
    bytes.extend_from_slice(&fst);
    pad8(&mut bytes);
    bytes.extend_from_slice(&heap);
    pad8(&mut bytes);
    let directory = card_directory(&directory_keys);
    let directory_slots =
        u32::try_from(directory.len() / DIRECTORY_SLOT_BYTES).map_err(|_| too_big("directory"))?;
    bytes.extend_from_slice(&directory);
    Ok(EncodedSegment {
        meta: SegmentMeta {
            xxh3: xxh3(&bytes),
            record_count,
            key_count,
            fst_bytes,
            heap_bytes,
            directory_slots,
        },
        bytes,
    })
}

/// The card directory: an open-addressing table (linear probing) of every card key of at
/// most `DIRECTORY_KEY_MAX` bytes, stored inline with its record range. A lookup reads one or
/// two cache lines where the FST walk reads one per key byte; the FST stays the complete,
/// ordered key set (and answers the rare longer key).
fn card_directory(keys: &[(Vec<u8>, u32, u16)]) -> Vec<u8> {
    let slots = directory_slots_for(keys.len());
    let mut out = vec![0u8; slots * DIRECTORY_SLOT_BYTES];
    for (key, start, count) in keys {
        let mut i = directory_home(key, slots);
        while out[i * DIRECTORY_SLOT_BYTES] != 0 {
            i = (i + 1) % slots;
        }
        out[i * DIRECTORY_SLOT_BYTES..(i + 1) * DIRECTORY_SLOT_BYTES]
            .copy_from_slice(&encode_directory_slot(key, *start, *count));
    }
    // Pair assertion: every key reads back as written.
    debug_assert!(keys
        .iter()
        .all(|(k, s, c)| directory_get(&out, k) == Some((*s, *c))));
    out
}

fn pad8(v: &mut Vec<u8>) {
    v.resize(align8(v.len() as u64) as usize, 0);
}

fn record_entry(input: &SegmentInput<'_>, heap: &mut Vec<u8>) -> Result<RecordEntry, FormatError> {
    let r = input.record;
    let heap_offset = u32::try_from(heap.len()).map_err(|_| too_big("string heap"))?;
    let symbol_bytes = u8::try_from(r.symbol.len()).map_err(|_| too_big("symbol"))?;
    let number_bytes = u8::try_from(r.number.len()).map_err(|_| too_big("number"))?;
    let name_bytes = u16::try_from(r.name.len()).map_err(|_| too_big("name"))?;
    let kana_bytes = u16::try_from(r.name_kana.len()).map_err(|_| too_big("name_kana"))?;
    for s in [&r.symbol, &r.number, &r.name, &r.name_kana] {
        heap.extend_from_slice(s.as_bytes());
    }
    Ok(RecordEntry {
        person: input.person,
        heap_offset,
        symbol_bytes,
        number_bytes,
        name_bytes,
        kana_bytes,
        branch: r.branch,
        sex: r.sex,
        relationship: r.relationship,
        copay_ratio: r.copay_ratio,
        reason_of_loss: r.reason_of_loss,
        limit_category: r.limit_category,
        birthdate: r.birthdate,
        qualification_date: r.qualification_date,
        disqualification_date: r.disqualification_date,
        line: input.line,
    })
}

/// An insurer as the writer lays it out.
#[derive(Debug, Clone, Copy)]
pub struct InsurerInput<'a> {
    pub number: InsurerNumber,
    pub kind: u8,
    pub name: &'a str,
    pub snapshot_date: Date,
    pub covered_count: u32,
    pub segment: SegmentMeta,
}

/// Everything an index file holds. Insurers must be sorted by number key; persons by hash.
#[derive(Debug, Clone, Copy)]
pub struct IndexContents<'a> {
    pub generation_id: &'a str,
    pub built_on: Date,
    pub person_key_fingerprint: u64,
    pub insurers: &'a [InsurerInput<'a>],
    pub persons: &'a [PersonEntry],
    pub person_refs: &'a [u64],
    /// The public-expense certificates (`encode_kohi`; empty by default).
    pub kohi: &'a EncodedKohi,
}

/// What the index holds besides its segments, given when the writer finishes.
#[derive(Debug, Clone, Copy)]
pub struct IndexTail<'a> {
    pub generation_id: &'a str,
    pub built_on: Date,
    pub person_key_fingerprint: u64,
    pub persons: &'a [PersonEntry],
    pub person_refs: &'a [u64],
    pub kohi: &'a EncodedKohi,
}

/// Writes a complete main index file in one call and returns its header.
pub fn write_index<W: Write + Seek>(w: &mut W, c: &IndexContents<'_>) -> io::Result<Header> {
    check_contents(c).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut writer = IndexWriter::new(w)?;
    for ins in c.insurers {
        writer.push_insurer(ins)?;
    }
    writer.finish(&IndexTail {
        generation_id: c.generation_id,
        built_on: c.built_on,
        person_key_fingerprint: c.person_key_fingerprint,
        persons: c.persons,
        person_refs: c.person_refs,
        kohi: c.kohi,
    })
}

/// Writes the main index file: insurers are pushed as the build produces them (in number
/// order; their segments are separate files), the tables follow, and the header is written
/// last (by seeking back), so a file cut short by a crash never carries a valid header.
pub struct IndexWriter<'w, W: Write + Seek> {
    out: Positioned<'w, W>,
    start: u64,
    entries: Vec<InsurerEntry>,
    strings: Vec<u8>,
    record_count: u64,
}

impl<'w, W: Write + Seek> IndexWriter<'w, W> {
    pub fn new(w: &'w mut W) -> io::Result<IndexWriter<'w, W>> {
        let start = w.stream_position()?;
        let mut out = Positioned { inner: w, pos: 0 };
        out.write_all(&[0u8; HEADER_BYTES])?;
        Ok(IndexWriter {
            out,
            start,
            entries: Vec::new(),
            strings: Vec::new(),
            record_count: 0,
        })
    }

    /// Adds one insurer, whose segment file is written separately. Insurers must come in
    /// number order.
    pub fn push_insurer(&mut self, ins: &InsurerInput<'_>) -> io::Result<()> {
        if self
            .entries
            .last()
            .is_some_and(|e| e.number.to_key() >= ins.number.to_key())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "insurers must be sorted by number without repeats",
            ));
        }
        let entry = InsurerEntry {
            number: ins.number,
            kind: ins.kind,
            snapshot_date: ins.snapshot_date,
            name_offset: self.strings.len() as u32,
            name_bytes: ins.name.len() as u32,
            segment_offset: SEGMENT_HEADER_BYTES as u64,
            fst_bytes: ins.segment.fst_bytes,
            record_count: ins.segment.record_count,
            heap_bytes: ins.segment.heap_bytes,
            key_count: ins.segment.key_count,
            segment_xxh3: ins.segment.xxh3,
            covered_count: ins.covered_count,
            directory_slots: ins.segment.directory_slots,
        };
        self.strings.extend_from_slice(ins.name.as_bytes());
        self.record_count += u64::from(ins.segment.record_count);
        self.entries.push(entry);
        Ok(())
    }

    /// Writes the remaining sections, the section table and the header.
    pub fn finish(self, t: &IndexTail<'_>) -> io::Result<Header> {
        self.finish_as(t, &MAGIC, &[])
    }

    /// Finishes a layer file: a main file's sections (its persons and refs those of the
    /// persons it touches), then its link and its card tombstones, under [`LAYER_MAGIC`].
    pub fn finish_layer(
        self,
        t: &IndexTail<'_>,
        link: &LayerLink,
        tombstones: &[Tombstone],
    ) -> io::Result<Header> {
        let link = link.encode();
        let tombstones = encode_tombstones(tombstones);
        self.finish_as(
            t,
            &LAYER_MAGIC,
            &[
                (SectionKind::LayerLink, &link[..]),
                (SectionKind::Tombstones, &tombstones[..]),
            ],
        )
    }

    fn finish_as(
        mut self,
        t: &IndexTail<'_>,
        magic: &[u8; 8],
        extra: &[(SectionKind, &[u8])],
    ) -> io::Result<Header> {
        if t.generation_id.len() > GENERATION_ID_BYTES || !t.generation_id.is_ascii() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "generation id must be ASCII of at most 32 bytes",
            ));
        }
        let insurer_table: Vec<u8> = self.entries.iter().flat_map(InsurerEntry::encode).collect();
        let mut sections = vec![self.out.section(SectionKind::Insurers, [&insurer_table])?];
        sections.push(self.out.section(SectionKind::Strings, [&self.strings])?);
        // Persons and refs are encoded in chunks: a national table is gigabytes.
        let persons = t
            .persons
            .chunks(1 << 16)
            .map(|ch| ch.iter().flat_map(PersonEntry::encode).collect::<Vec<u8>>());
        sections.push(self.out.section(SectionKind::Persons, persons)?);
        let refs = t
            .person_refs
            .chunks(1 << 16)
            .map(|ch| ch.iter().flat_map(|r| r.to_le_bytes()).collect::<Vec<u8>>());
        sections.push(self.out.section(SectionKind::PersonRefs, refs)?);
        let starts =
            person_bucket_starts(t.persons.iter().map(|p| p.hash.0), t.persons.len() as u64);
        // Pair assertion: the directory ends at the table's end.
        assert_eq!(starts.last().copied(), Some(t.persons.len() as u32));
        let starts = starts
            .chunks(1 << 16)
            .map(|ch| ch.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>());
        sections.push(self.out.section(SectionKind::PersonBuckets, starts)?);
        let k = t.kohi;
        sections.push(self.out.section(SectionKind::Payers, [&k.payers])?);
        sections.push(
            self.out
                .section(SectionKind::Certificates, [&k.certificates])?,
        );
        sections.push(
            self.out
                .section(SectionKind::CertificateStrings, [&k.strings])?,
        );
        sections.push(
            self.out
                .section(SectionKind::CertificatePersons, [&k.persons])?,
        );
        for (kind, bytes) in extra {
            sections.push(self.out.section(*kind, [bytes])?);
        }
        let table: Vec<u8> = sections.iter().flat_map(SectionEntry::encode).collect();
        let section_table_offset = self.out.pos;
        self.out.write_all(&table)?;
        let header = Header {
            file_bytes: self.out.pos,
            generation_id: t.generation_id.to_owned(),
            built_on: t.built_on,
            insurer_count: self.entries.len() as u32,
            record_count: self.record_count,
            person_count: t.persons.len() as u64,
            person_key_fingerprint: t.person_key_fingerprint,
            payer_count: k.payer_count,
            certificate_count: k.certificate_count,
            section_count: sections.len() as u32,
            section_table_offset,
            section_table_xxh3: xxh3(&table),
        };
        let encoded = header.encode_as(magic);
        // Pair assertion: the header we write is the header a reader will decode.
        debug_assert_eq!(
            Header::decode_fields_as(&encoded, magic).as_ref(),
            Ok(&header)
        );
        let end = self.start + self.out.pos;
        let w = self.out.inner;
        w.seek(SeekFrom::Start(self.start))?;
        w.write_all(&encoded)?;
        w.seek(SeekFrom::Start(end))?;
        Ok(header)
    }
}

fn check_contents(c: &IndexContents<'_>) -> Result<(), String> {
    if c.generation_id.len() > GENERATION_ID_BYTES || !c.generation_id.is_ascii() {
        return Err(format!(
            "generation id {:?} must be ASCII of at most 32 bytes",
            c.generation_id
        ));
    }
    if !c
        .insurers
        .windows(2)
        .all(|w| w[0].number.to_key() < w[1].number.to_key())
    {
        return Err("insurers must be sorted by number without repeats".into());
    }
    if !c.persons.windows(2).all(|w| w[0].hash < w[1].hash) {
        return Err("persons must be sorted by hash without repeats".into());
    }
    let refs = c.person_refs.len() as u64;
    if c.persons
        .iter()
        .any(|p| u64::from(p.refs_start) + u64::from(p.refs_count) > refs)
    {
        return Err("a person points past the person refs".into());
    }
    Ok(())
}

/// Counts bytes written so sections know their offsets.
struct Positioned<'w, W: Write> {
    inner: &'w mut W,
    pos: u64,
}

impl<W: Write> Positioned<'_, W> {
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn align(&mut self) -> io::Result<u64> {
        let pad = align8(self.pos) - self.pos;
        self.write_all(&[0u8; 8][..pad as usize])?;
        Ok(self.pos)
    }

    /// Writes one section from parts, 8-aligned, and returns its table entry.
    fn section<P: AsRef<[u8]>>(
        &mut self,
        kind: SectionKind,
        parts: impl IntoIterator<Item = P>,
    ) -> io::Result<SectionEntry> {
        let offset = self.align()?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for part in parts {
            hasher.update(part.as_ref());
            self.write_all(part.as_ref())?;
        }
        Ok(SectionEntry {
            kind: kind as u32,
            offset,
            bytes: self.pos - offset,
            xxh3: hasher.digest(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32, len: usize) -> Vec<u8> {
        let mut k = i.to_le_bytes().to_vec();
        k.resize(len, 0xAB);
        k
    }

    #[test]
    fn card_directory_finds_every_short_key_and_nothing_else() {
        let keys: Vec<(Vec<u8>, u32, u16)> = (0..500u32)
            .map(|i| {
                (
                    key(i, 4 + (i as usize % (DIRECTORY_KEY_MAX - 3))),
                    i * 3,
                    (i % 7) as u16 + 1,
                )
            })
            .collect();
        let dir = card_directory(&keys);
        assert_eq!(
            dir.len(),
            directory_slots_for(keys.len()) * DIRECTORY_SLOT_BYTES
        );
        for (k, start, count) in &keys {
            assert_eq!(directory_get(&dir, k), Some((*start, *count)));
        }
        for i in 500..1000u32 {
            assert_eq!(directory_get(&dir, &key(i, 6)), None);
        }
        // A key longer than a slot holds is never in the directory.
        assert_eq!(directory_get(&dir, &key(1, DIRECTORY_KEY_MAX + 1)), None);
        assert_eq!(directory_get(&[], &key(1, 5)), None);
    }

    #[test]
    fn a_full_corrupt_directory_ends() {
        let mut dir = vec![0u8; 8 * DIRECTORY_SLOT_BYTES];
        for slot in dir.chunks_mut(DIRECTORY_SLOT_BYTES) {
            slot.copy_from_slice(&encode_directory_slot(&[9, 9, 9], 0, 1));
        }
        assert_eq!(directory_get(&dir, &[1, 2]), None);
        // A slot claiming a key longer than the slot is simply no match.
        dir[0] = 200;
        assert_eq!(directory_get(&dir, &[1, 2]), None);
    }
}
