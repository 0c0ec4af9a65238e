//! The index file format, byte by byte (see FORMAT.md). This module does no I/O: it encodes
//! and decodes fixed-width structures in byte slices, and `writer` streams them into any
//! `Write + Seek`.
//!
//! Everything is little-endian. A generation is a main file (`index.shk`: header of 128 bytes,
//! sections each 8-byte aligned, section table) and one segment file per insurer
//! (`segments/<number>-<xxh3>.seg`: a 32-byte header, then records, FST and string heap). The
//! header and the section table carry xxh3-64 checksums; every section has its own checksum in
//! the table, and every segment's body has one in the insurer table. Segment files are named
//! by their content, so a nightly build hard-links the unchanged insurers' files instead of
//! copying them.

pub mod writer;

use crate::domain::{
    Branch, CopayRatio, Date, InsurerNumber, LimitCategory, PersonHash, ReasonOfLoss, Relationship,
    Sex,
};
use thiserror::Error;

pub const MAGIC: [u8; 8] = *b"SHIKAKU\x1a";
pub const FORMAT_VERSION: u32 = 4;
pub const HEADER_BYTES: usize = 128;
pub const SECTION_ENTRY_BYTES: usize = 32;
pub const INSURER_ENTRY_BYTES: usize = 64;
pub const RECORD_BYTES: usize = 48;
pub const PERSON_ENTRY_BYTES: usize = 24;
pub const PERSON_REF_BYTES: usize = 8;
pub const GENERATION_ID_BYTES: usize = 32;
/// Magic bytes of a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SHKSEG\x1a\0";
/// A segment file's header; the body (records, FST, heap) starts right after it.
pub const SEGMENT_HEADER_BYTES: usize = 32;
/// Where a generation keeps its segment files, relative to its directory.
pub const SEGMENTS_DIR: &str = "segments";
/// Records sharing one card key (symbol, number) in one insurer: branches × history. The FST
/// value packs the count in 16 bits.
pub const MAX_RECORDS_PER_CARD: usize = u16::MAX as usize;
/// Sentinel for "no disqualification date" in a record.
pub const NO_DATE: i32 = i32::MAX;

/// The sections of an index file, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    Insurers = 1,
    Strings = 2,
    // 3 was the segments section of format version 2; segments are files of their own since 3.
    Persons = 4,
    PersonRefs = 5,
    PersonBuckets = 6,
}

impl SectionKind {
    pub const ALL: [SectionKind; 5] = [
        SectionKind::Insurers,
        SectionKind::Strings,
        SectionKind::Persons,
        SectionKind::PersonRefs,
        SectionKind::PersonBuckets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Insurers => "insurers",
            SectionKind::Strings => "strings",
            SectionKind::Persons => "persons",
            SectionKind::PersonRefs => "person refs",
            SectionKind::PersonBuckets => "person buckets",
        }
    }
}

/// What can be wrong with an index file. Each message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("not a shikaku index (bad magic bytes); point --data at a directory made by `shikaku build`")]
    BadMagic,
    #[error("index format version {found}, this shikaku reads version {expected}; rebuild the index with this shikaku (`shikaku build`)")]
    UnsupportedVersion { found: u32, expected: u32 },
    #[error("index file is truncated or has trailing bytes ({actual} bytes, header says {expected}); the copy is incomplete: rebuild or copy it again")]
    Length { expected: u64, actual: u64 },
    #[error("checksum mismatch in the {what}; the file is corrupt: rebuild it or roll back to an earlier generation")]
    Checksum { what: String },
    #[error("malformed index: {0}; the file is corrupt: rebuild it or roll back to an earlier generation")]
    Malformed(String),
    #[error("segment file {file} cannot be read ({error}); the generation is incomplete: rebuild it or roll back to an earlier generation")]
    MissingSegment { file: String, error: String },
    #[error("the index was built with another person key (fingerprint {index:016x}, configured {configured:016x}); serve it with the key it was built with")]
    PersonKeyMismatch { index: u64, configured: u64 },
}

