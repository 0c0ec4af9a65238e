//! A segment file's place in the insurer table, its body's layout and name, its header.

use super::*;
use crate::domain::{Date, InsurerNumber};

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
        b[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
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
        if version != SEGMENT_FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                expected: SEGMENT_FORMAT_VERSION,
            });
        }
        // Reserved bytes are zero as written: no checksum covers the header, so a byte that
        // changed there is caught here or not at all.
        if u32_at(file, 12) != 0 {
            return Err(FormatError::Malformed(
                "a segment file's reserved header bytes 12..16 are not zero".into(),
            ));
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
