//! Identifiers of docs/api.md#identifiers: insurer number, card symbol/number/branch, individual number,
//! institution code, and the keyed hash that stands in for an individual number everywhere.

use super::text::{self, luhn_check_digit};
use std::fmt;
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("must be {0} digits")]
    Length(&'static str),
    #[error("must be digits only")]
    NotDigits,
    #[error("bad check digit")]
    CheckDigit,
    #[error("is empty")]
    Empty,
    #[error("longer than {0} characters")]
    TooLong(usize),
    #[error("has a character that is not a digit, letter, kana, kanji or hyphen")]
    BadCharacter,
}

/// 保険者番号: 8 digits (法別番号 + 都道府県 + 保険者別番号 + 検証番号), or 6 for 市町村国保 and
/// 国保組合. Stored as its ASCII digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InsurerNumber {
    digits: [u8; 8],
    len: u8,
}

impl InsurerNumber {
    /// Folds full-width digits and surrounding blanks (the real system pads 6-digit numbers
    /// with leading spaces), then checks length and check digit.
    pub fn parse(s: &str) -> Result<InsurerNumber, IdError> {
        let f = text::fold(s);
        if f.is_empty() {
            return Err(IdError::Empty);
        }
        if !text::is_ascii_digits(&f) {
            return Err(IdError::NotDigits);
        }
        let b = f.as_bytes();
        if b.len() != 6 && b.len() != 8 {
            return Err(IdError::Length("6 or 8"));
        }
        if luhn_check_digit(&b[..b.len() - 1]) != b[b.len() - 1] - b'0' {
            return Err(IdError::CheckDigit);
        }
        let mut digits = [b' '; 8];
        digits[..b.len()].copy_from_slice(b);
        Ok(InsurerNumber {
            digits,
            len: b.len() as u8,
        })
    }

    /// Completes a 5- or 7-digit body with its check digit (for generators and tests).
    pub fn from_body(body: &str) -> Option<InsurerNumber> {
        if !text::is_ascii_digits(body) || (body.len() != 5 && body.len() != 7) {
            return None;
        }
        let check = luhn_check_digit(body.as_bytes());
        InsurerNumber::parse(&format!("{body}{check}")).ok()
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[..self.len as usize]).expect("ASCII digits")
    }

    /// 法別番号 of an 8-digit number; `None` for 6-digit 国保 numbers.
    pub fn houbetsu(&self) -> Option<u8> {
        (self.len == 8).then(|| (self.digits[0] - b'0') * 10 + (self.digits[1] - b'0'))
    }

    /// 後期高齢者医療 (法別 39).
    pub fn is_koki(&self) -> bool {
        self.houbetsu() == Some(39)
    }

    /// Fixed 8-byte form used as a sort and storage key: the digits, blank-padded on the right.
    pub fn to_key(&self) -> [u8; 8] {
        self.digits
    }

    pub fn from_key(key: [u8; 8]) -> Option<InsurerNumber> {
        let len = key.iter().position(|&b| b == b' ').unwrap_or(8);
        std::str::from_utf8(&key[..len])
            .ok()
            .and_then(|s| InsurerNumber::parse(s).ok())
    }
}

impl fmt::Display for InsurerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for InsurerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InsurerNumber({})", self.as_str())
    }
}

/// Longest symbol or number after normalization, in characters (docs/api.md#symbol-number-branch).
pub const CARD_TEXT_MAX_CHARS: usize = 20;

/// Normalizes a 記号 or 番号 exactly as docs/api.md#symbol-number-branch says, identically for snapshots and queries:
/// NFKC, all white space removed, leading zeros dropped from an all-digit value. Returns an
/// empty string for empty input; the caller decides whether empty is allowed.
pub fn normalize_card_text(s: &str) -> Result<String, IdError> {
    let mut out = String::with_capacity(s.len());
    normalize_card_text_into(s, &mut out)?;
    Ok(out)
}