/// Little-endian field readers over a slice known to be long enough (callers check lengths
/// once per structure, so these index directly).
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub fn xxh3(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Rounds up to the next multiple of 8: every section and segment part starts 8-aligned.
pub fn align8(n: u64) -> u64 {
    (n + 7) & !7
}

/// The fixed header at offset 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub file_bytes: u64,
    pub generation_id: String,
    pub built_on: Date,
    pub insurer_count: u32,
    pub record_count: u64,
    pub person_count: u64,
    pub person_key_fingerprint: u64,
    pub section_count: u32,
    pub section_table_offset: u64,
    pub section_table_xxh3: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        assert!(
            self.generation_id.len() <= GENERATION_ID_BYTES,
            "generation id too long"
        );
        assert!(self.generation_id.is_ascii(), "generation id must be ASCII");
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.file_bytes.to_le_bytes());
        b[24..24 + self.generation_id.len()].copy_from_slice(self.generation_id.as_bytes());
        b[56..60].copy_from_slice(&self.built_on.days().to_le_bytes());
        b[60..64].copy_from_slice(&self.insurer_count.to_le_bytes());
        b[64..72].copy_from_slice(&self.record_count.to_le_bytes());
        b[72..80].copy_from_slice(&self.person_count.to_le_bytes());
        b[80..88].copy_from_slice(&self.person_key_fingerprint.to_le_bytes());
        b[88..92].copy_from_slice(&self.section_count.to_le_bytes());
        b[96..104].copy_from_slice(&self.section_table_offset.to_le_bytes());
        b[104..112].copy_from_slice(&self.section_table_xxh3.to_le_bytes());
        let sum = xxh3(&b[..120]);
        b[120..128].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Checks magic, version, header checksum and file length before reading any field.
    pub fn decode(file: &[u8]) -> Result<Header, FormatError> {
        if file.len() < HEADER_BYTES {
            if file.len() >= 8 && file[..8] != MAGIC {
                return Err(FormatError::BadMagic);
            }
            return Err(FormatError::Length {
                expected: HEADER_BYTES as u64,
                actual: file.len() as u64,
            });
        }
        let header = Header::decode_fields(&file[..HEADER_BYTES])?;
        if header.file_bytes != file.len() as u64 {
            return Err(FormatError::Length {
                expected: header.file_bytes,
                actual: file.len() as u64,
            });
        }
        Ok(header)
    }

    /// Decodes the 128 header bytes alone (magic, version, checksum, fields).
    pub fn decode_fields(b: &[u8]) -> Result<Header, FormatError> {
        if b.len() != HEADER_BYTES {
            return Err(FormatError::Length {
                expected: HEADER_BYTES as u64,
                actual: b.len() as u64,
            });
        }
        if b[0..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        if xxh3(&b[..120]) != u64_at(b, 120) {
            return Err(FormatError::Checksum {
                what: "header".into(),
            });
        }
        let id_bytes = &b[24..24 + GENERATION_ID_BYTES];
        let id_len = id_bytes
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(GENERATION_ID_BYTES);
        let generation_id = std::str::from_utf8(&id_bytes[..id_len])
            .map_err(|_| FormatError::Malformed("generation id is not text".into()))?
            .to_owned();
        Ok(Header {
            file_bytes: u64_at(b, 16),
            generation_id,
            built_on: Date::from_days(i32_at(b, 56)),
            insurer_count: u32_at(b, 60),
            record_count: u64_at(b, 64),
            person_count: u64_at(b, 72),
            person_key_fingerprint: u64_at(b, 80),
            section_count: u32_at(b, 88),
            section_table_offset: u64_at(b, 96),
            section_table_xxh3: u64_at(b, 104),
        })
    }
}

/// One row of the section table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionEntry {
    pub kind: u32,
    pub offset: u64,
    pub bytes: u64,
    pub xxh3: u64,
}

