//! The index reader: generic over its bytes (`AsRef<[u8]>`), so tests read a `Vec` and
//! production an mmap. `open` checks the structure, `verify` every checksum; the lookups
//! implement SPEC 4.1 and 4.2 and return views borrowing from the bytes, allocating nothing
//! except for the rare multi-record person answer.

mod mmap;

pub use mmap::{map_file, MappedIndex, OpenError};

use crate::domain::{
    covers, Branch, Date, InsurerNumber, LimitCategory, PersonHash, PersonKey, ReasonOfLoss,
};
use crate::format::{self, *};
use crate::query::{CardQuery, Outcome, PersonQuery, Qualification};
use std::ops::Range;
use std::sync::Arc;

/// A byte range of a shared buffer. An `fst::Map` owns one over its segment file, which
/// the records and heap also read, so each map is parsed once at open, not on every lookup.
pub struct Part<B> {
    bytes: Arc<B>,
    range: Range<usize>,
}

impl<B: AsRef<[u8]>> AsRef<[u8]> for Part<B> {
    fn as_ref(&self) -> &[u8] {
        &(*self.bytes).as_ref()[self.range.clone()]
    }
}

/// One insurer's segment file, its parts as byte ranges computed once at open.
struct Segment<B> {
    bytes: Arc<B>,
    records: Range<usize>,
    heap: Range<usize>,
    directory: Range<usize>,
    body: Range<usize>,
    fst: fst::Map<Part<B>>,
    file_name: String,
    /// Whether the whole string heap is UTF-8, checked once on first use: then each text cut
    /// from it on character boundaries is UTF-8 too, and answers copy it without validating
    /// every name again (that was a tenth of the server's time per answer).
    heap_utf8: std::sync::OnceLock<bool>,
}

/// An insurer as the reader keeps it.
#[derive(Debug, Clone)]
pub struct InsurerInfo {
    pub entry: InsurerEntry,
    pub name: String,
    number_str: String,
}

impl InsurerInfo {
    pub fn number_str(&self) -> &str {
        &self.number_str
    }
}

/// The bytes of a generation: its main file and its segment files in insurer-table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFiles<B> {
    pub main: B,
    pub segments: Vec<B>,
}

impl<B: AsRef<[u8]>> IndexFiles<B> {
    /// Bytes of all files together.
    pub fn total_bytes(&self) -> usize {
        self.main.as_ref().len()
            + self
                .segments
                .iter()
                .map(|s| s.as_ref().len())
                .sum::<usize>()
    }
}

/// Insurer key → insurer table position, by open addressing over the key's 8 bytes as a
/// `u64` in a power-of-two table at most half full. Hand-written for the query path: it
/// replaced a binary search of the 3,400 sorted keys, whose twelve dependent, unpredictable
/// steps were about 5% of a card query's work; std's `HashMap` hashes with SipHash, slower
/// than the one multiply here. Keys are never 0 (digits or blanks), so 0 marks a free slot.
struct InsurerSlots {
    shift: u32,
    slots: Vec<(u64, u32)>,
}

impl InsurerSlots {
    fn new(keys: &[[u8; 8]]) -> InsurerSlots {
        let len = (keys.len() * 2).next_power_of_two().max(16);
        let mut table = InsurerSlots {
            shift: 64 - len.trailing_zeros(),
            slots: vec![(0, 0); len],
        };
        for (position, key) in keys.iter().enumerate() {
            let k = u64::from_le_bytes(*key);
            assert_ne!(k, 0, "an insurer key is digits or blanks");
            let mut i = table.home(k);
            while table.slots[i].0 != 0 {
                i = (i + 1) & (len - 1);
            }
            table.slots[i] = (k, position as u32);
        }
        // Pair assertion: every key finds its own position.
        debug_assert!(keys
            .iter()
            .enumerate()
            .all(|(p, k)| table.get(*k) == Some(p)));
        table
    }

