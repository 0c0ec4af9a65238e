//! Input text folding shared by every identifier and date parser (docs/api.md: identifiers, dates).

use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// Folds full-width forms to ASCII (NFKC) and trims white space at both ends, including the
/// ideographic space U+3000. ASCII input, the common case on the query path, is only trimmed
/// and never allocates.
pub fn fold(s: &str) -> Cow<'_, str> {
    let trimmed = trim_space(s);
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

/// `s` without [`is_space`] characters at either end. Most inputs have none: two byte tests
/// spare them the character-by-character trim (a few % of a query's parsing).
pub fn trim_space(s: &str) -> &str {
    let plain = |b: u8| b > b' ' && b < 0x7f;
    match s.as_bytes() {
        [first, .., last] if plain(*first) && plain(*last) => s,
        [only] if plain(*only) => s,
        _ => s.trim_matches(is_space),
    }
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

/// The Luhn check digit of docs/api.md#insurer-number over `digits` (ASCII): from the rightmost digit leftwards,
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

/// Quotes a raw input value for an error or a report (Debug-quoted, at most 40 characters): runs of 12 or more digits are masked to their last four
/// (an individual number in the wrong column must not leak), then long values are cut.
pub fn quote_raw(raw: &str) -> String {
    const MAX_CHARS: usize = 40;
    let masked = mask_digit_runs(raw);
    let mut shown: String = masked.chars().take(MAX_CHARS).collect();
    if masked.chars().nth(MAX_CHARS).is_some() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// Masks every run of 12 or more digits (ASCII or full-width) but its last four, as docs/api.md#individual-number
/// shows an individual number, whatever field or message it strayed into. A run may hold
/// single separators between its digits (`1234-5678-9018`, `1234 5678 9018`), as people write
/// the number; they are kept.
pub fn mask_digit_runs(raw: &str) -> Cow<'_, str> {
    const LONGEST_CLEAR_RUN: usize = 11;
    // A run to mask has 12 digits of a byte or more each: shorter text has none (most card
    // fields and receipt numbers, masked on every row and audit line).
    if raw.len() <= LONGEST_CLEAR_RUN {
        return Cow::Borrowed(raw);
    }
    let is_digit = |c: char| c.is_ascii_digit() || ('０'..='９').contains(&c);
    let is_separator = |c: char| matches!(c, '-' | ' ' | '－' | '‐' | '−' | '　');
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len());
    let mut changed = false;
    let mut i = 0;
    while i < chars.len() {
        if !is_digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run: digits, and single separators each followed by a digit.
        let mut end = i + 1;
        while end < chars.len() {
            if is_digit(chars[end]) {
                end += 1;
            } else if is_separator(chars[end]) && chars.get(end + 1).is_some_and(|&c| is_digit(c)) {
                end += 2;
            } else {
                break;
            }
        }
        let run = &chars[i..end];
        if is_generation_id(&chars[..i], run)
            || is_change_file_name(&chars[..i], run, &chars[end..])
        {
            out.extend(run);
            i = end;
            continue;
        }
        let digits = run.iter().filter(|&&c| is_digit(c)).count();
        let mut clear = if digits > LONGEST_CLEAR_RUN {
            changed = true;
            4
        } else {
            digits
        };
        // Digits are shown from the right: the last `clear` of them.
        let mut shown: Vec<char> = run
            .iter()
            .rev()
            .map(|&c| {
                if !is_digit(c) {
                    c
                } else if clear > 0 {
                    clear -= 1;
                    c
                } else {
                    '*'
                }
            })
            .collect();
        shown.reverse();
        out.extend(shown);
        i = end;
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    }
}

/// Whether the digit run `run`, after the text `before`, is the tail of a generation id
/// (`gYYYYMMDD-HHMMSS-mmm`, as the build names them): its 17 digits are a time the program
/// wrote, not an individual number, and an error naming a generation must stay readable. The
/// date and time must be plausible, so only that shape is let through.
fn is_generation_id(before: &[char], run: &[char]) -> bool {
    let starts_word = match before {
        [] => false,
        [.., prev_prev, 'g'] => !prev_prev.is_alphanumeric(),
        [_] => before == ['g'],
        _ => false,
    };
    starts_word
        && run.len() == 19
        && run[15] == '-'
        && is_time_stamp(&run[..15])
        && number_at(run, 16, 3).is_some()
}