impl SectionEntry {
    pub fn encode(&self) -> [u8; SECTION_ENTRY_BYTES] {
        let mut b = [0u8; SECTION_ENTRY_BYTES];
        b[0..4].copy_from_slice(&self.kind.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.bytes.to_le_bytes());
        b[24..32].copy_from_slice(&self.xxh3.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> SectionEntry {
        SectionEntry {
            kind: u32_at(b, 0),
            offset: u64_at(b, 8),
            bytes: u64_at(b, 16),
            xxh3: u64_at(b, 24),
        }
    }
}

/// One row of the insurer table: where its segment lies and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsurerEntry {
    pub number: InsurerNumber,
    pub kind: u8,
    pub snapshot_date: Date,
    pub name_offset: u32,
    pub name_bytes: u32,
    /// Offset of the segment's body within its segment file: always `SEGMENT_HEADER_BYTES`
    /// (kept so the layout arithmetic below reads as offsets into that file).
    pub segment_offset: u64,
    pub fst_bytes: u32,
    pub record_count: u32,
    pub heap_bytes: u32,
    pub key_count: u32,
    pub segment_xxh3: u64,
    /// Members covered on the build date, for the guard against truncated deliveries.
    pub covered_count: u32,
    /// Slots of the segment's card directory (0: none, every lookup walks the FST).
    pub directory_slots: u32,
}

impl InsurerEntry {
    pub fn encode(&self) -> [u8; INSURER_ENTRY_BYTES] {
        let mut b = [0u8; INSURER_ENTRY_BYTES];
        b[0..8].copy_from_slice(&self.number.to_key());
        b[8] = self.kind;
        b[12..16].copy_from_slice(&self.snapshot_date.days().to_le_bytes());
        b[16..20].copy_from_slice(&self.name_offset.to_le_bytes());
        b[20..24].copy_from_slice(&self.name_bytes.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment_offset.to_le_bytes());
        b[32..36].copy_from_slice(&self.fst_bytes.to_le_bytes());
        b[36..40].copy_from_slice(&self.record_count.to_le_bytes());
        b[40..44].copy_from_slice(&self.heap_bytes.to_le_bytes());
        b[44..48].copy_from_slice(&self.key_count.to_le_bytes());
        b[48..56].copy_from_slice(&self.segment_xxh3.to_le_bytes());
        b[56..60].copy_from_slice(&self.covered_count.to_le_bytes());
        b[60..64].copy_from_slice(&self.directory_slots.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<InsurerEntry, FormatError> {
        let key: [u8; 8] = b[0..8].try_into().expect("8 bytes");
        let number = InsurerNumber::from_key(key).ok_or_else(|| {
            FormatError::Malformed("insurer table holds an invalid insurer number".into())
        })?;
        Ok(InsurerEntry {
            number,
            kind: b[8],
            snapshot_date: Date::from_days(i32_at(b, 12)),
            name_offset: u32_at(b, 16),
            name_bytes: u32_at(b, 20),
            segment_offset: u64_at(b, 24),
            fst_bytes: u32_at(b, 32),
            record_count: u32_at(b, 36),
            heap_bytes: u32_at(b, 40),
            key_count: u32_at(b, 44),
            segment_xxh3: u64_at(b, 48),
            covered_count: u32_at(b, 56),
            directory_slots: u32_at(b, 60),
        })
    }

    /// Segment layout: records, then the FST, then the string heap, each part 8-aligned.
    pub fn fst_offset(&self) -> u64 {
        self.segment_offset + align8(self.record_count as u64 * RECORD_BYTES as u64)
    }

    pub fn heap_offset(&self) -> u64 {
        self.fst_offset() + align8(u64::from(self.fst_bytes))
    }

    pub fn directory_offset(&self) -> u64 {
        self.heap_offset() + align8(u64::from(self.heap_bytes))
    }

    pub fn segment_end(&self) -> u64 {
        self.segment_offset
            + segment_body_bytes(
                self.record_count,
                self.fst_bytes,
                self.heap_bytes,
                self.directory_slots,
            )
    }

    /// The segment file's name within `SEGMENTS_DIR`.
    pub fn segment_file_name(&self) -> String {
        segment_file_name(&self.number, self.segment_xxh3)
    }
}

/// Bytes of a segment body: records, FST and heap, each padded to 8, then the card directory.
/// The one place this layout's size is computed (insurer entries and the writer both ask).
pub fn segment_body_bytes(
    record_count: u32,
    fst_bytes: u32,
    heap_bytes: u32,
    directory_slots: u32,
) -> u64 {
    align8(u64::from(record_count) * RECORD_BYTES as u64)
        + align8(u64::from(fst_bytes))
        + align8(u64::from(heap_bytes))
        + u64::from(directory_slots) * DIRECTORY_SLOT_BYTES as u64
}

/// A segment file is named by its insurer and the xxh3 of its body: equal names mean equal
/// bytes, which is what lets generations share them by hard link.
pub fn segment_file_name(number: &InsurerNumber, body_xxh3: u64) -> String {
    format!("{}-{body_xxh3:016x}.seg", number.as_str())
}

/// The header of a segment file: which insurer's body follows, and its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub number: InsurerNumber,
    pub body_xxh3: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut b = [0u8; SEGMENT_HEADER_BYTES];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.number.to_key());
        b[24..32].copy_from_slice(&self.body_xxh3.to_le_bytes());
        b
    }

