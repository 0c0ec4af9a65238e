//! The person table: entries sorted by keyed hash, their record references, and the bucket
//! directory that finds a hash in one read.

use super::*;
use crate::domain::PersonHash;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
