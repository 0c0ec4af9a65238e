//! Calendar dates (docs/api.md#dates): ISO, compact and 和暦 input; `YYYY-MM-DD` output; today in Japan.
//!
//! A `Date` is a day number (days since 1970-01-01), so comparisons are integer compares and the
//! index stores a date in four bytes. The civil conversions are Howard Hinnant's algorithms,
//! hand-written because they sit on the answer path and are a dozen lines.

use super::text;
use std::fmt;
use thiserror::Error;

/// A proleptic Gregorian date, stored as days since 1970-01-01.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DateError {
    #[error("not a date (expected YYYY-MM-DD, YYYYMMDD, S45.1.23 or 3450123)")]
    Format,
    #[error("no such day")]
    NoSuchDay,
    #[error("the day is not in that era")]
    NotInEra,
}

/// The Japanese eras shikaku reads, in order. `first` is the era's first day (明治 as used in
/// software, not the historical lunar-calendar start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Era {
    pub letter: char,
    pub code: u8,
    pub first: (i32, u32, u32),
}

pub const ERAS: [Era; 5] = [
    Era {
        letter: 'M',
        code: 1,
        first: (1868, 1, 25),
    },
    Era {
        letter: 'T',
        code: 2,
        first: (1912, 7, 30),
    },
    Era {
        letter: 'S',
        code: 3,
        first: (1926, 12, 25),
    },
    Era {
        letter: 'H',
        code: 4,
        first: (1989, 1, 8),
    },
    Era {
        letter: 'R',
        code: 5,
        first: (2019, 5, 1),
    },
];

/// Japan has kept UTC+9 without daylight saving since 1951, so "today in Asia/Tokyo" needs no
/// time-zone database.
const JST_OFFSET_SECS: i64 = 9 * 3600;

impl Date {
    pub const MIN: Date = Date(i32::MIN);
    pub const MAX: Date = Date(i32::MAX);

    /// The first day shikaku accepts anywhere: the first day of 明治.
    pub fn meiji_first() -> Date {
        let (y, m, d) = ERAS[0].first;
        Date::from_ymd(y, m, d).expect("valid era start")
    }

    pub fn from_days(days: i32) -> Date {
        Date(days)
    }

    pub fn days(self) -> i32 {
        self.0
    }

