//! The main file's fixed header and its section table.

use super::*;
use crate::domain::Date;

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
    /// Public-expense payers and certificates (version 5).
    pub payer_count: u32,
    pub certificate_count: u64,
    pub section_count: u32,
    pub section_table_offset: u64,
    pub section_table_xxh3: u64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        self.encode_as(&MAGIC)
    }

    /// The header under `magic`: a main file's ([`MAGIC`]) or a layer file's
    /// ([`LAYER_MAGIC`]).
    pub fn encode_as(&self, magic: &[u8; 8]) -> [u8; HEADER_BYTES] {
        assert!(
            self.generation_id.len() <= GENERATION_ID_BYTES,
            "generation id too long"
        );
        assert!(self.generation_id.is_ascii(), "generation id must be ASCII");
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(magic);
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
        b[92..96].copy_from_slice(&self.payer_count.to_le_bytes());
        b[96..104].copy_from_slice(&self.section_table_offset.to_le_bytes());
        b[104..112].copy_from_slice(&self.section_table_xxh3.to_le_bytes());
        b[112..120].copy_from_slice(&self.certificate_count.to_le_bytes());
        let sum = xxh3(&b[..120]);
        b[120..128].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Checks magic, version, header checksum and file length before reading any field.
    pub fn decode(file: &[u8]) -> Result<Header, FormatError> {
        Header::decode_as(file, &MAGIC)
    }

    /// [`Header::decode`] of a file under `magic` (a layer file's: [`LAYER_MAGIC`]).
    pub fn decode_as(file: &[u8], magic: &[u8; 8]) -> Result<Header, FormatError> {
        if file.len() < HEADER_BYTES {
            if file.len() >= 8 && file[..8] != *magic {
                return Err(FormatError::BadMagic);
            }
            return Err(FormatError::Length {
                expected: HEADER_BYTES as u64,
                actual: file.len() as u64,
            });
        }
        let header = Header::decode_fields_as(&file[..HEADER_BYTES], magic)?;
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
        Header::decode_fields_as(b, &MAGIC)
    }

    pub fn decode_fields_as(b: &[u8], magic: &[u8; 8]) -> Result<Header, FormatError> {
        if b.len() != HEADER_BYTES {
            return Err(FormatError::Length {
                expected: HEADER_BYTES as u64,
                actual: b.len() as u64,
            });
        }
        if b[0..8] != *magic {
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
            payer_count: u32_at(b, 92),
            certificate_count: u64_at(b, 112),
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

#[cfg(test)]
mod tests {
    use super::*;

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
            payer_count: 9,
            certificate_count: 10,
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
}