    fn home(&self, k: u64) -> usize {
        // Fibonacci hashing: the product's high bits.
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    fn get(&self, key: [u8; 8]) -> Option<usize> {
        let k = u64::from_le_bytes(key);
        let mask = self.slots.len() - 1;
        let mut i = self.home(k);
        loop {
            match self.slots[i] {
                (0, _) => return None,
                (slot, position) if slot == k => return Some(position as usize),
                _ => i = (i + 1) & mask,
            }
        }
    }
}

/// An opened index over `B`.
pub struct Index<B> {
    main: B,
    header: Header,
    sections: Vec<SectionEntry>,
    insurer_slots: InsurerSlots,
    insurers: Vec<InsurerInfo>,
    segments: Vec<Segment<B>>,
    persons: Range<usize>,
    person_refs: Range<usize>,
    person_buckets: Range<usize>,
    key: PersonKey,
}

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

    /// Every person entry, in hash order (for an incremental build).
    pub fn person_table(&self) -> impl Iterator<Item = PersonEntry> + '_ {
        self.main.as_ref()[self.persons.clone()]
            .chunks_exact(PERSON_ENTRY_BYTES)
            .map(PersonEntry::decode)
    }

    /// A person's refs as (insurer position, record) pairs.
    pub fn person_refs(&self, p: &PersonEntry) -> impl Iterator<Item = (u32, u32)> + '_ {
        let refs = &self.main.as_ref()[self.person_refs.clone()];
        let start = p.refs_start as usize * PERSON_REF_BYTES;
        let end = (start + p.refs_count as usize * PERSON_REF_BYTES).min(refs.len());
        refs[start.min(end)..end]
            .chunks_exact(PERSON_REF_BYTES)
            .map(|c| decode_person_ref(u64_at(c, 0)))
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn generation(&self) -> &str {
        &self.header.generation_id
    }

    pub fn insurers(&self) -> &[InsurerInfo] {
        &self.insurers
    }

    /// Bytes of the whole generation: the main file and every segment file.
    pub fn total_bytes(&self) -> u64 {
        self.header.file_bytes
            + self
                .insurers
                .iter()
                .map(|i| i.entry.segment_end())
                .sum::<u64>()
    }

    /// The date "covered today" was counted for.
    pub fn built_on(&self) -> Date {
        self.header.built_on
    }

    fn insurer_index(&self, n: &InsurerNumber) -> Option<usize> {
        self.insurer_slots.get(n.to_key())
    }

    /// Record `rec` of insurer `i` (by table position), if there is one.
    pub fn record_view(&self, i: usize, rec: usize) -> Option<RecordView<'_>> {
        self.view(i, rec)
    }

    /// Records of insurer `i`, `start..start+count`, as views.
    fn view(&self, i: usize, rec: usize) -> Option<RecordView<'_>> {
        let seg = &self.segments[i];
        let b = (*seg.bytes).as_ref();
        let at = seg.records.start + rec * RECORD_BYTES;
        if at + RECORD_BYTES > seg.records.end {
            return None;
        }
        let heap = &b[seg.heap.clone()];
        Some(RecordView {
            insurer: &self.insurers[i],
            rec: &b[at..at + RECORD_BYTES],
            heap,
            heap_utf8: *seg
                .heap_utf8
                .get_or_init(|| std::str::from_utf8(heap).is_ok()),
        })
    }

    /// All records of one card (insurer, symbol, number), in branch then date order.
    pub fn card_records(
        &self,
        insurer: &InsurerNumber,
        symbol: &str,
        number: &str,
    ) -> CardRecords<'_, B> {
        self.probed_records(self.card_probe(insurer, symbol, number).as_ref())
    }

    /// The first step of a card lookup, which touches no index memory but the insurer table:
    /// the card's segment and key. `None` when no such card can exist.
    pub fn card_probe(
        &self,
        insurer: &InsurerNumber,
        symbol: &str,
        number: &str,
    ) -> Option<CardProbe> {
        let insurer = self.insurer_index(insurer)?;
        let mut key = [0u8; MAX_CARD_KEY_BYTES];
        let len = card_key(symbol, number, &mut key)?;
        Some(CardProbe { insurer, key, len })
    }

    /// Starts loading the memory [`Self::probed_records`] will read first (the card's
    /// directory slot), so a batch can overlap the cache misses of its queries.
    pub fn prefetch_probe(&self, probe: &CardProbe) {
        if let Some(dir) = self.directory_of(probe) {
            let slots = dir.len() / DIRECTORY_SLOT_BYTES;
            let home = directory_home(probe.key(), slots);
            prefetch(&dir[home * DIRECTORY_SLOT_BYTES..]);
        }
    }

    /// The card's directory, when its key is short enough to be in it.
    fn directory_of(&self, probe: &CardProbe) -> Option<&[u8]> {
        let seg = &self.segments[probe.insurer];
        (probe.len <= DIRECTORY_KEY_MAX && !seg.directory.is_empty())
            .then(|| &(*seg.bytes).as_ref()[seg.directory.clone()])
    }

    /// The second step: the records a probe names (none for `None`).
    pub fn probed_records(&self, probe: Option<&CardProbe>) -> CardRecords<'_, B> {
        let found = probe.and_then(|p| {
            let found = match self.directory_of(p) {
                Some(dir) => directory_get(dir, p.key()),
                None => self.segments[p.insurer]
                    .fst
                    .get(p.key())
                    .map(decode_card_value),
            };
            found.map(|f| (p.insurer, f))
        });
        match found {
            Some((i, (start, count))) => CardRecords {
                index: self,
                insurer: i,
                next: start as usize,
                end: start as usize + count as usize,
            },
            None => CardRecords {
                index: self,
                insurer: 0,
                next: 0,
                end: 0,
            },
        }
    }

    /// SPEC 4.1. `today` is used when the query gives no date.
    pub fn card(&self, q: &CardQuery, today: Date) -> Outcome<RecordView<'_>> {
        self.card_in(
            q,
            self.card_records(&q.insurer, &q.symbol, &q.number),
            today,
        )
    }

    /// SPEC 4.1 over the records of the query's card, found by [`Self::card_records`] or in
    /// steps ([`Self::card_probe`], [`Self::probed_records`]).
    pub fn card_in<'a>(
        &'a self,
        q: &CardQuery,
        card: CardRecords<'a, B>,
        today: Date,
    ) -> Outcome<RecordView<'a>> {
        let date = q.date.unwrap_or(today);
        let candidates = || {
            card.clone().filter(move |r| {
                r.birthdate() == q.birthdate && q.branch.is_none_or(|b| r.branch() == b)
            })
        };
        // Steps 2-4 in one pass over the candidates (a card has one to a few records; each
        // pass rebuilds their views).
        let mut first: Option<RecordView<'a>> = None;
        let mut covering: Option<RecordView<'a>> = None;
        let (mut branches_differ, mut covering_count) = (false, 0u32);
        for r in candidates() {
            match &first {
                None => first = Some(r),
                Some(f) => branches_differ |= r.branch() != f.branch(),
            }
            if r.covers(date) {
                covering_count += 1;
                covering.get_or_insert(r);
            }
        }
        if first.is_none() {
            return Outcome::NotFound;
        }
        if branches_differ {
            return Outcome::MultipleCard;
        }
        match (covering, covering_count) {
            (Some(r), 1) => return Outcome::Eligible(r),
            (Some(_), _) => return Outcome::MultipleCard,
            (None, _) => {}
        }
        let newer_elsewhere = candidates().filter_map(|r| r.person()).any(|h| {
            self.person_entry(&h).is_some_and(|p| {
                p.flags & PERSON_IDENTITY_UNVERIFIED == 0
                    && self.person_records(&p).any(|r| r.covers(date))
            })
        });
        if newer_elsewhere {
            return Outcome::InvalidNewerQualification;
        }
        Outcome::Invalid(nearest_before(candidates(), date).expect("at least one candidate"))
    }

    /// SPEC 4.2.
    pub fn person(&self, q: &PersonQuery, today: Date) -> Outcome<RecordView<'_>> {
        let hash = self.person_hash(q);
        self.person_in(q, self.person_entry(&hash), today)
    }

    /// The first step of a person lookup: the keyed hash of the query's number (no index
    /// memory is read).
    pub fn person_hash(&self, q: &PersonQuery) -> PersonHash {
        self.key.hash(&q.individual_number)
    }

    /// Starts loading the person's bucket of the bucket directory.
    pub fn prefetch_person_bucket(&self, hash: &PersonHash) {
        let starts = &self.main.as_ref()[self.person_buckets.clone()];
        if let Some(at) = format::person_bucket_offset(starts, &hash.0) {
            prefetch(&starts[at..]);
        }
    }

    /// Starts loading the person's entry in the person table. Reads the bucket directory:
    /// call it once [`Self::prefetch_person_bucket`] has had time to bring it in.
    pub fn prefetch_person_entry(&self, hash: &PersonHash) {
        let table = &self.main.as_ref()[self.persons.clone()];
        let starts = &self.main.as_ref()[self.person_buckets.clone()];
        if let Some((start, _)) = format::person_bucket_range(table, starts, &hash.0) {
            prefetch(&table[start * PERSON_ENTRY_BYTES..]);
        }
    }

    /// Starts loading a person's record references.
    pub fn prefetch_person_refs(&self, p: &PersonEntry) {
        let refs = &self.main.as_ref()[self.person_refs.clone()];
        let start = p.refs_start as usize * PERSON_REF_BYTES;
        prefetch(refs.get(start..).unwrap_or_default());
    }

    /// Starts loading a person's records (at most [`PREFETCH_RECORDS`]) and their insurers'
    /// table rows. Reads the person's references: call it once
    /// [`Self::prefetch_person_refs`] has had time to bring them in.
    pub fn prefetch_person_records(&self, p: &PersonEntry) {
        for (ins, rec) in self.person_refs(p).take(PREFETCH_RECORDS) {
            if let Some(seg) = self.segments.get(ins as usize) {
                let at = seg.records.start + rec as usize * RECORD_BYTES;
                prefetch(
                    (*seg.bytes)
                        .as_ref()
                        .get(at..seg.records.end)
                        .unwrap_or_default(),
                );
                prefetch_value(&self.insurers[ins as usize]);
            }
        }
    }

    /// Starts loading the text of a person's records (at most [`PREFETCH_RECORDS`]), which a
    /// person query's answer shows. Reads the records: call it once
    /// [`Self::prefetch_person_records`] has had time to bring them in.
    pub fn prefetch_person_text(&self, p: &PersonEntry) {
        for r in self.person_records(p).take(PREFETCH_RECORDS) {
            r.prefetch_text();
        }
    }

    /// SPEC 4.2 for a person found by [`Self::person_entry`] (`None`: no such person).
    pub fn person_in(
        &self,
        q: &PersonQuery,
        entry: Option<PersonEntry>,
        today: Date,
    ) -> Outcome<RecordView<'_>> {
        let date = q.date.unwrap_or(today);
        let Some(p) = entry else {
            return Outcome::NotFound;
        };
        if p.flags & PERSON_IDENTITY_UNVERIFIED != 0 {
            return Outcome::NotFound;
        }
        let mut covering = self.person_records(&p).filter(|r| r.covers(date));
        match (covering.next(), covering.next()) {
            (Some(r), None) => Outcome::Eligible(r),
            (Some(a), Some(b)) => {
                let mut all = vec![a, b];
                all.extend(covering);
                Outcome::MultiplePerson(all)
            }
            (None, _) => match nearest_before(self.person_records(&p), date) {
                Some(r) => Outcome::Invalid(r),
                None => Outcome::NotFound,
            },
        }
    }

    /// Finds a person by hash (see [`format::find_person`]).
    pub fn person_entry(&self, hash: &PersonHash) -> Option<PersonEntry> {
        let table = &self.main.as_ref()[self.persons.clone()];
        let starts = &self.main.as_ref()[self.person_buckets.clone()];
        let i = format::find_person(table, starts, &hash.0)?;
        Some(PersonEntry::decode(
            &table[i * PERSON_ENTRY_BYTES..(i + 1) * PERSON_ENTRY_BYTES],
        ))
    }

    /// A person's records in insurer, then record order.
    pub fn person_records<'a>(
        &'a self,
        p: &PersonEntry,
    ) -> impl Iterator<Item = RecordView<'a>> + 'a {
        self.person_refs(p).filter_map(move |(ins, rec)| {
            self.insurers.get(ins as usize)?;
            self.view(ins as usize, rec as usize)
        })
    }

    /// The records of insurer `i` (by table position), in segment order.
    pub fn insurer_records(&self, i: usize) -> impl Iterator<Item = RecordView<'_>> + '_ {
        let n = self
            .insurers
            .get(i)
            .map_or(0, |ins| ins.entry.record_count as usize);
        (0..n).filter_map(move |r| self.view(i, r))
    }

    /// Every record of every insurer (for tools and the guard).
    pub fn all_records(&self) -> impl Iterator<Item = RecordView<'_>> + '_ {
        (0..self.insurers.len()).flat_map(move |i| {
            (0..self.insurers[i].entry.record_count as usize).filter_map(move |r| self.view(i, r))
        })
    }
}

