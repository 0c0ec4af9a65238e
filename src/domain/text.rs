//! Input text folding shared by every identifier and date parser (SPEC 1.1, 1.2, 2).

use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// Folds full-width forms to ASCII (NFKC) and trims white space at both ends, including the
/// ideographic space U+3000. ASCII input, the common case on the query path, is only trimmed
/// and never allocates.
pub fn fold(s: &str) -> Cow<'_, str> {
    let trimmed = s.trim_matches(is_space);
    if trimmed.is_ascii() {
        return Cow::Borrowed(trimmed);
    }
    if trimmed
        .chars()
        .all(|c| c.is_ascii() || wide_ascii(c).is_some())
    {
        // Full-width digits and letters only: NFKC maps each to its ASCII form, and the ends
        // are already trimmed (U+3000 is a space), so fold them without the normalizer.
        return Cow::Owned(
            trimmed
                .chars()
                .map(|c| wide_ascii(c).unwrap_or(c))
                .collect(),
        );
    }
    let folded: String = trimmed.nfkc().collect();
    let trimmed_again = folded.trim_matches(is_space);
    if trimmed_again.len() == folded.len() {
        Cow::Owned(folded)
    } else {
        Cow::Owned(trimmed_again.to_owned())
    }
}

/// The ASCII character NFKC maps `c` to when `c` is a full-width form of one (U+FF01–U+FF5E)
/// or the ideographic space (U+3000, a space); NFKC is slow per character, these are common
/// in text typed with a Japanese input method.
pub fn wide_ascii(c: char) -> Option<char> {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        '\u{3000}' => Some(' '),
        _ => None,
    }
}

/// White space as the snapshots and clinics' software produce it: ASCII blanks, the
/// ideographic space, and anything else Unicode calls white space.
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{3000}'
}

/// True when `s` is non-empty and made of ASCII digits only.
pub fn is_ascii_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Folds `s` and requires the result to be ASCII digits; returns the digits.
pub fn digits(s: &str) -> Option<Cow<'_, str>> {
    let f = fold(s);
    if is_ascii_digits(&f) {
        Some(f)
    } else {
        None
    }
}

/// The Luhn check digit of SPEC 1.1 over `digits` (ASCII): from the rightmost digit leftwards,
/// multiply alternately by 2 and 1, add up the digits of the products.
pub fn luhn_check_digit(digits: &[u8]) -> u8 {
    debug_assert!(digits.iter().all(u8::is_ascii_digit));
    let mut sum = 0u32;
    for (i, &b) in digits.iter().rev().enumerate() {
        let d = u32::from(b - b'0');
        let p = if i % 2 == 0 { d * 2 } else { d };
        sum += p / 10 + p % 10;
    }
    ((10 - sum % 10) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_examples_from_spec() {
        for (body, check) in [("3312001", 5), ("13104", 5), ("011011371", 9)] {
            assert_eq!(luhn_check_digit(body.as_bytes()), check, "{body}");
        }
    }

    proptest::proptest! {
        /// The full-width shortcut is NFKC, trimmed, also next to characters that take the
        /// general path (half-width kana, a combining sound mark, a compatibility kanji).
        #[test]
        fn fold_is_nfkc_trimmed(s in "[0-9A-Za-z ０-９Ａ-Ｚａ-ｚ－　\t/.ｱﾞ\u{3099}\u{F900}]{0,16}") {
            let nfkc: String = s.nfkc().collect();
            let folded = fold(&s);
            proptest::prop_assert_eq!(folded.as_ref(), nfkc.trim_matches(is_space));
        }
    }

    #[test]
    fn wide_ascii_is_nfkc() {
        for c in ('\u{FF01}'..='\u{FF5E}').chain(['\u{3000}']) {
            let nfkc: String = c.to_string().nfkc().collect();
            assert_eq!(wide_ascii(c).map(String::from), Some(nfkc), "{c:?}");
        }
    }

    #[test]
    fn fold_cases() {
        let check = |input: &str, expected: &str| assert_eq!(fold(input), expected, "{input:?}");
        check("  131045", "131045");
        check("１３１０４５", "131045");
        check("\u{3000}ＡＢ１２\u{3000}", "AB12");
        check("ｱｲｳ", "アイウ");
        check("", "");
    }
}