    pub fn decode(file: &[u8]) -> Result<SegmentHeader, FormatError> {
        if file.len() < SEGMENT_HEADER_BYTES || file[0..8] != SEGMENT_MAGIC {
            return Err(FormatError::Malformed(
                "a segment file lacks its magic bytes".into(),
            ));
        }
        let version = u32_at(file, 8);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let key: [u8; 8] = file[16..24].try_into().expect("8 bytes");
        let number = InsurerNumber::from_key(key).ok_or_else(|| {
            FormatError::Malformed("a segment file names an invalid insurer number".into())
        })?;
        Ok(SegmentHeader {
            number,
            body_xxh3: u64_at(file, 24),
        })
    }
}

/// Flags in byte 33 of a record.
pub const RECORD_HAS_PERSON: u8 = 1;

/// A member record in its fixed 48-byte form. Strings live in the segment's heap at
/// `heap_offset`, in the order symbol, number, name, name_kana.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    pub person: Option<PersonHash>,
    pub heap_offset: u32,
    pub symbol_bytes: u8,
    pub number_bytes: u8,
    pub name_bytes: u16,
    pub kana_bytes: u16,
    pub branch: Branch,
    pub sex: Sex,
    pub relationship: Relationship,
    pub copay_ratio: CopayRatio,
    pub reason_of_loss: Option<ReasonOfLoss>,
    pub limit_category: Option<LimitCategory>,
    pub birthdate: Date,
    pub qualification_date: Date,
    pub disqualification_date: Option<Date>,
    /// Line of the row in its snapshot file, so reports can point at it.
    pub line: u32,
}

// Byte offsets inside a record.
pub const REC_PERSON: usize = 0;
pub const REC_HEAP: usize = 16;
pub const REC_SYMBOL_LEN: usize = 20;
pub const REC_NUMBER_LEN: usize = 21;
pub const REC_NAME_LEN: usize = 22;
pub const REC_KANA_LEN: usize = 24;
pub const REC_BRANCH: usize = 26;
pub const REC_SEX: usize = 27;
pub const REC_RELATIONSHIP: usize = 28;
pub const REC_COPAY: usize = 29;
pub const REC_REASON: usize = 30;
pub const REC_LIMIT: usize = 31;
pub const REC_FLAGS: usize = 32;
pub const REC_LINE: usize = 33; // 3 bytes: line numbers up to 16,777,215
pub const REC_BIRTH: usize = 36;
pub const REC_QUAL: usize = 40;
pub const REC_DISQ: usize = 44;
/// Largest line number a record can carry (24 bits).
pub const MAX_LINE: u32 = (1 << 24) - 1;

impl RecordEntry {
    pub fn encode(&self) -> [u8; RECORD_BYTES] {
        let mut b = [0u8; RECORD_BYTES];
        if let Some(p) = self.person {
            b[REC_PERSON..REC_PERSON + 16].copy_from_slice(&p.0);
            b[REC_FLAGS] |= RECORD_HAS_PERSON;
        }
        b[REC_HEAP..REC_HEAP + 4].copy_from_slice(&self.heap_offset.to_le_bytes());
        b[REC_SYMBOL_LEN] = self.symbol_bytes;
        b[REC_NUMBER_LEN] = self.number_bytes;
        b[REC_NAME_LEN..REC_NAME_LEN + 2].copy_from_slice(&self.name_bytes.to_le_bytes());
        b[REC_KANA_LEN..REC_KANA_LEN + 2].copy_from_slice(&self.kana_bytes.to_le_bytes());
        b[REC_BRANCH] = self.branch.value();
        b[REC_SEX] = self.sex.code();
        b[REC_RELATIONSHIP] = self.relationship.code();
        b[REC_COPAY] = self.copay_ratio.percent();
        b[REC_REASON] = self.reason_of_loss.map_or(0, |r| r.code());
        b[REC_LIMIT] = self.limit_category.map_or(0, |l| l.code());
        let line = self.line.min(MAX_LINE).to_le_bytes();
        b[REC_LINE..REC_LINE + 3].copy_from_slice(&line[..3]);
        b[REC_BIRTH..REC_BIRTH + 4].copy_from_slice(&self.birthdate.days().to_le_bytes());
        b[REC_QUAL..REC_QUAL + 4].copy_from_slice(&self.qualification_date.days().to_le_bytes());
        let disq = self.disqualification_date.map_or(NO_DATE, Date::days);
        b[REC_DISQ..REC_DISQ + 4].copy_from_slice(&disq.to_le_bytes());
        b
    }

