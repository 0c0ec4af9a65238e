//! Card keys (the FST's keys within an insurer) and the card directory, a hash table of the
//! short keys beside the FST.

use super::*;

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
            return Some(directory_slot_value(slot));
        }
        i += 1;
        if i == slots {
            i = 0;
        }
    }
    None
}

/// A directory slot's first record and record count.
pub fn directory_slot_value(slot: &[u8]) -> (u32, u16) {
    (u32_at(slot, DIRECTORY_START), u16_at(slot, DIRECTORY_COUNT))
}

/// FST value: first record index (high 48 bits) and record count (low 16 bits).
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