/// SPEC 4.1 step 4 and 4.2: the record nearest before `date` — among records that began on
/// or before it, the one that ended last; if `date` is before every record, the earliest.
pub fn nearest_before<R: Qualification>(records: impl Iterator<Item = R>, date: Date) -> Option<R> {
    let mut before: Option<R> = None;
    let mut earliest: Option<R> = None;
    for r in records {
        if r.qualification_date() <= date {
            let end = |x: &R| {
                (
                    x.disqualification_date().unwrap_or(Date::MAX),
                    x.qualification_date(),
                )
            };
            if before.as_ref().is_none_or(|b| end(&r) > end(b)) {
                before = Some(r);
            }
        } else if earliest
            .as_ref()
            .is_none_or(|e| r.qualification_date() < e.qualification_date())
        {
            earliest = Some(r);
        }
    }
    before.or(earliest)
}

/// Iterator over one card's records.
pub struct CardRecords<'a, B> {
    index: &'a Index<B>,
    insurer: usize,
    next: usize,
    end: usize,
}

/// Where a card's records would be: its insurer (by table position) and its key.
#[derive(Clone, Copy)]
pub struct CardProbe {
    insurer: usize,
    key: [u8; MAX_CARD_KEY_BYTES],
    len: usize,
}

impl CardProbe {
    fn key(&self) -> &[u8] {
        &self.key[..self.len]
    }
}