    /// Decodes and validates every code (pair assertion for the writer, and the slow path
    /// for tools; the query path reads single fields through `index::RecordView`).
    pub fn decode(b: &[u8]) -> Result<RecordEntry, FormatError> {
        let bad = |what: &str| FormatError::Malformed(format!("record has an invalid {what}"));
        let person = (b[REC_FLAGS] & RECORD_HAS_PERSON != 0)
            .then(|| PersonHash(b[REC_PERSON..REC_PERSON + 16].try_into().expect("16 bytes")));
        let opt_code = |code: u8| (code != 0).then_some(code);
        let disq = i32_at(b, REC_DISQ);
        Ok(RecordEntry {
            person,
            heap_offset: u32_at(b, REC_HEAP),
            symbol_bytes: b[REC_SYMBOL_LEN],
            number_bytes: b[REC_NUMBER_LEN],
            name_bytes: u16_at(b, REC_NAME_LEN),
            kana_bytes: u16_at(b, REC_KANA_LEN),
            branch: Branch::new(b[REC_BRANCH]).ok_or_else(|| bad("branch"))?,
            sex: Sex::from_code(b[REC_SEX]).ok_or_else(|| bad("sex"))?,
            relationship: Relationship::from_code(b[REC_RELATIONSHIP])
                .ok_or_else(|| bad("relationship"))?,
            copay_ratio: CopayRatio::new(b[REC_COPAY]).ok_or_else(|| bad("copay ratio"))?,
            reason_of_loss: match opt_code(b[REC_REASON]) {
                None => None,
                Some(c) => Some(ReasonOfLoss::from_code(c).ok_or_else(|| bad("reason of loss"))?),
            },
            limit_category: match opt_code(b[REC_LIMIT]) {
                None => None,
                Some(c) => Some(LimitCategory::from_code(c).ok_or_else(|| bad("limit category"))?),
            },
            line: u32::from_le_bytes([b[REC_LINE], b[REC_LINE + 1], b[REC_LINE + 2], 0]),
            birthdate: Date::from_days(i32_at(b, REC_BIRTH)),
            qualification_date: Date::from_days(i32_at(b, REC_QUAL)),
            disqualification_date: (disq != NO_DATE).then(|| Date::from_days(disq)),
        })
    }
}

/// Flags of a person entry.
pub const PERSON_IDENTITY_UNVERIFIED: u16 = 1;

/// One row of the person table, sorted by hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonEntry {
    pub hash: PersonHash,
    pub refs_start: u32,
    pub refs_count: u16,
    pub flags: u16,
}

impl PersonEntry {
    /// Whether the person's identity was verified: an unverified one is never answered.
    pub fn identity_verified(&self) -> bool {
        self.flags & PERSON_IDENTITY_UNVERIFIED == 0
    }