/// [`normalize_card_text`] into `out` (cleared first), so a caller answering query after
/// query can reuse one buffer instead of allocating per query. On error `out` holds no
/// meaningful text.
pub fn normalize_card_text_into(s: &str, out: &mut String) -> Result<(), IdError> {
    out.clear();
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_whitespace()) {
        // The usual query, ASCII with nothing to remove: the same steps as below on bytes,
        // where a character is a byte and the card characters are letters, digits and '-'.
        let mut body = s;
        if text::is_ascii_digits(body) {
            let zeros = body.bytes().take_while(|&b| b == b'0').count();
            body = &body[zeros.min(body.len() - 1)..];
        }
        if body.len() > CARD_TEXT_MAX_CHARS {
            return Err(IdError::TooLong(CARD_TEXT_MAX_CHARS));
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(IdError::BadCharacter);
        }
        out.push_str(body);
        return Ok(());
    }
    if s.is_ascii() {
        out.extend(s.chars().filter(|c| !c.is_ascii_whitespace()));
    } else if s
        .chars()
        .all(|c| c.is_ascii() || text::wide_ascii(c).is_some())
    {
        // Full-width digits and letters (typed with a Japanese input method) are NFKC's
        // compatibility forms of ASCII, and an ideographic space is a space: fold them
        // directly rather than through the general normalizer, which is slow per character.
        out.extend(
            s.chars()
                .map(|c| text::wide_ascii(c).unwrap_or(c))
                .filter(|c| !c.is_ascii_whitespace()),
        );
    } else {
        out.extend(s.nfkc().filter(|&c| !text::is_space(c)));
    }
    if !out.is_empty() && text::is_ascii_digits(out) {
        let zeros = out
            .bytes()
            .take_while(|&b| b == b'0')
            .count()
            .min(out.len() - 1);
        out.drain(..zeros);
    }
    if out.chars().count() > CARD_TEXT_MAX_CHARS {
        return Err(IdError::TooLong(CARD_TEXT_MAX_CHARS));
    }
    if !out.chars().all(is_card_char) {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

/// Digits, Latin letters, kana, kanji, hyphen (docs/api.md#symbol-number-branch), plus the long-vowel mark and
/// iteration marks that appear in kana and kanji text.
pub(crate) fn is_card_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '-'
        || matches!(c,
            '\u{3041}'..='\u{309F}' // hiragana
            | '\u{30A0}'..='\u{30FF}' // katakana
            | '\u{3005}' | '\u{3006}' | '\u{3007}' // 々 〆 〇
            | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
            | '\u{3400}'..='\u{4DBF}' // extension A
            | '\u{F900}'..='\u{FAFF}' // compatibility ideographs
            // Extensions B–I and the compatibility supplement (𠮷, 𩸽): the supplementary
            // and tertiary ideographic planes.
            | '\u{20000}'..='\u{2FFFF}'
            | '\u{30000}'..='\u{323AF}'
            | '\u{2212}' | '\u{2010}'..='\u{2015}') // minus and dash forms
}

/// 枝番: two digits, 00–99.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Branch(u8);

impl Branch {
    pub fn new(n: u8) -> Option<Branch> {
        (n <= 99).then_some(Branch(n))
    }

    /// Snapshot form: exactly two digits (full-width folded).
    pub fn parse_exact(s: &str) -> Result<Branch, IdError> {
        let d = text::digits(s).ok_or(IdError::NotDigits)?;
        if d.len() != 2 {
            return Err(IdError::Length("2"));
        }
        Ok(Branch(d.parse().map_err(|_| IdError::NotDigits)?))
    }

    /// Query form: one or two digits ("1" means "01").
    pub fn parse_query(s: &str) -> Result<Branch, IdError> {
        let d = text::digits(s).ok_or(IdError::NotDigits)?;
        if d.is_empty() || d.len() > 2 {
            return Err(IdError::Length("1 or 2"));
        }
        Ok(Branch(d.parse().map_err(|_| IdError::NotDigits)?))
    }

    pub fn value(self) -> u8 {
        self.0
    }