impl<B: AsRef<[u8]>> CardRecords<'_, B> {
    /// Starts loading the card's records (at most [`PREFETCH_RECORDS`] of them).
    pub fn prefetch(&self) {
        let Some(seg) = self.index.segments.get(self.insurer) else {
            return;
        };
        let n = (self.end - self.next).min(PREFETCH_RECORDS);
        let b = (*seg.bytes).as_ref();
        let start = seg.records.start + self.next * RECORD_BYTES;
        let end = (start + n * RECORD_BYTES).min(seg.records.end);
        prefetch_lines(b.get(start..end).unwrap_or_default());
        prefetch_value(&self.index.insurers[self.insurer]);
    }

    /// The person of the card's first record when that record does not cover `date`: the
    /// person SPEC 4.1 step 3 looks up (is there a newer qualification elsewhere?), so a
    /// group can prefetch them. Reads the record, as [`Self::prefetch_text`] does.
    pub fn lost_person(&self, date: Date) -> Option<PersonHash> {
        self.clone()
            .next()
            .filter(|first| !first.covers(date))
            .and_then(|first| first.person())
    }

    /// Starts loading the text of the card's first record. Reads that record: call it once
    /// [`Self::prefetch`] has had time to bring it in.
    pub fn prefetch_text(&self) {
        if let Some(first) = self.clone().next() {
            first.prefetch_text();
        }
    }
}

