//! Query field parsing: dates, card text normalization, the ids, and whole card and person
//! queries, from arbitrary text fields.
//!
//! Properties: no error quotes an individual number in clear; a parsed date reads back from
//! each form it writes; normalization is idempotent; each fast path for ASCII input agrees
//! with the general path that reads the same text in full-width characters; a parsed id
//! reads back from its own text; parsing into reused buffers changes nothing.

use super::input::{assert_no_clear_number, fields};
use shikaku::domain::{normalize_card_text, Branch, Date, IndividualNumber, InsurerNumber};
use shikaku::query::{CardFields, CardQuery, PersonFields, PersonQuery};

/// The full-width form of every ASCII character that has one (`!`..`~`), as a Japanese
/// input method types them; NFKC folds them back.
fn widen(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).expect("full-width form"),
            _ => c,
        })
        .collect()
}

fn date(s: &str) {
    let parsed = Date::parse(s);
    match &parsed {
        Err(e) => assert_no_clear_number(&e.to_string(), "a date error"),
        Ok(d) => {
            let mut iso = Vec::new();
            d.write_iso(&mut iso);
            let iso = String::from_utf8(iso).expect("ISO date is ASCII");
            let forms = [
                Some(iso),
                Some(d.to_compact()),
                d.to_wareki_letter(),
                d.to_wareki_code(),
            ];
            for form in forms.into_iter().flatten() {
                assert_eq!(
                    Date::parse(&form).ok(),
                    Some(*d),
                    "{s:?} written as {form:?}"
                );
            }
        }
    }
    if s.is_ascii() {
        let wide = widen(s);
        assert_eq!(Date::parse(&wide).ok(), parsed.ok(), "{s:?} as {wide:?}");
    }
}

fn card_text(s: &str) {
    let normalized = normalize_card_text(s);
    match &normalized {
        Err(e) => assert_no_clear_number(&e.to_string(), "a card text error"),
        Ok(n) => assert_eq!(
            normalize_card_text(n).as_ref(),
            Ok(n),
            "normalizing {s:?} twice"
        ),
    }
    if s.is_ascii() {
        let wide = widen(s);
        assert_eq!(
            normalize_card_text(&wide).ok(),
            normalized.ok(),
            "{s:?} as {wide:?}"
        );
    }
}

fn ids(s: &str) {
    if let Ok(n) = InsurerNumber::parse(s) {
        assert_eq!(InsurerNumber::parse(n.as_str()).ok(), Some(n));
        assert_eq!(InsurerNumber::from_key(n.to_key()), Some(n));
    }
    if let Ok(b) = Branch::parse_query(s) {
        assert_eq!(
            Branch::parse_exact(&format!("{:02}", b.value())).ok(),
            Some(b)
        );
    }
    match IndividualNumber::parse(s) {
        Ok(n) => {
            let digits = std::str::from_utf8(n.expose_digits()).expect("digits");
            assert_eq!(IndividualNumber::parse(digits).ok(), Some(n));
            assert_no_clear_number(&format!("{n:?} {n}"), "a formatted individual number");
        }
        Err(e) => assert_no_clear_number(&e.to_string(), "an individual number error"),
    }
}

/// Fields separated by 0xFF: insurer number, symbol, number, branch, birthdate, date,
/// individual number (a card query takes the first six, a person query the last two).
pub fn check(data: &[u8]) {
    let f = fields(data);
    let get = |i: usize| f.get(i).map(String::as_str);
    for s in &f {
        date(s);
        card_text(s);
        ids(s);
    }
    let card = CardFields {
        insurer_number: get(0),
        symbol: get(1),
        number: get(2),
        branch: get(3),
        birthdate: get(4),
        date: get(5),
        limit_consent: data.len() % 2 == 1,
    };
    let parsed = CardQuery::parse(&card);
    let reused = CardQuery::parse_reusing(&card, "stale".into(), "十二".into());
    assert_eq!(parsed, reused, "parsing into reused buffers");
    if let Err(e) = &parsed {
        assert_no_clear_number(&e.to_string(), "a card query error");
    }
    let person = PersonFields {
        individual_number: get(6),
        date: get(5),
        limit_consent: false,
    };
    if let Err(e) = PersonQuery::parse(&person) {
        assert_no_clear_number(&e.to_string(), "a person query error");
    }
}