    pub fn as_bytes(self) -> [u8; 2] {
        [b'0' + self.0 / 10, b'0' + self.0 % 10]
    }
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

impl fmt::Debug for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Branch({:02})", self.0)
    }
}

/// 個人番号 (My Number). Its `Debug` and `Display` show only the last four digits, so it can
/// not leak into a log, report or error by formatting.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndividualNumber([u8; 12]);

impl IndividualNumber {
    pub fn parse(s: &str) -> Result<IndividualNumber, IdError> {
        let d = text::digits(s).ok_or(IdError::NotDigits)?;
        let b = d.as_bytes();
        if b.len() != 12 {
            return Err(IdError::Length("12"));
        }
        if Self::check_digit(&b[..11]) != b[11] - b'0' {
            return Err(IdError::CheckDigit);
        }
        let mut digits = [0u8; 12];
        digits.copy_from_slice(b);
        Ok(IndividualNumber(digits))
    }

    /// 総務省令第85号 第5条: weights 2..7,2..6 from the right of the first 11 digits.
    pub fn check_digit(first11: &[u8]) -> u8 {
        assert_eq!(first11.len(), 11, "check digit takes 11 digits");
        let r: u32 = first11
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &b)| {
                let n = i as u32 + 1;
                let weight = if n <= 6 { n + 1 } else { n - 5 };
                u32::from(b - b'0') * weight
            })
            .sum::<u32>()
            % 11;
        if r <= 1 {
            0
        } else {
            (11 - r) as u8
        }
    }

    /// Completes 11 digits with the check digit (for generators and tests).
    pub fn from_first11(first11: u64) -> IndividualNumber {
        assert!(first11 < 100_000_000_000, "11 digits at most");
        let mut digits = [0u8; 12];
        let s = format!("{first11:011}");
        digits[..11].copy_from_slice(s.as_bytes());
        digits[11] = b'0' + Self::check_digit(&digits[..11]);
        IndividualNumber(digits)
    }

    /// The twelve digits in clear. Only for hashing and for writing test data; never log it.
    pub fn expose_digits(&self) -> &[u8; 12] {
        &self.0
    }

    /// `********9018`, the only form reports and logs may show.
    pub fn masked(&self) -> String {
        format!(
            "********{}",
            std::str::from_utf8(&self.0[8..]).expect("ASCII digits")
        )
    }
}

impl fmt::Debug for IndividualNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for IndividualNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Masks any string that might hold an individual number: keeps only its last four
/// characters. Used when echoing raw input in errors and reports.
pub fn mask_raw(s: &str) -> String {
    let chars: Vec<char> = s.trim().chars().collect();
    let keep = chars.len().min(4);
    let mut out = "*".repeat(chars.len() - keep);
    out.extend(&chars[chars.len() - keep..]);
    out
}

/// The secret key of the keyed hash that stands in for individual numbers (docs/api.md#individual-number).
#[derive(Clone)]
pub struct PersonKey([u8; 32]);

/// Keyed BLAKE3 of an individual number, truncated to 128 bits: collision-free in practice at
/// national scale (≈10^8 people, collision odds ≈ 10^-23) and not reversible without the key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PersonHash(pub [u8; 16]);

impl PersonHash {
    /// 32 lowercase hex digits, as the audit log writes it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for PersonHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PersonHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

impl PersonKey {
    /// The fixed, documented key for demo and test data only: BLAKE3's key derivation of the
    /// context string "shikaku demo person key v1". Never use it for real members.
    pub fn demo() -> PersonKey {
        PersonKey(blake3::derive_key("shikaku demo person key v1", b""))
    }

    pub fn from_bytes(key: [u8; 32]) -> PersonKey {
        PersonKey(key)
    }

    /// Reads 64 hex digits (the operator's key file format).
    pub fn from_hex(s: &str) -> Option<PersonKey> {
        let s = s.trim();
        if s.len() != 64 {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            key[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        }
        Some(PersonKey(key))
    }

    /// The key as its file holds it: 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn hash(&self, n: &IndividualNumber) -> PersonHash {
        let full = blake3::keyed_hash(&self.0, &n.0);
        let mut out = [0u8; 16];
        out.copy_from_slice(&full.as_bytes()[..16]);
        PersonHash(out)
    }

