//! Writes rows the way each insurer's system does: its column order, date style, full-width
//! digits, half-width kana, quoting, line ends and encoding.

use crate::model::{Row, Sym};
use crate::tables::{FAMILY_NAMES, GIVEN_NAMES, MEMOS};
use crate::universe::{Col, DateStyle, Encoding, Habit, Insurer};
use encoding_rs::SHIFT_JIS;
use shikaku::domain::Date;

/// Appends `s`, turning ASCII digits into full-width ones when `fullwidth`.
pub fn push_digits(out: &mut String, s: &str, fullwidth: bool) {
    if !fullwidth {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_ascii_digit() {
            out.push(char::from_u32('０' as u32 + (c as u32 - '0' as u32)).unwrap_or(c));
        } else {
            out.push(c);
        }
    }
}

pub fn date_text(date: Date, style: DateStyle) -> String {
    match style {
        DateStyle::Iso => date.to_string(),
        DateStyle::Compact => date.to_compact(),
        DateStyle::WarekiLetter => date.to_wareki_letter().unwrap_or_else(|| date.to_string()),
        DateStyle::WarekiCode => date.to_wareki_code().unwrap_or_else(|| date.to_string()),
    }
}

/// Full-width katakana and their half-width forms (U+FF66 onwards, in this order).
const FULL_KANA: &str =
    "ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン";

fn half_of(c: char) -> Option<char> {
    let i = FULL_KANA.chars().position(|k| k == c)?;
    char::from_u32(0xFF66 + i as u32)
}

/// Full-width katakana to half-width (ガ → ｶﾞ), as old mainframe exports write readings.
pub fn to_halfwidth_kana(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if let Some(h) = half_of(c) {
            out.push(h);
        } else if c == 'ヴ' {
            out.push_str("ｳﾞ");
        } else if let Some((base, mark)) = voiced_base(c) {
            out.push(base);
            out.push(mark);
        } else {
            out.push(c);
        }
    }
    out
}

/// ガ → (ｶ, ﾞ), パ → (ﾊ, ﾟ): voiced kana sit one (two for ﾟ) code points after their base.
fn voiced_base(c: char) -> Option<(char, char)> {
    if let Some(h) = char::from_u32(c as u32 - 1).and_then(half_of) {
        if "ガギグゲゴザジズゼゾダヂヅデドバビブベボ".contains(c) {
            return Some((h, 'ﾞ'));
        }
    }
    if let Some(h) = char::from_u32(c as u32 - 2).and_then(half_of) {
        if "パピプペポ".contains(c) {
            return Some((h, 'ﾟ'));
        }
    }
    None
}

