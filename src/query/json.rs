//! JSON string escaping for the hand-written answer writer.

/// Writes `s` as a JSON string literal (RFC 8259 escapes; non-ASCII passes through as UTF-8).
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    write_json_utf8(out, s.as_bytes());
}

/// [`write_json_str`] for bytes the caller knows to be UTF-8 (text of a verified index).
pub fn write_json_utf8(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Names and codes almost never need escaping: skip the clean prefix eight bytes at a
    // time, then go byte by byte from the first word that may hold a byte to escape.
    let mut i = clean_prefix(bytes);
    if i == bytes.len() {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The length of the longest prefix of whole 8-byte words (and of the shorter last piece)
/// none of whose bytes needs escaping (a control character, `"` or `\\`), tested a word at a
/// time: `bytes.len()` for clean text, which is then copied in one piece.
fn clean_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Some byte of `w` is zero: exact, the borrow can only run from a zero byte upward.
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    // Some byte of `w` is below 0x20 (same trick, valid for a bound up to 0x80).
    let has_control = |w: u64| w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0;
    let needs_escape = |word: [u8; 8]| {
        let w = u64::from_ne_bytes(word);
        has_control(w)
            || has_zero(w ^ (ONES * u64::from(b'"')))
            || has_zero(w ^ (ONES * u64::from(b'\\')))
    };
    let mut clean = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if needs_escape(word) {
            return clean;
        }
        clean += 8;
    }
    // The last piece, padded with a byte that needs no escape.
    let rest = chunks.remainder();
    let mut word = [b'a'; 8];
    word[..rest.len()].copy_from_slice(rest);
    if !needs_escape(word) {
        clean += rest.len();
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_match_serde_json() {
        for s in [
            "",
            "山田 太郎",
            "a\"b\\c",
            "line\nbreak\t\r",
            "\u{1}\u{1f}",
            "ヤマダ タロウ",
            "0123456789abcdef\u{7f}\u{80}ü",
            "long and clean, then \"quoted\" after the first words",
            "eight by\\",
            "\u{1f}seven.",
            "1234567\u{0}",
        ] {
            let mut out = Vec::new();
            write_json_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap()
            );
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    /// The byte-at-a-time writer the word-at-a-time scan must agree with (control characters
    /// other than \n, \r and \t as \u00XX, which serde_json writes differently for \b and \f).
    fn reference(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest! {
        /// Whatever falls in or across the 8-byte words, the escapes are the reference's.
        #[test]
        fn any_string_escapes_like_the_reference(chars in prop::collection::vec(
            prop_oneof![any::<char>(), (0u8..0x20).prop_map(char::from), Just('"'), Just('\\'), Just('a')],
            0..40,
        )) {
            let s: String = chars.into_iter().collect();
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            prop_assert_eq!(String::from_utf8(out).unwrap(), reference(&s));
        }
    }
}