    /// Identifies the key without revealing it, so an index built with one key refuses to
    /// answer with another.
    pub fn fingerprint(&self) -> u64 {
        let h = blake3::keyed_hash(&self.0, b"shikaku person key fingerprint");
        u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
    }
}

impl fmt::Debug for PersonKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonKey(fingerprint {:016x})", self.fingerprint())
    }
}

/// 医療機関コード: 10 digits, the last a Luhn check over the first nine (docs/api.md#institution-code).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstitutionCode([u8; 10]);

impl InstitutionCode {
    pub fn parse(s: &str) -> Result<InstitutionCode, IdError> {
        let d = text::digits(s).ok_or(IdError::NotDigits)?;
        let b = d.as_bytes();
        if b.len() != 10 {
            return Err(IdError::Length("10"));
        }
        if luhn_check_digit(&b[..9]) != b[9] - b'0' {
            return Err(IdError::CheckDigit);
        }
        let mut digits = [0u8; 10];
        digits.copy_from_slice(b);
        Ok(InstitutionCode(digits))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII digits")
    }

    /// 点数表: 1 医科, 3 歯科, 4 調剤.
    pub fn table(&self) -> u8 {
        self.0[2] - b'0'
    }
}

impl fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstitutionCode({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insurer_numbers() {
        let check = |input: &str, expected: Result<&str, IdError>| {
            assert_eq!(
                InsurerNumber::parse(input).map(|n| n.as_str().to_owned()),
                expected.map(str::to_owned),
                "{input:?}"
            );
        };
        check("33120015", Ok("33120015"));
        check("131045", Ok("131045"));
        check("  131045", Ok("131045"));
        check("１３１０４５", Ok("131045"));
        check("３３１２００１５", Ok("33120015"));
        check("33120016", Err(IdError::CheckDigit));
        check("1310", Err(IdError::Length("6 or 8")));
        check("1310A5", Err(IdError::NotDigits));
        check("   ", Err(IdError::Empty));
        let n = InsurerNumber::parse("33120015").unwrap();
        assert_eq!(n.houbetsu(), Some(33));
        assert_eq!(InsurerNumber::parse("131045").unwrap().houbetsu(), None);
        assert_eq!(InsurerNumber::from_body("3312001"), Some(n));
        assert_eq!(InsurerNumber::from_key(n.to_key()), Some(n));
        let six = InsurerNumber::parse("131045").unwrap();
        assert_eq!(InsurerNumber::from_key(six.to_key()), Some(six));
    }

    #[test]
    fn card_text_normalization() {
        let check = |input: &str, expected: Result<&str, IdError>| {
            assert_eq!(
                normalize_card_text(input),
                expected.map(str::to_owned),
                "{input:?}"
            );
        };
        check("0012", Ok("12"));
        check("０１２", Ok("12"));
        check("000", Ok("0"));
        check(" 12 34 ", Ok("1234"));
        check("ＡＢ－１", Ok("AB-1"));
        check("ｱｲ 12", Ok("アイ12"));
        check("012A", Ok("012A"));
        check("愛知 ２", Ok("愛知2"));
        // Regression: kanji outside the basic plane, and 〇, were "not kanji".
        check("𠮷田", Ok("𠮷田"));
        check("〇一", Ok("〇一"));
        check("𩸽", Ok("𩸽"));
        check("", Ok(""));
        check("123456789012345678901", Err(IdError::TooLong(20)));
        check("00000000000000000000001", Ok("1"));
        check("12;DROP", Err(IdError::BadCharacter));
        check("-0", Ok("-0"));
        check("0-", Ok("0-"));
        check("123456789012345678901234567890;", Err(IdError::TooLong(20)));
    }

    /// The steps of docs/api.md#symbol-number-branch as written (NFKC, spaces removed, leading zeros of digits
    /// dropped, length, characters), for the shortcuts to be checked against.
    fn general_path(s: &str) -> Result<String, IdError> {
        let mut general: String = s.nfkc().filter(|&c| !text::is_space(c)).collect();
        if !general.is_empty() && text::is_ascii_digits(&general) {
            let zeros = general.bytes().take_while(|&b| b == b'0').count();
            general.drain(..zeros.min(general.len() - 1));
        }
        if general.chars().count() > CARD_TEXT_MAX_CHARS {
            Err(IdError::TooLong(CARD_TEXT_MAX_CHARS))
        } else if !general.chars().all(is_card_char) {
            Err(IdError::BadCharacter)
        } else {
            Ok(general)
        }
    }

    proptest::proptest! {
        /// The full-width shortcut agrees with the general steps, also next to characters
        /// that take the general path (kana, a combining sound mark, a compatibility kanji).
        #[test]
        fn wide_shortcut_is_the_general_path(
            s in "[0-9A-Za-z ０-９Ａ-Ｚａ-ｚ－　;、カﾞ\u{3099}\u{F900}]{0,24}"
        ) {
            proptest::prop_assert_eq!(normalize_card_text(&s), general_path(&s));
        }

        /// The ASCII shortcut agrees with the general steps (NFKC leaves ASCII unchanged).
        #[test]
        fn ascii_shortcut_is_the_general_path(s in "[0-9A-Za-z; .-]{0,24}") {
            proptest::prop_assert_eq!(normalize_card_text(&s), general_path(&s));
        }
    }

    #[test]
    fn branches() {
        assert_eq!(Branch::parse_exact("01"), Ok(Branch(1)));
        assert_eq!(Branch::parse_exact("０１"), Ok(Branch(1)));
        assert_eq!(Branch::parse_exact("1"), Err(IdError::Length("2")));
        assert_eq!(Branch::parse_exact("001"), Err(IdError::Length("2")));
        assert_eq!(Branch::parse_query("1"), Ok(Branch(1)));
        assert_eq!(Branch::parse_query("99"), Ok(Branch(99)));
        assert_eq!(Branch::parse_query("x"), Err(IdError::NotDigits));
        assert_eq!(Branch(7).to_string(), "07");
    }

    #[test]
    fn individual_numbers() {
        assert_eq!(IndividualNumber::check_digit(b"12345678901"), 8);
        let n = IndividualNumber::parse("123456789018").unwrap();
        assert_eq!(format!("{n:?} {n}"), "********9018 ********9018");
        assert_eq!(
            IndividualNumber::parse("123456789019"),
            Err(IdError::CheckDigit)
        );
        assert_eq!(
            IndividualNumber::parse("12345678901"),
            Err(IdError::Length("12"))
        );
        assert_eq!(IndividualNumber::parse("１２３４５６７８９０１８"), Ok(n));
        assert_eq!(IndividualNumber::from_first11(12345678901), n);
        assert_eq!(mask_raw("123456789018"), "********9018");
        assert_eq!(mask_raw("12"), "12");
    }

    #[test]
    fn person_hash_is_keyed() {
        let n = IndividualNumber::parse("123456789018").unwrap();
        let demo = PersonKey::demo();
        let other = PersonKey::from_bytes([7; 32]);
        assert_eq!(demo.hash(&n), demo.hash(&n));
        assert_ne!(demo.hash(&n), other.hash(&n));
        assert_ne!(demo.fingerprint(), other.fingerprint());
        assert!(PersonKey::from_hex(&"ab".repeat(32)).is_some());
        let round = PersonKey::from_hex(&other.to_hex()).unwrap();
        assert_eq!(round.fingerprint(), other.fingerprint());
        assert!(PersonKey::from_hex("abc").is_none());
    }

    #[test]
    fn institution_codes() {
        let c = InstitutionCode::parse("0110113719").unwrap();
        assert_eq!(c.table(), 1);
        assert_eq!(
            InstitutionCode::parse("0110113718"),
            Err(IdError::CheckDigit)
        );
        assert_eq!(
            InstitutionCode::parse("011011371"),
            Err(IdError::Length("10"))
        );
    }
}
