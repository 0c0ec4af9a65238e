//! Public expense (公費) identifiers and the certificate (受給者証) a register row makes
//! (docs/delivery.md#public-expense-registers, docs/api.md#public-expense-query).

use super::codes::Sex;
use super::date::Date;
use super::ids::{is_card_char, IdError, IndividualNumber, InstitutionCode};
use super::text::{self, luhn_check_digit};
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// 公費負担者番号: 8 digits, 法別番号 (2) + 都道府県 (2) + 実施機関 (3) + 検証番号 (1), the
/// check digit Luhn as the insurer number's.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PayerNumber([u8; 8]);

impl PayerNumber {
    /// Folds full-width digits and surrounding blanks, then checks length and check digit.
    pub fn parse(s: &str) -> Result<PayerNumber, IdError> {
        let f = text::fold(s);
        if f.is_empty() {
            return Err(IdError::Empty);
        }
        if !text::is_ascii_digits(&f) {
            return Err(IdError::NotDigits);
        }
        let b = f.as_bytes();
        if b.len() != 8 {
            return Err(IdError::Length("8"));
        }
        if luhn_check_digit(&b[..7]) != b[7] - b'0' {
            return Err(IdError::CheckDigit);
        }
        let mut digits = [0u8; 8];
        digits.copy_from_slice(b);
        Ok(PayerNumber(digits))
    }

    /// Completes a 7-digit body with its check digit (for generators and tests).
    pub fn from_body(body: &str) -> Option<PayerNumber> {
        if body.len() != 7 || !text::is_ascii_digits(body) {
            return None;
        }
        let check = luhn_check_digit(body.as_bytes());
        PayerNumber::parse(&format!("{body}{check}")).ok()
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII digits")
    }

    /// The 8 ASCII digits, the form the index stores.
    pub fn to_key(&self) -> [u8; 8] {
        self.0
    }

    pub fn from_key(key: [u8; 8]) -> Option<PayerNumber> {
        std::str::from_utf8(&key)
            .ok()
            .and_then(|s| PayerNumber::parse(s).ok())
    }

    /// 法別番号, the program: 12 生活保護, 21 精神通院, 54 難病, 80–99 local programs, ….
    pub fn program(&self) -> u8 {
        (self.0[0] - b'0') * 10 + (self.0[1] - b'0')
    }

    /// 法別 10–79: national programs, whose recipient numbers carry a check digit.
    pub fn recipient_has_check_digit(&self) -> bool {
        (10..=79).contains(&self.program())
    }
}

impl fmt::Display for PayerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PayerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayerNumber({})", self.as_str())
    }
}

/// Most designated institutions one certificate may name. A 医療券 names one; a few dozen is
/// a generous bound, and it keeps a certificate's size in the index small and bounded.
pub const MAX_INSTITUTIONS: usize = 32;

/// Longest recipient number of a local program (法別 80–99), in characters.
pub const RECIPIENT_MAX_CHARS: usize = 20;