/// Starts loading every cache line of `bytes`.
fn prefetch_lines(bytes: &[u8]) {
    let base = bytes.as_ptr() as usize;
    let mut at = 0;
    while at < bytes.len() {
        prefetch(&bytes[at..]);
        // The next line's first byte: lines are aligned in memory, not in the slice.
        at = ((base + at) & !(CACHE_LINE_BYTES - 1)) + CACHE_LINE_BYTES - base;
    }
}

/// Starts loading the cache line holding the start of `value`.
fn prefetch_value<T>(value: &T) {
    prefetch_addr((value as *const T).cast::<u8>());
}

/// Records of one card worth fetching ahead: most cards have one to three.
const PREFETCH_RECORDS: usize = 4;
const CACHE_LINE_BYTES: usize = 64;

/// Asks the CPU to start loading the cache line holding the first byte of `bytes`, without
/// waiting for it. A hint: it changes no result, only when the memory arrives.
#[inline]
fn prefetch(bytes: &[u8]) {
    if let Some(b) = bytes.first() {
        prefetch_addr(b);
    }
}

/// [`prefetch`] of the line holding `at`, which points into a live value.
#[inline]
fn prefetch_addr(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it loads nothing into the program and never faults,
    // even on an unmapped address; the callers' addresses are in live values anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

impl<'a, B: AsRef<[u8]>> Iterator for CardRecords<'a, B> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        if self.next >= self.end {
            return None;
        }
        let v = self.index.view(self.insurer, self.next);
        self.next += 1;
        v
    }
}