    pub fn from_ymd(y: i32, m: u32, d: u32) -> Option<Date> {
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || !(1..=9999).contains(&y) {
            return None;
        }
        Some(Date(days_from_civil(y, m, d)))
    }

    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// Today in Japan (Asia/Tokyo), never UTC.
    pub fn today_jst() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Date::from_unix_secs_jst(secs)
    }

    pub fn from_unix_secs_jst(secs: i64) -> Date {
        Date((secs + JST_OFFSET_SECS).div_euclid(86_400) as i32)
    }

    pub fn add_days(self, n: i32) -> Date {
        Date(self.0 + n)
    }

    /// Age in whole years on `on` for someone born on `self` (birthday counted on the day).
    pub fn age_on(self, on: Date) -> i32 {
        let (by, bm, bd) = self.ymd();
        let (y, m, d) = on.ymd();
        let mut age = y - by;
        if (m, d) < (bm, bd) {
            age -= 1;
        }
        age
    }

    /// Parses every form docs/api.md#dates accepts: `YYYY-MM-DD`, `YYYYMMDD`, `S45.1.23`, `3450123`,
    /// with full-width digits and surrounding white space.
    pub fn parse(s: &str) -> Result<Date, DateError> {
        // The form nearly every query sends, read without folding or slicing.
        if let Some(date) = Self::parse_plain_iso(s.as_bytes()) {
            return date;
        }
        let f = text::fold(s);
        let s = f.as_ref();
        let b = s.as_bytes();
        match b.len() {
            10 if b[4] == b'-' && b[7] == b'-' => {
                let y = num(&s[0..4])?;
                let m = num(&s[5..7])?;
                let d = num(&s[8..10])?;
                Date::from_ymd(y as i32, m, d).ok_or(DateError::NoSuchDay)
            }
            8 if text::is_ascii_digits(s) => {
                let y = num(&s[0..4])?;
                let m = num(&s[4..6])?;
                let d = num(&s[6..8])?;
                Date::from_ymd(y as i32, m, d).ok_or(DateError::NoSuchDay)
            }
            7 if text::is_ascii_digits(s) => {
                let code = b[0] - b'0';
                let era = ERAS
                    .iter()
                    .find(|e| e.code == code)
                    .ok_or(DateError::Format)?;
                from_era(era, num(&s[1..3])?, num(&s[3..5])?, num(&s[5..7])?)
            }
            _ => parse_era_letter(s),
        }
    }

    /// `YYYY-MM-DD` in ASCII digits, nothing around it: `None` for anything else (the
    /// general path reads it).
    fn parse_plain_iso(b: &[u8]) -> Option<Result<Date, DateError>> {
        let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *b else {
            return None;
        };
        let digits = [y0, y1, y2, y3, m0, m1, d0, d1];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = |hi: u8, lo: u8| u32::from(hi - b'0') * 10 + u32::from(lo - b'0');
        let y = n(y0, y1) * 100 + n(y2, y3);
        Some(Date::from_ymd(y as i32, n(m0, m1), n(d0, d1)).ok_or(DateError::NoSuchDay))
    }

    /// `S45.01.23` style, the form insurers' older systems write. `None` from era year 100
    /// (Reiwa 100 is 2118), which that form, two digits of year, cannot hold.
    pub fn to_wareki_letter(self) -> Option<String> {
        let (era, ey, m, d) = self.era_parts()?;
        if ey > 99 {
            return None;
        }
        Some(format!("{}{}.{:02}.{:02}", era.letter, ey, m, d))
    }

    /// `3450123` style (era code + yymmdd).
    pub fn to_wareki_code(self) -> Option<String> {
        let (era, ey, m, d) = self.era_parts()?;
        if ey > 99 {
            return None;
        }
        Some(format!("{}{:02}{:02}{:02}", era.code, ey, m, d))
    }

    /// `YYYYMMDD`.
    pub fn to_compact(self) -> String {
        let (y, m, d) = self.ymd();
        format!("{y:04}{m:02}{d:02}")
    }

    /// Writes `YYYY-MM-DD` into `out` without allocating (the answer path).
    pub fn write_iso(self, out: &mut Vec<u8>) {
        let (y, m, d) = self.ymd();
        let y = y.clamp(0, 9999) as usize;
        let [c0, c1] = TWO_DIGITS[y / 100];
        let [y0, y1] = TWO_DIGITS[y % 100];
        // m ≤ 12 and d ≤ 31 always; `% 100` only spares a bounds check.
        let [m0, m1] = TWO_DIGITS[m as usize % 100];
        let [d0, d1] = TWO_DIGITS[d as usize % 100];
        out.extend_from_slice(&[c0, c1, y0, y1, b'-', m0, m1, b'-', d0, d1]);
    }

    fn era_parts(self) -> Option<(&'static Era, i32, u32, u32)> {
        let era = ERAS.iter().rev().find(|e| {
            let (y, m, d) = e.first;
            Date::from_ymd(y, m, d).is_some_and(|first| self >= first)
        })?;
        let (y, m, d) = self.ymd();
        Some((era, y - era.first.0 + 1, m, d))
    }
}

fn num(s: &str) -> Result<u32, DateError> {
    if !text::is_ascii_digits(s) {
        return Err(DateError::Format);
    }
    s.parse().map_err(|_| DateError::Format)
}

fn parse_era_letter(s: &str) -> Result<Date, DateError> {
    let mut chars = s.chars();
    let letter = chars.next().ok_or(DateError::Format)?.to_ascii_uppercase();
    let era = ERAS
        .iter()
        .find(|e| e.letter == letter)
        .ok_or(DateError::Format)?;
    let rest = chars.as_str();
    let mut parts = rest.split(['.', '/', '-']);
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DateError::Format);
    };
    if y.len() > 2 || m.len() > 2 || d.len() > 2 {
        return Err(DateError::Format);
    }
    from_era(era, num(y)?, num(m)?, num(d)?)
}