/// `YYYYMMDD-HHMMSS` (ASCII digits) with a plausible date and time: the shape of the time
/// stamps the program and the delivery write into names.
fn is_time_stamp(run: &[char]) -> bool {
    if run.len() != 15 || run[8] != '-' {
        return false;
    }
    let field = |from: usize, len: usize| number_at(run, from, len);
    matches!(
        (
            field(0, 4),
            field(4, 2),
            field(6, 2),
            field(9, 2),
            field(11, 2),
            field(13, 2),
        ),
        (
            Some(2000..=2099),
            Some(1..=12),
            Some(1..=31),
            Some(0..=23),
            Some(0..=59),
            Some(0..=60),
        )
    )
}

/// The ASCII digits `run[from..from + len]` as a number.
fn number_at(run: &[char], from: usize, len: usize) -> Option<u32> {
    run.get(from..from + len)?.iter().try_fold(0u32, |n, c| {
        c.to_digit(10)
            .filter(|_| c.is_ascii_digit())
            .map(|d| n * 10 + d)
    })
}

/// Whether the digit run `run`, between `before` and `after`, is a change file's name
/// (`changes/YYYYMMDD-hhmmss.csv`, docs/delivery.md#change-files): a time of registration,
/// not an individual number, and a report naming the file must stay readable. Only that
/// shape, right after `changes/` and followed by `.csv`, is let through, so text typed
/// elsewhere (a query, a claims file) does not pass 12 digits through it by chance.
fn is_change_file_name(before: &[char], run: &[char], after: &[char]) -> bool {
    const DIR: [char; 8] = ['c', 'h', 'a', 'n', 'g', 'e', 's', '/'];
    let csv: Vec<char> = after.iter().take(4).map(char::to_ascii_lowercase).collect();
    before.ends_with(&DIR) && csv == ['.', 'c', 's', 'v'] && is_time_stamp(run)
}

/// Appends `n` in decimal ASCII digits (RESP lengths, HTTP headers, the load generator's
/// commands): without `format!`, so the hot paths allocate nothing.
#[inline]
pub fn write_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_masks_long_digit_runs() {
        let check = |raw: &str, expected: &str| assert_eq!(quote_raw(raw), expected, "{raw:?}");
        check("12345678901", "\"12345678901\"");
        check("123456789018", "\"********9018\"");
        check("No.１２３４５６７８９０１８x", "\"No.********９０１８x\"");
        // Regression: written with separators, the number was quoted in clear.
        check("1234-5678-9018", "\"****-****-9018\"");
        check("123456 789018", "\"****** **9018\"");
        check(
            "１２３４　５６７８　９０１８",
            "\"****\\u{3000}****\\u{3000}９０１８\"",
        );
        check("tel 03-1234-5678", "\"tel 03-1234-5678\"");
        check("2026-11-24 12", "\"2026-11-24 12\"");
        check("1-2-3-4-5-6-7-8-9-0-1-8", "\"*-*-*-*-*-*-*-*-9-0-1-8\"");
        check("a\"b\nc", "\"a\\\"b\\nc\"");
        // A generation id is the program's own time stamp, and stays readable; the same
        // digits in another shape are masked.
        check("g20261203-123456-000", "\"g20261203-123456-000\"");
        check("in g20261203-123456-000.", "\"in g20261203-123456-000.\"");
        check("x20261203-123456-000", "\"x********-*****6-000\"");
        check("g20261203-123456-0001", "\"g********-******-0001\"");
        check("g20261303-123456-000", "\"g********-*****6-000\"");
        check("g123456789012", "\"g********9012\"");
        // A change file's name is its time of registration, and stays readable; the same
        // digits elsewhere, or in another shape, are masked.
        check(
            "131045/changes/20260401-101500.csv",
            "\"131045/changes/20260401-101500.csv\"",
        );
        check(
            "changes/20260401-101500.CSV 3",
            "\"changes/20260401-101500.CSV 3\"",
        );
        check("20260401-101500.csv", "\"********-**1500.csv\"");
        check("/20260401-101500.csv", "\"/********-**1500.csv\"");
        check(
            "changes/x20260401-101500.csv",
            "\"changes/x********-**1500.csv\"",
        );
        check(
            "changes/20260401-101500.txt",
            "\"changes/********-**1500.txt\"",
        );
        check(
            "changes/20261301-101500.csv",
            "\"changes/********-**1500.csv\"",
        );
        check(
            "changes/2026041-1015001.csv",
            "\"changes/*******-***5001.csv\"",
        );
        check(&"x".repeat(50), &format!("\"{}…\"", "x".repeat(40)));
    }

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
