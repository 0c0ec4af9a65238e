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

mod card;
mod header;
mod kohi;
mod layer;
mod person;
mod record;
mod segment;
pub mod writer;

pub use card::*;
pub use header::*;
pub use kohi::*;
pub use layer::*;
pub use person::*;
pub use record::*;
pub use segment::*;

use crate::domain::{Date, InsurerNumber, PersonHash};
use thiserror::Error;

pub const MAGIC: [u8; 8] = *b"SHIKAKU\x1a";
/// The main file's format version (FORMAT.md's version history).
pub const FORMAT_VERSION: u32 = 5;
/// The segment files' format version: their layout did not change in version 5, which added
/// public-expense certificates to the main file.
pub const SEGMENT_FORMAT_VERSION: u32 = 4;
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
    Payers = 7,
    Certificates = 8,
    CertificateStrings = 9,
    CertificatePersons = 10,
    /// A layer file's link to its base and parent (layer files only).
    LayerLink = 11,
    /// The cards a layer removed (layer files only).
    Tombstones = 12,
}

impl SectionKind {
    /// A main file's sections, in file order: a layer file's but its own two.
    pub const ALL: &'static [SectionKind] = SectionKind::LAYER.split_at(9).0;

    /// A layer file's sections: a main file's, then its own two.
    pub const LAYER: [SectionKind; 11] = [
        SectionKind::Insurers,
        SectionKind::Strings,
        SectionKind::Persons,
        SectionKind::PersonRefs,
        SectionKind::PersonBuckets,
        SectionKind::Payers,
        SectionKind::Certificates,
        SectionKind::CertificateStrings,
        SectionKind::CertificatePersons,
        SectionKind::LayerLink,
        SectionKind::Tombstones,
    ];

    /// The kind of a section-table entry of a main file; `None` for a kind this version does
    /// not know (which the reader refuses: it cannot tell what such a section would mean).
    pub fn from_code(code: u32) -> Option<SectionKind> {
        SectionKind::from_code_in(code, SectionKind::ALL)
    }

    /// The kind of a section-table entry among `kinds` (a main file's or a layer file's).
    pub fn from_code_in(code: u32, kinds: &[SectionKind]) -> Option<SectionKind> {
        kinds.iter().copied().find(|k| *k as u32 == code)
    }

    /// Position in [`SectionKind::LAYER`] (and so in [`SectionKind::ALL`] for its kinds).
    pub fn position(self) -> usize {
        SectionKind::LAYER
            .iter()
            .position(|k| *k == self)
            .expect("every kind is in LAYER")
    }

    pub fn name(self) -> &'static str {
        match self {
            SectionKind::Insurers => "insurers",
            SectionKind::Strings => "strings",
            SectionKind::Persons => "persons",
            SectionKind::PersonRefs => "person refs",
            SectionKind::PersonBuckets => "person buckets",
            SectionKind::Payers => "payers",
            SectionKind::Certificates => "certificates",
            SectionKind::CertificateStrings => "certificate strings",
            SectionKind::CertificatePersons => "certificate persons",
            SectionKind::LayerLink => "layer link",
            SectionKind::Tombstones => "card tombstones",
        }
    }
}

/// What can be wrong with an index file. Each message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    #[error("not a shikaku index (bad magic bytes); point --data at a directory made by `shikaku build`")]
    BadMagic,
    #[error("index format version {found}, this shikaku reads version {expected}; rebuild the index with this shikaku (`shikaku build --full`)")]
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