/// Katakana to hiragana (the W4 defect: a reading that is not katakana).
pub fn to_hiragana(s: &str) -> String {
    s.chars()
        .map(|c| {
            if ('\u{30A1}'..='\u{30F6}').contains(&c) {
                char::from_u32(c as u32 - 0x60).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

pub fn name_of(family: u16, given: u16) -> (String, String) {
    let (fk, fr) = FAMILY_NAMES[family as usize % FAMILY_NAMES.len()];
    let (gk, gr, _, _) = GIVEN_NAMES[given as usize % GIVEN_NAMES.len()];
    (format!("{fk} {gk}"), format!("{fr} {gr}"))
}

pub fn symbol_text(sym: Sym, fullwidth: bool) -> String {
    let mut raw = String::new();
    sym.render(&mut raw);
    let mut out = String::with_capacity(raw.len() * 3);
    push_digits(&mut out, &raw, fullwidth);
    out
}

pub fn insurer_text(ins: &Insurer) -> String {
    let s = ins.number.as_str();
    if ins.habit.pad_insurer && s.len() == 6 {
        format!("  {s}")
    } else {
        s.to_string()
    }
}

fn push_field(line: &mut String, text: &str, quote_all: bool) {
    let needs = quote_all || text.contains([',', '"', '\r', '\n']);
    if needs {
        line.push('"');
        line.push_str(&text.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(text);
    }
}

fn eol(h: &Habit) -> &'static str {
    if h.crlf {
        "\r\n"
    } else {
        "\n"
    }
}

/// The header line, with a BOM first when the insurer writes one.
pub fn header_bytes(h: &Habit) -> Vec<u8> {
    let mut line = String::new();
    if h.encoding == Encoding::Utf8Bom {
        line.push('\u{FEFF}');
    }
    for (i, c) in h.columns.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        push_field(&mut line, c.header(), h.quote_all);
    }
    line.push_str(eol(h));
    encode(h, &line)
}

/// Encodes a UTF-8 line in the file's encoding. Every generated string is in CP932.
pub fn encode(h: &Habit, line: &str) -> Vec<u8> {
    match h.encoding {
        Encoding::Cp932 => SHIFT_JIS.encode(line).0.into_owned(),
        _ => line.as_bytes().to_vec(),
    }
}

fn field_text(ins: &Insurer, row: &Row, col: Col) -> String {
    let h = &ins.habit;
    let r = &row.rec;
    let fw = h.fullwidth;
    let date = |d: Date| {
        let mut s = String::new();
        push_digits(&mut s, &date_text(d, h.dates), fw);
        s
    };
    match col {
        Col::InsurerNumber => insurer_text(ins),
        Col::Symbol => symbol_text(r.sym, fw),
        Col::Number => {
            let raw = if h.pad_number {
                format!("{:010}", r.number)
            } else {
                r.number.to_string()
            };
            let mut s = String::new();
            push_digits(&mut s, &raw, fw);
            s
        }
        Col::Branch => {
            let mut s = String::new();
            push_digits(&mut s, &format!("{:02}", r.branch), fw);
            s
        }
        Col::IndividualNumber => r.indnum.map(individual_text).unwrap_or_default(),
        Col::Name => name_of(r.family, r.given).0,
        Col::NameKana => {
            let kana = name_of(r.family, r.given).1;
            if h.halfwidth_kana {
                to_halfwidth_kana(&kana)
            } else {
                kana
            }
        }
        Col::Sex => r.sex.to_string(),
        Col::Birthdate => date(r.birth),
        Col::Relationship => r.rel.to_string(),
        Col::Qualification => date(r.qual),
        Col::Disqualification => r.disq.map(date).unwrap_or_default(),
        Col::Reason => r.reason.map(|x| x.as_str().to_string()).unwrap_or_default(),
        Col::Copay => {
            if h.copay_wari {
                format!("{}割", r.copay / 10)
            } else {
                r.copay.to_string()
            }
        }
        Col::Limit => r.limit.map(|l| l.as_str().to_string()).unwrap_or_default(),
        Col::Memo => MEMOS[(r.number as usize + r.branch as usize) % MEMOS.len()].to_string(),
    }
}

/// The twelve digits of the individual number whose first eleven are `first11`.
pub fn individual_text(first11: u64) -> String {
    let s = format!("{first11:011}");
    let check = shikaku::domain::IndividualNumber::check_digit(s.as_bytes());
    format!("{s}{check}")
}

/// Renders one row (one line, or two for an exact duplicate) in the insurer's habits.
pub fn row_line(ins: &Insurer, row: &Row) -> String {
    let h = &ins.habit;
    let mut line = String::with_capacity(200);
    for (i, &col) in h.columns.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        match &row.over {
            Some((c, text)) if *c == col => push_field(&mut line, text, h.quote_all),
            _ => push_field(&mut line, &field_text(ins, row, col), h.quote_all),
        }
    }
    line.push_str(eol(h));
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halfwidth_kana() {
        assert_eq!(to_halfwidth_kana("ヤマダ タロウ"), "ﾔﾏﾀﾞ ﾀﾛｳ");
        assert_eq!(to_halfwidth_kana("ショウタ"), "ｼｮｳﾀ");
        assert_eq!(to_halfwidth_kana("パピプペポ"), "ﾊﾟﾋﾟﾌﾟﾍﾟﾎﾟ");
        assert_eq!(to_halfwidth_kana("ヅギボ"), "ﾂﾞｷﾞﾎﾞ");
    }

    #[test]
    fn hiragana() {
        assert_eq!(to_hiragana("ヤマダ タロウ"), "やまだ たろう");
    }

    #[test]
    fn individual_numbers_have_valid_check_digits() {
        assert_eq!(individual_text(12345678901), "123456789018");
        assert_eq!(individual_text(7), "000000000078");
        assert!(shikaku::domain::IndividualNumber::parse(&individual_text(7)).is_ok());
    }
}