    pub fn encode(&self) -> [u8; PERSON_ENTRY_BYTES] {
        let mut b = [0u8; PERSON_ENTRY_BYTES];
        b[0..16].copy_from_slice(&self.hash.0);
        b[16..20].copy_from_slice(&self.refs_start.to_le_bytes());
        b[20..22].copy_from_slice(&self.refs_count.to_le_bytes());
        b[22..24].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> PersonEntry {
        PersonEntry {
            hash: PersonHash(b[0..16].try_into().expect("16 bytes")),
            refs_start: u32_at(b, 16),
            refs_count: u16_at(b, 20),
            flags: u16_at(b, 22),
        }
    }
}

/// A person's record: insurer index (high 32 bits) and record index in its segment.
pub fn encode_person_ref(insurer: u32, record: u32) -> u64 {
    (u64::from(insurer) << 32) | u64::from(record)
}

pub fn decode_person_ref(r: u64) -> (u32, u32) {
    ((r >> 32) as u32, r as u32)
}

/// Longest encoded card key: two parts of at most 20 characters of up to 4 UTF-8 bytes, each
/// behind a one-byte tag.
pub const MAX_CARD_KEY_BYTES: usize = 2 * (1 + 4 * 20);

/// FST key of a card within its insurer: the symbol, then the number, each encoded as one tag
/// byte and a body. An all-digit part (the usual case) is packed two digits to a byte, tag =
/// its digit count (1–20); any other part is its UTF-8 bytes, tag = 0x80 + byte length. Tags
/// make the key prefix-free, and packing halves the key, so a lookup walks half as many FST
/// nodes (each a likely cache miss in a large insurer). Returns the key length, or `None` if
/// a part is longer than the format allows.
pub fn card_key(symbol: &str, number: &str, out: &mut [u8; MAX_CARD_KEY_BYTES]) -> Option<usize> {
    let at = encode_key_part(symbol.as_bytes(), out, 0)?;
    encode_key_part(number.as_bytes(), out, at)
}

fn encode_key_part(part: &[u8], out: &mut [u8; MAX_CARD_KEY_BYTES], at: usize) -> Option<usize> {
    let digits = !part.is_empty() && part.len() <= 20 && part.iter().all(u8::is_ascii_digit);
    if digits {
        out[at] = part.len() as u8;
        for (i, pair) in part.chunks(2).enumerate() {
            let hi = pair[0] - b'0';
            let lo = pair.get(1).map_or(0xF, |d| d - b'0');
            out[at + 1 + i] = (hi << 4) | lo;
        }
        Some(at + 1 + part.len().div_ceil(2))
    } else {
        if part.len() > 4 * 20 || at + 1 + part.len() > MAX_CARD_KEY_BYTES {
            return None;
        }
        out[at] = 0x80 + part.len() as u8;
        out[at + 1..at + 1 + part.len()].copy_from_slice(part);
        Some(at + 1 + part.len())
    }
}

/// FST value: first record index (high 48 bits) and record count (low 16 bits).
/// Prefix bits of the person bucket directory for `persons` entries: about one person per
/// bucket (`floor(log2(persons))`, so buckets hold one or two on average).
pub fn person_bucket_bits(persons: u64) -> u32 {
    if persons < 2 {
        0
    } else {
        63 - persons.leading_zeros()
    }
}

/// The bucket of a hash: its first `bits` bits.
pub fn person_bucket(hash: &[u8; 16], bits: u32) -> usize {
    if bits == 0 {
        return 0;
    }
    (u64::from_be_bytes(hash[..8].try_into().expect("8 bytes")) >> (64 - bits)) as usize
}

/// The person bucket directory of a sorted persons section: the position of the first entry
/// of each bucket, and the entry count at the end (`2^bits + 1` values).
pub fn person_bucket_starts(hashes: impl Iterator<Item = [u8; 16]>, persons: u64) -> Vec<u32> {
    let bits = person_bucket_bits(persons);
    let mut starts = vec![0u32; (1usize << bits) + 1];
    for h in hashes {
        starts[person_bucket(&h, bits) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    starts
}

/// Finds `hash` in a persons section (entries of `PERSON_ENTRY_BYTES` sorted by their
/// leading 16-byte hash) through its bucket directory (`starts`, little-endian u32s) and
/// returns its position. Keyed hashes are uniform, so a bucket holds one or two entries: one
/// read of the directory, one of the table. Chosen by measurement over interpolation search
/// of the table and an FST of the hashes (`benches/person.rs`, perf/RESULTS.md).
pub fn find_person(table: &[u8], starts: &[u8], hash: &[u8; 16]) -> Option<usize> {
    let (start, end) = person_bucket_range(table, starts, hash)?;
    (start..end).find(|&i| &table[i * PERSON_ENTRY_BYTES..i * PERSON_ENTRY_BYTES + 16] == hash)
}

/// Where in the bucket directory `starts` the bucket of `hash` begins (byte offset).
pub fn person_bucket_offset(starts: &[u8], hash: &[u8; 16]) -> Option<usize> {
    let buckets = (starts.len() / 4).checked_sub(1)?;
    let bits = buckets.trailing_zeros();
    Some(person_bucket(hash, bits).min(buckets - 1) * 4)
}

/// The table positions `start..end` of the bucket of `hash` (clamped to the table).
pub fn person_bucket_range(table: &[u8], starts: &[u8], hash: &[u8; 16]) -> Option<(usize, usize)> {
    let n = table.len() / PERSON_ENTRY_BYTES;
    let at = person_bucket_offset(starts, hash)?;
    let start = (u32_at(starts, at) as usize).min(n);
    let end = (u32_at(starts, at + 4) as usize).min(n);
    Some((start, end))
}

/// Bytes of one card-directory slot: key length (0: empty), the key, zero-padded to
/// `DIRECTORY_KEY_MAX` bytes, then first record (u32) and record count (u16).
pub const DIRECTORY_SLOT_BYTES: usize = 24;
/// Longest card key the directory holds inline (an 8-digit symbol with an 8-digit number
/// takes 10 bytes; 17 also holds most kana and kanji symbols); longer keys are found through
/// the FST only.
pub const DIRECTORY_KEY_MAX: usize = DIRECTORY_SLOT_BYTES - 7;
const DIRECTORY_START: usize = 1 + DIRECTORY_KEY_MAX;
const DIRECTORY_COUNT: usize = DIRECTORY_START + 4;

/// Slots for `keys` directory keys: a load of at most 4/5 keeps linear probes short.
pub fn directory_slots_for(keys: usize) -> usize {
    if keys == 0 {
        0
    } else {
        keys + keys / 4 + 1
    }
}

/// The slot where probing for `key` starts, among `slots`.
pub fn directory_home(key: &[u8], slots: usize) -> usize {
    ((u128::from(xxh3(key)) * slots as u128) >> 64) as usize
}

/// Encodes one directory slot.
pub fn encode_directory_slot(key: &[u8], start: u32, count: u16) -> [u8; DIRECTORY_SLOT_BYTES] {
    assert!(!key.is_empty() && key.len() <= DIRECTORY_KEY_MAX);
    let mut b = [0u8; DIRECTORY_SLOT_BYTES];
    b[0] = key.len() as u8;
    b[1..1 + key.len()].copy_from_slice(key);
    b[DIRECTORY_START..DIRECTORY_COUNT].copy_from_slice(&start.to_le_bytes());
    b[DIRECTORY_COUNT..DIRECTORY_SLOT_BYTES].copy_from_slice(&count.to_le_bytes());
    b
}

/// Looks `key` up in a card directory (`slots` × 24 bytes): `(first record, count)`. At most
/// every slot is probed once, so even a corrupt directory ends.
pub fn directory_get(directory: &[u8], key: &[u8]) -> Option<(u32, u16)> {
    let slots = directory.len() / DIRECTORY_SLOT_BYTES;
    if slots == 0 || key.is_empty() || key.len() > DIRECTORY_KEY_MAX {
        return None;
    }
    let mut i = directory_home(key, slots);
    for _ in 0..slots {
        let slot = &directory[i * DIRECTORY_SLOT_BYTES..(i + 1) * DIRECTORY_SLOT_BYTES];
        let len = slot[0] as usize;
        if len == 0 {
            return None;
        }
        if len == key.len() && &slot[1..1 + len] == key {
            return Some((u32_at(slot, DIRECTORY_START), u16_at(slot, DIRECTORY_COUNT)));
        }
        i += 1;
        if i == slots {
            i = 0;
        }
    }
    None
}

pub fn encode_card_value(start: u32, count: u16) -> u64 {
    (u64::from(start) << 16) | u64::from(count)
}

pub fn decode_card_value(v: u64) -> (u32, u16) {
    ((v >> 16) as u32, v as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = RecordEntry {
            person: Some(PersonHash([9; 16])),
            heap_offset: 123_456,
            symbol_bytes: 2,
            number_bytes: 4,
            name_bytes: 13,
            kana_bytes: 21,
            branch: Branch::new(1).unwrap(),
            sex: Sex::Female,
            relationship: Relationship::Dependant,
            copay_ratio: CopayRatio::new(30).unwrap(),
            reason_of_loss: Some(ReasonOfLoss::Other),
            limit_category: Some(LimitCategory::B10),
            birthdate: Date::parse("1980-01-23").unwrap(),
            qualification_date: Date::parse("2015-04-01").unwrap(),
            disqualification_date: None,
            line: 1_234_567,
        };
        assert_eq!(RecordEntry::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn header_checks() {
        let h = Header {
            file_bytes: 128,
            generation_id: "g20261124-014030".into(),
            built_on: Date::parse("2026-11-24").unwrap(),
            insurer_count: 3,
            record_count: 4,
            person_count: 5,
            person_key_fingerprint: 6,
            section_count: 5,
            section_table_offset: 7,
            section_table_xxh3: 8,
        };
        let b = h.encode();
        assert_eq!(Header::decode(&b), Ok(h.clone()));
        assert_eq!(Header::decode_fields(&b), Ok(h));
        let mut flipped = b;
        flipped[70] ^= 1;
        assert_eq!(
            Header::decode(&flipped),
            Err(FormatError::Checksum {
                what: "header".into()
            })
        );
        let mut version = b;
        version[8] = 9;
        assert!(matches!(
            Header::decode(&version),
            Err(FormatError::UnsupportedVersion { found: 9, .. })
        ));
        assert_eq!(
            Header::decode(&b[..100]),
            Err(FormatError::Length {
                expected: 128,
                actual: 100
            })
        );
        assert_eq!(
            Header::decode(b"not an index at all, not at all, not at all"),
            Err(FormatError::BadMagic)
        );
    }

    #[test]
    fn person_buckets_find_every_person_and_nothing_else() {
        let starts_of = |hashes: &[[u8; 16]]| -> Vec<u8> {
            person_bucket_starts(hashes.iter().copied(), hashes.len() as u64)
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect()
        };
        let table_of = |hashes: &[[u8; 16]]| -> Vec<u8> {
            hashes
                .iter()
                .flat_map(|h| {
                    let mut e = [0u8; PERSON_ENTRY_BYTES];
                    e[..16].copy_from_slice(h);
                    e
                })
                .collect()
        };
        for n in [0usize, 1, 2, 3, 100, 1000] {
            // Clustered hashes (many in one bucket) as well as spread ones.
            let mut hashes: Vec<[u8; 16]> = (0..n)
                .map(|i| {
                    let mut h = [0u8; 16];
                    h[0] = (i * 7 % 5) as u8;
                    h[1..9].copy_from_slice(
                        &(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes(),
                    );
                    h
                })
                .collect();
            hashes.sort_unstable();
            hashes.dedup();
            let (table, starts) = (table_of(&hashes), starts_of(&hashes));
            assert_eq!(
                starts.len(),
                ((1usize << person_bucket_bits(hashes.len() as u64)) + 1) * 4
            );
            for (i, h) in hashes.iter().enumerate() {
                assert_eq!(find_person(&table, &starts, h), Some(i), "n {n}");
            }
            assert_eq!(find_person(&table, &starts, &[0xFF; 16]), None);
            assert_eq!(find_person(&table, &starts, &[0x01; 16]), None);
        }
        // A directory pointing past the table is clamped, not trusted.
        assert_eq!(find_person(&[], &[0, 0, 0, 0, 9, 0, 0, 0], &[0; 16]), None);
        assert_eq!(find_person(&[], &[], &[0; 16]), None);
    }

    #[test]
    fn card_keys_are_packed_and_prefix_free() {
        let key = |s: &str, n: &str| {
            let mut buf = [0u8; MAX_CARD_KEY_BYTES];
            let len = card_key(s, n, &mut buf).unwrap();
            buf[..len].to_vec()
        };
        assert_eq!(key("12", "3456"), vec![2, 0x12, 4, 0x34, 0x56]);
        assert_eq!(key("", "7"), vec![0x80, 1, 0x7F]);
        assert_eq!(key("AB", "1"), vec![0x82, b'A', b'B', 1, 0x1F]);
        // Different splits of the same text never give the same key.
        assert_ne!(key("1", "23"), key("12", "3"));
        assert_ne!(key("", "123"), key("1", "23"));
        let long = "9".repeat(20);
        assert_eq!(key(&long, &long).len(), 22);
        assert!(card_key(
            &"あ".repeat(20),
            &"い".repeat(20),
            &mut [0; MAX_CARD_KEY_BYTES]
        )
        .is_some());
    }

    #[test]
    fn packed_values() {
        assert_eq!(
            decode_card_value(encode_card_value(4_000_000_000, 65_535)),
            (4_000_000_000, 65_535)
        );
        assert_eq!(decode_person_ref(encode_person_ref(3_400, 77)), (3_400, 77));
    }
}
