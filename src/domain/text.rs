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
    let folded: String = trimmed.nfkc().collect();
    let trimmed_again = folded.trim_matches(is_space);
    if trimmed_again.len() == folded.len() {
        Cow::Owned(folded)
    } else {
        Cow::Owned(trimmed_again.to_owned())
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