impl<B> Clone for CardRecords<'_, B> {
    fn clone(&self) -> Self {
        CardRecords {
            index: self.index,
            insurer: self.insurer,
            next: self.next,
            end: self.end,
        }
    }
}

/// A record borrowed from the index bytes. Field reads decode on demand.
#[derive(Clone, Copy)]
pub struct RecordView<'a> {
    insurer: &'a InsurerInfo,
    rec: &'a [u8],
    heap: &'a [u8],
    /// The whole heap is UTF-8 (see `Segment::heap_utf8`).
    heap_utf8: bool,
}

impl PartialEq for RecordView<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.rec, other.rec)
    }
}

impl Eq for RecordView<'_> {}

impl std::fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RecordView({} line {})",
            self.insurer.number_str,
            self.line()
        )
    }
}

impl<'a> RecordView<'a> {
    pub fn person(&self) -> Option<PersonHash> {
        (self.rec[REC_FLAGS] & RECORD_HAS_PERSON != 0).then(|| {
            PersonHash(
                self.rec[REC_PERSON..REC_PERSON + 16]
                    .try_into()
                    .expect("16 bytes"),
            )
        })
    }

    pub fn covers(&self, date: Date) -> bool {
        covers(
            self.qualification_date(),
            self.disqualification_date(),
            date,
        )
    }

    pub fn line(&self) -> u32 {
        u32::from_le_bytes([
            self.rec[REC_LINE],
            self.rec[REC_LINE + 1],
            self.rec[REC_LINE + 2],
            0,
        ])
    }

    pub fn insurer(&self) -> &'a InsurerInfo {
        self.insurer
    }

    /// Starts loading what the answer shows of the record beyond its row: its text, and its
    /// insurer's number and name. Reads the record's row and its insurer's table row.
    pub fn prefetch_text(&self) {
        let start = u32_at(self.rec, REC_HEAP) as usize;
        let (s, n, m, k) = self.lens();
        let end = (start + s + n + m + k).min(self.heap.len());
        prefetch_lines(self.heap.get(start..end).unwrap_or_default());
        prefetch(self.insurer.name.as_bytes());
        prefetch(self.insurer.number_str.as_bytes());
    }

    /// The full decoded record (slow path, for tools and tests).
    pub fn entry(&self) -> Result<RecordEntry, FormatError> {
        RecordEntry::decode(self.rec)
    }

    fn text(&self, skip: usize, len: usize) -> &'a str {
        let start = u32_at(self.rec, REC_HEAP) as usize + skip;
        self.heap
            .get(start..start + len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// The same text as bytes: without validation when the heap is UTF-8 and the cut falls on
    /// character boundaries (always, for a heap the build wrote), else through [`Self::text`].
    fn utf8(&self, skip: usize, len: usize) -> &'a [u8] {
        let start = u32_at(self.rec, REC_HEAP) as usize + skip;
        let is_boundary = |at: usize| self.heap.get(at).is_none_or(|&b| (b as i8) >= -0x40);
        match self.heap.get(start..start + len) {
            Some(b) if self.heap_utf8 && is_boundary(start) && is_boundary(start + len) => b,
            _ => self.text(skip, len).as_bytes(),
        }
    }

    fn lens(&self) -> (usize, usize, usize, usize) {
        (
            self.rec[REC_SYMBOL_LEN] as usize,
            self.rec[REC_NUMBER_LEN] as usize,
            u16_at(self.rec, REC_NAME_LEN) as usize,
            u16_at(self.rec, REC_KANA_LEN) as usize,
        )
    }
}

