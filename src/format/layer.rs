//! A change generation's layer file (`layers/<seq>-<xxh3>.shl`): the main file's container
//! (header, sections, section table) under its own magic, holding only what a change
//! generation changed: the delta segments' insurer entries, the touched persons and their
//! refs, and two sections of its own, the layer's link to its base and parent
//! ([`LayerLink`]) and the cards it removed ([`encode_tombstones`]).

use super::*;

/// Magic bytes of a layer file.
pub const LAYER_MAGIC: [u8; 8] = *b"SHKLAYR\x1a";
/// Where a generation keeps its layer files, relative to its directory.
pub const LAYERS_DIR: &str = "layers";
/// The layer link section's length.
pub const LAYER_LINK_BYTES: usize = 88;
/// Most layers one generation may stack (the sequence is written with four digits).
pub const MAX_LAYERS: u32 = 9999;

/// Where a layer sits: on which base (generation id and the base main file's header
/// checksum), after which generation, at which place, and how many segments (base insurers
/// and earlier layers' delta segments) come before its own in the global numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerLink {
    pub base_generation: String,
    pub base_header_xxh3: u64,
    pub parent_generation: String,
    /// 1 for the first layer over a base.
    pub sequence: u32,
    pub segments_before: u32,
}

fn put_id(b: &mut [u8], id: &str) {
    assert!(
        id.len() <= GENERATION_ID_BYTES && id.is_ascii(),
        "generation id"
    );
    b[..id.len()].copy_from_slice(id.as_bytes());
}

fn get_id(b: &[u8], what: &str) -> Result<String, FormatError> {
    let len = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let id = std::str::from_utf8(&b[..len])
        .ok()
        .filter(|s| s.is_ascii() && !s.is_empty())
        .ok_or_else(|| FormatError::Malformed(format!("layer link: {what} is not an id")))?;
    Ok(id.to_owned())
}

impl LayerLink {
    pub fn encode(&self) -> [u8; LAYER_LINK_BYTES] {
        let mut b = [0u8; LAYER_LINK_BYTES];
        put_id(&mut b[0..32], &self.base_generation);
        b[32..40].copy_from_slice(&self.base_header_xxh3.to_le_bytes());
        put_id(&mut b[40..72], &self.parent_generation);
        b[72..76].copy_from_slice(&self.sequence.to_le_bytes());
        b[76..80].copy_from_slice(&self.segments_before.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<LayerLink, FormatError> {
        if b.len() != LAYER_LINK_BYTES {
            return Err(FormatError::Malformed(format!(
                "layer link section is {} bytes, not {LAYER_LINK_BYTES}",
                b.len()
            )));
        }
        Ok(LayerLink {
            base_generation: get_id(&b[0..32], "base generation")?,
            base_header_xxh3: u64_at(b, 32),
            parent_generation: get_id(&b[40..72], "parent generation")?,
            sequence: u32_at(b, 72),
            segments_before: u32_at(b, 76),
        })
    }
}

/// A card a layer removed: (insurer, card key).
pub type Tombstone = (InsurerNumber, Vec<u8>);

/// The card tombstones section: per card, the insurer number (8 bytes, as in the insurer
/// table), the key's length (u8) and the key, back to back.
pub fn encode_tombstones(cards: &[Tombstone]) -> Vec<u8> {
    let mut out = Vec::new();
    for (insurer, key) in cards {
        assert!(key.len() <= MAX_CARD_KEY_BYTES, "a card key");
        out.extend_from_slice(&insurer.to_key());
        out.push(key.len() as u8);
        out.extend_from_slice(key);
    }
    out
}

/// Reads a card tombstones section, refusing an entry cut short, an invalid insurer number
/// or a key of no card's length.
pub fn decode_tombstones(b: &[u8]) -> Result<Vec<Tombstone>, FormatError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let bad = |why: &str| FormatError::Malformed(format!("card tombstone at byte {at}: {why}"));
        let head = b.get(at..at + 9).ok_or_else(|| bad("cut short"))?;
        let number = InsurerNumber::from_key(head[..8].try_into().expect("8 bytes"))
            .ok_or_else(|| bad("invalid insurer number"))?;
        let len = head[8] as usize;
        if len == 0 || len > MAX_CARD_KEY_BYTES {
            return Err(bad("key length out of range"));
        }
        let key = b
            .get(at + 9..at + 9 + len)
            .ok_or_else(|| bad("key cut short"))?;
        out.push((number, key.to_vec()));
        at += 9 + len;
    }
    Ok(out)
}

/// A layer file's name: its place in the stack and its header's checksum (which covers the
/// section table, so every byte), like a segment file's, so generations share it by hard link.
pub fn layer_file_name(sequence: u32, header_xxh3: u64) -> String {
    format!("{sequence:04}-{header_xxh3:016x}.shl")
}

/// The sequence a layer file's name gives, if it is a layer file's name.
pub fn layer_sequence_of(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".shl")?;
    let (seq, hash) = stem.split_once('-')?;
    (seq.len() == 4 && hash.len() == 16 && hash.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| seq.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_tombstones_read_back() {
        let link = LayerLink {
            base_generation: "20261207T000000Z-ab".into(),
            base_header_xxh3: 7,
            parent_generation: "20261207T010000Z-cd".into(),
            sequence: 3,
            segments_before: 12,
        };
        assert_eq!(LayerLink::decode(&link.encode()), Ok(link));
        let n = InsurerNumber::parse("06460026").unwrap();
        let cards = vec![(n, vec![2, 0x12, 4, 0x34, 0x56]), (n, vec![0x81, b'A'])];
        assert_eq!(decode_tombstones(&encode_tombstones(&cards)), Ok(cards));
        for cut in [
            &[0u8; 5][..],
            &encode_tombstones(&[(n, vec![1, 2, 3])])[..11],
        ] {
            assert!(decode_tombstones(cut).is_err());
        }
        assert_eq!(layer_sequence_of("0012-0a1b2c3d4e5f6a7b.shl"), Some(12));
        assert_eq!(layer_sequence_of("12-ab.shl"), None);
    }
}