fn from_era(era: &Era, era_year: u32, m: u32, d: u32) -> Result<Date, DateError> {
    if era_year == 0 {
        return Err(DateError::NotInEra);
    }
    let y = era.first.0 + era_year as i32 - 1;
    let date = Date::from_ymd(y, m, d).ok_or(DateError::NoSuchDay)?;
    let (fy, fm, fd) = era.first;
    let first = Date::from_ymd(fy, fm, fd).expect("valid era start");
    let next_first = ERAS
        .iter()
        .find(|e| e.code == era.code + 1)
        .and_then(|e| Date::from_ymd(e.first.0, e.first.1, e.first.2))
        .unwrap_or(Date::MAX);
    if date < first || date >= next_first {
        return Err(DateError::NotInEra);
    }
    Ok(date)
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// `00` to `99` as ASCII pairs: one lookup per two digits on the answer path.
const TWO_DIGITS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Days since 1970-01-01 → (year, month, day). Every answer writes three or four dates, so
/// the common range takes Neri and Schneider's algorithm ("Euclidean affine functions and
/// their application to calendar algorithms", 2022: multiplications and shifts, no
/// division by a variable); days far outside it take Hinnant's, valid for any `i32`.
fn civil_from_days(z: i32) -> (i32, u32, u32) {
    // Years 1 to 9999 (what `from_ymd` makes), with room either side.
    if (-800_000..=3_000_000).contains(&z) {
        civil_from_days_neri_schneider(z)
    } else {
        civil_from_days_hinnant(z)
    }
}

fn civil_from_days_neri_schneider(z: i32) -> (i32, u32, u32) {
    // Shifted by 82 400-year cycles, so every day in range is a positive u32.
    const CYCLES: u32 = 82;
    const K: u32 = 719_468 + 146_097 * CYCLES;
    const L: u32 = 400 * CYCLES;
    let n = z.wrapping_add(K as i32) as u32;
    let n1 = 4 * n + 3;
    let century = n1 / 146_097;
    let n_c = n1 % 146_097 / 4;
    let n2 = 4 * n_c + 3;
    let p2 = 2_939_745u64 * u64::from(n2);
    let year_of_century = (p2 >> 32) as u32;
    let day_of_year = (p2 as u32) / 2_939_745 / 4;
    let year = 100 * century + year_of_century;
    let n3 = 2141 * day_of_year + 197_913;
    let month = n3 >> 16;
    let day = (n3 & 0xFFFF) / 2141 + 1;
    // The computational year starts in March: January and February belong to the next.
    let january = u32::from(day_of_year >= 306);
    let year = (year as i32) - (L as i32) + january as i32;
    (year, if january == 1 { month - 12 } else { month }, day)
}

fn civil_from_days_hinnant(z: i32) -> (i32, u32, u32) {
    // In i64: `Date::MAX` and `Date::MIN` (i32 bounds) must not overflow.
    let z = i64::from(z) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = (i64::from(yoe) + era * 400) as i32;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast algorithm agrees with Hinnant's on every day of years 1 to 9999 and beyond.
    #[test]
    fn neri_schneider_agrees_with_hinnant() {
        for z in -800_000..=3_000_000 {
            assert_eq!(
                civil_from_days_neri_schneider(z),
                civil_from_days_hinnant(z),
                "day {z}"
            );
        }
    }

    fn check(input: &str, expected: Result<&str, DateError>) {
        let got = Date::parse(input).map(|d| d.to_string());
        assert_eq!(got, expected.map(str::to_owned), "input {input:?}");
    }

    #[test]
    fn accepted_forms() {
        check("1970-01-23", Ok("1970-01-23"));
        check("19700123", Ok("1970-01-23"));
        check("S45.1.23", Ok("1970-01-23"));
        check("S45.01.23", Ok("1970-01-23"));
        check("3450123", Ok("1970-01-23"));
        check("R3.07.09", Ok("2021-07-09"));
        check("R1.5.1", Ok("2019-05-01"));
        check("１９７０－０１－２３", Ok("1970-01-23"));
        check("Ｓ４５．１．２３", Ok("1970-01-23"));
        check("３４５０１２３", Ok("1970-01-23"));
        check(" 2026-11-24 ", Ok("2026-11-24"));
        check("2024-02-29", Ok("2024-02-29"));
    }

    #[test]
    fn era_boundaries() {
        check("M1.1.25", Ok("1868-01-25"));
        check("M1.1.24", Err(DateError::NotInEra));
        check("M45.7.29", Ok("1912-07-29"));
        check("M45.7.30", Err(DateError::NotInEra));
        check("T1.7.30", Ok("1912-07-30"));
        check("T15.12.24", Ok("1926-12-24"));
        check("T15.12.25", Err(DateError::NotInEra));
        check("S1.12.25", Ok("1926-12-25"));
        check("S64.1.7", Ok("1989-01-07"));
        check("S64.1.8", Err(DateError::NotInEra));
        check("H1.1.7", Err(DateError::NotInEra));
        check("H1.1.8", Ok("1989-01-08"));
        check("H31.04.30", Ok("2019-04-30"));
        check("H31.05.01", Err(DateError::NotInEra));
        check("4310501", Err(DateError::NotInEra));
        check("R1.4.30", Err(DateError::NotInEra));
        check("R0.5.1", Err(DateError::NotInEra));
    }

    #[test]
    fn refused_forms() {
        check("2023-02-29", Err(DateError::NoSuchDay));
        check("20231301", Err(DateError::NoSuchDay));
        check("2023/01/01", Err(DateError::Format));
        check("X45.1.23", Err(DateError::Format));
        check("9450123", Err(DateError::Format));
        check("", Err(DateError::Format));
        check("S45.1", Err(DateError::Format));
        check("S45.1.2.3", Err(DateError::Format));
    }

    #[test]
    fn round_trips() {
        // Up to 2133, past Reiwa 99 (2117): the era forms stop where they cannot be read back.
        for days in (-40_000..60_000).step_by(7) {
            let d = Date::from_days(days);
            let (y, m, dd) = d.ymd();
            assert_eq!(Date::from_ymd(y, m, dd), Some(d));
            assert_eq!(Date::parse(&d.to_string()), Ok(d));
            assert_eq!(Date::parse(&d.to_compact()), Ok(d));
            if let Some(w) = d.to_wareki_letter() {
                assert_eq!(Date::parse(&w), Ok(d), "{w}");
            }
            if let Some(w) = d.to_wareki_code() {
                assert_eq!(Date::parse(&w), Ok(d), "{w}");
            }
            let mut buf = Vec::new();
            d.write_iso(&mut buf);
            assert_eq!(buf, d.to_string().as_bytes());
        }
    }

    #[test]
    fn today_is_japan_not_utc() {
        // 2026-11-23 15:00 UTC is already 2026-11-24 00:00 in Tokyo.
        let secs = i64::from(Date::from_ymd(2026, 11, 23).unwrap().days()) * 86_400 + 15 * 3600;
        assert_eq!(Date::from_unix_secs_jst(secs).to_string(), "2026-11-24");
        assert_eq!(Date::from_unix_secs_jst(secs - 1).to_string(), "2026-11-23");
    }

    #[test]
    fn ages() {
        let b = Date::parse("1980-02-29").unwrap();
        assert_eq!(b.age_on(Date::parse("2020-02-28").unwrap()), 39);
        assert_eq!(b.age_on(Date::parse("2020-02-29").unwrap()), 40);
        assert_eq!(b.age_on(Date::parse("2021-03-01").unwrap()), 41);
    }
}