impl Qualification for RecordView<'_> {
    fn insurer_number(&self) -> &str {
        &self.insurer.number_str
    }
    fn insurer_name(&self) -> &str {
        &self.insurer.name
    }
    fn symbol(&self) -> &str {
        let (s, ..) = self.lens();
        self.text(0, s)
    }
    fn number(&self) -> &str {
        let (s, n, ..) = self.lens();
        self.text(s, n)
    }
    fn branch(&self) -> Branch {
        Branch::new(self.rec[REC_BRANCH]).unwrap_or(Branch::new(0).expect("00 is a branch"))
    }
    fn relationship(&self) -> u8 {
        self.rec[REC_RELATIONSHIP]
    }
    fn name(&self) -> &str {
        let (s, n, m, _) = self.lens();
        self.text(s + n, m)
    }
    fn name_kana(&self) -> &str {
        let (s, n, m, k) = self.lens();
        self.text(s + n + m, k)
    }
    fn symbol_utf8(&self) -> &[u8] {
        let (s, ..) = self.lens();
        self.utf8(0, s)
    }
    fn number_utf8(&self) -> &[u8] {
        let (s, n, ..) = self.lens();
        self.utf8(s, n)
    }
    fn name_utf8(&self) -> &[u8] {
        let (s, n, m, _) = self.lens();
        self.utf8(s + n, m)
    }
    fn name_kana_utf8(&self) -> &[u8] {
        let (s, n, m, k) = self.lens();
        self.utf8(s + n + m, k)
    }
    fn sex(&self) -> u8 {
        self.rec[REC_SEX]
    }
    fn birthdate(&self) -> Date {
        Date::from_days(i32_at(self.rec, REC_BIRTH))
    }
    fn qualification_date(&self) -> Date {
        Date::from_days(i32_at(self.rec, REC_QUAL))
    }
    fn disqualification_date(&self) -> Option<Date> {
        let d = i32_at(self.rec, REC_DISQ);
        (d != format::NO_DATE).then(|| Date::from_days(d))
    }
    fn reason_of_loss(&self) -> Option<&'static str> {
        ReasonOfLoss::from_code(self.rec[REC_REASON]).map(ReasonOfLoss::as_str)
    }
    fn copay_ratio(&self) -> u8 {
        self.rec[REC_COPAY]
    }
    fn limit_category(&self) -> Option<&'static str> {
        LimitCategory::from_code(self.rec[REC_LIMIT]).map(LimitCategory::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::InsurerSlots;
    use proptest::prelude::*;

    proptest! {
        /// The slots answer as a binary search of the sorted keys does (the model they
        /// replaced), for keys in the table and keys not in it.
        #[test]
        fn insurer_slots_agree_with_binary_search(
            numbers in prop::collection::btree_set(0u32..100_000_000, 0..600),
            probes in prop::collection::vec(0u32..100_000_000, 0..200),
        ) {
            let key = |n: u32| {
                let mut k = [b' '; 8];
                k.copy_from_slice(format!("{n:08}").as_bytes());
                k
            };
            let keys: Vec<[u8; 8]> = numbers.iter().map(|&n| key(n)).collect();
            let slots = InsurerSlots::new(&keys);
            for n in numbers.iter().copied().chain(probes) {
                prop_assert_eq!(slots.get(key(n)), keys.binary_search(&key(n)).ok());
            }
        }
    }
}