/// Normalizes a 公費受給者番号 for `payer` into `out` (cleared first): NFKC, white space
/// removed; leading zeros are significant. For 法別 10–79, 7 digits whose 7th is the Luhn
/// check digit over the first 6; for 80–99, 1–20 characters (digits, letters, kana, kanji,
/// hyphen), no check digit.
pub fn normalize_recipient_into(
    s: &str,
    payer: PayerNumber,
    out: &mut String,
) -> Result<(), IdError> {
    out.clear();
    if s.is_ascii() {
        out.extend(s.chars().filter(|c| !c.is_ascii_whitespace()));
    } else {
        out.extend(s.nfkc().filter(|&c| !text::is_space(c)));
    }
    if out.is_empty() {
        return Err(IdError::Empty);
    }
    if payer.recipient_has_check_digit() {
        if !text::is_ascii_digits(out) {
            return Err(IdError::NotDigits);
        }
        let b = out.as_bytes();
        if b.len() != 7 {
            return Err(IdError::Length("7"));
        }
        if luhn_check_digit(&b[..6]) != b[6] - b'0' {
            return Err(IdError::CheckDigit);
        }
        return Ok(());
    }
    if out.chars().count() > RECIPIENT_MAX_CHARS {
        return Err(IdError::TooLong(RECIPIENT_MAX_CHARS));
    }
    if !out.chars().all(is_card_char) {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

/// [`normalize_recipient_into`] into a new string.
pub fn normalize_recipient(s: &str, payer: PayerNumber) -> Result<String, IdError> {
    let mut out = String::with_capacity(s.len());
    normalize_recipient_into(s, payer, &mut out)?;
    Ok(out)
}

/// One validated row of a public-expense register: a 受給者証.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Certificate {
    pub payer: PayerNumber,
    /// Normalized; never empty.
    pub recipient: String,
    pub individual_number: Option<IndividualNumber>,
    pub name: String,
    pub name_kana: String,
    pub sex: Option<Sex>,
    pub birthdate: Date,
    pub valid_from: Date,
    /// Inclusive: the last day covered, as printed on the certificate.
    pub valid_to: Option<Date>,
    /// 自己負担上限額 per month, in yen; `None`: no limit stated, 0: no copay.
    pub copay_limit_yen: Option<u32>,
    /// Designated institutions (医療券, 指定医療機関); empty: any institution.
    pub institutions: Vec<InstitutionCode>,
}

impl Certificate {
    /// Covered on `day` ⇔ valid_from ≤ day ≤ valid_to.
    pub fn covers(&self, day: Date) -> bool {
        covers_inclusive(self.valid_from, self.valid_to, day)
    }

    /// Whether `institution` may use the certificate: any institution when none is named.
    pub fn admits(&self, institution: InstitutionCode) -> bool {
        self.institutions.is_empty() || self.institutions.contains(&institution)
    }
}

/// The coverage rule of a certificate, shared by the build, the index and the naive model:
/// both ends inclusive (unlike an insurance record's disqualification date).
pub fn covers_inclusive(from: Date, to: Option<Date>, day: Date) -> bool {
    from <= day && to.is_none_or(|t| day <= t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payer_numbers() {
        let check = |input: &str, expected: Result<&str, IdError>| {
            assert_eq!(
                PayerNumber::parse(input).map(|n| n.as_str().to_owned()),
                expected.map(str::to_owned),
                "{input:?}"
            );
        };
        // 1213601: from the right 1·2, 0·1, 6·2, 3·1, 1·2, 2·1, 1·2 → 2+0+(1+2)+3+2+2+2 = 14 → 6.
        check("12136016", Ok("12136016"));
        check(" １２１３６０１６ ", Ok("12136016"));
        check("12136017", Err(IdError::CheckDigit));
        check("1213601", Err(IdError::Length("8")));
        check("", Err(IdError::Empty));
        check("1213601a", Err(IdError::NotDigits));
        let p = PayerNumber::from_body("5413001").unwrap();
        assert_eq!((p.program(), p.recipient_has_check_digit()), (54, true));
        assert!(!PayerNumber::from_body("8813001")
            .unwrap()
            .recipient_has_check_digit());
    }

    #[test]
    fn recipient_numbers() {
        let national = PayerNumber::from_body("1213601").unwrap();
        let local = PayerNumber::from_body("8813001").unwrap();
        let check = |input: &str, payer: PayerNumber, expected: Result<&str, IdError>| {
            assert_eq!(
                normalize_recipient(input, payer),
                expected.map(str::to_owned),
                "{input:?}"
            );
        };
        // 012345: 5·2, 4, 3·2, 2, 1·2, 0 → 1+4+6+2+2+0 = 15 → 5.
        check("0123455", national, Ok("0123455"));
        check("０１２ ３４５５", national, Ok("0123455"));
        check("0123456", national, Err(IdError::CheckDigit));
        check("123455", national, Err(IdError::Length("7")));
        check("012345a", national, Err(IdError::NotDigits));
        check(" ", national, Err(IdError::Empty));
        // Local programs: any 1–20 card characters, leading zeros kept, no check digit.
        check("0042", local, Ok("0042"));
        check("ＡＢ－１", local, Ok("AB-1"));
        check("123456789012345678901", local, Err(IdError::TooLong(20)));
        check("a_b", local, Err(IdError::BadCharacter));
    }

    #[test]
    fn valid_to_is_inclusive() {
        let d = |s| Date::parse(s).unwrap();
        assert!(covers_inclusive(
            d("2026-04-01"),
            Some(d("2026-04-30")),
            d("2026-04-30")
        ));
        assert!(!covers_inclusive(
            d("2026-04-01"),
            Some(d("2026-04-30")),
            d("2026-05-01")
        ));
        assert!(!covers_inclusive(d("2026-04-01"), None, d("2026-03-31")));
        assert!(covers_inclusive(d("2026-04-01"), None, d("2099-01-01")));
    }
}
