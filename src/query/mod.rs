//! Queries and answers of docs/api.md: parsing raw fields into checked queries (an error names the
//! field), and writing the answer JSON of docs/api.md#answer.

pub mod answer;
pub mod batch;
pub mod checked;
mod json;
pub mod kohi;
mod lookup;

pub use json::{write_json_str, write_json_utf8};
pub use kohi::{KohiFields, KohiOutcome, KohiQuery, KohiReason};
pub use lookup::Lookup;

use crate::domain::{
    mask_raw, normalize_card_text_into, text, text::quote_raw, Branch, Date, IndividualNumber,
    InsurerNumber, Validity,
};
use thiserror::Error;

/// A malformed query: which field, and why. Never validity 4 (docs/api.md#answer). The reason never
/// holds an individual number in clear.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct QueryError {
    pub field: &'static str,
    pub reason: String,
}

impl QueryError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> QueryError {
        QueryError {
            field,
            reason: reason.into(),
        }
    }
}

/// 記号・番号等による照会 after normalization (docs/api.md#card-query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardQuery {
    pub insurer: InsurerNumber,
    /// Normalized symbol; empty when the card has none.
    pub symbol: String,
    pub number: String,
    pub branch: Option<Branch>,
    pub birthdate: Date,
    pub date: Option<Date>,
    pub limit_consent: bool,
}

/// マイナンバーカードによる照会 (docs/api.md#person-query). `limit_consent` is shikaku's addition, default
/// false: 限度額 information is shown only with the patient's consent, as for card queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonQuery {
    pub individual_number: IndividualNumber,
    pub date: Option<Date>,
    pub limit_consent: bool,
}

/// Which of the two queries: by card or by person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Card,
    Person,
    /// Public expense (公費).
    Kohi,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Card(CardQuery),
    Person(PersonQuery),
    Kohi(KohiQuery),
}

impl Query {
    pub fn kind(&self) -> QueryKind {
        match self {
            Query::Card(_) => QueryKind::Card,
            Query::Person(_) => QueryKind::Person,
            Query::Kohi(_) => QueryKind::Kohi,
        }
    }

    pub fn limit_consent(&self) -> bool {
        match self {
            Query::Card(q) => q.limit_consent,
            Query::Person(q) => q.limit_consent,
            Query::Kohi(_) => false,
        }
    }
}

/// The raw text fields of a card query, as any protocol delivers them. `None` and `""` both
/// mean absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct CardFields<'a> {
    pub insurer_number: Option<&'a str>,
    pub symbol: Option<&'a str>,
    pub number: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub birthdate: Option<&'a str>,
    pub date: Option<&'a str>,
    pub limit_consent: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PersonFields<'a> {
    pub individual_number: Option<&'a str>,
    pub date: Option<&'a str>,
    pub limit_consent: bool,
}

fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !text::trim_space(s).is_empty())
}

fn required<'a>(field: &'static str, v: Option<&'a str>) -> Result<&'a str, QueryError> {
    present(v).ok_or_else(|| QueryError::new(field, "is required"))
}

fn parse_date(field: &'static str, v: &str) -> Result<Date, QueryError> {
    Date::parse(v).map_err(|e| QueryError::new(field, format!("{e}: {}", quote_raw(v))))
}

fn optional_date(field: &'static str, v: Option<&str>) -> Result<Option<Date>, QueryError> {
    present(v).map(|s| parse_date(field, s)).transpose()
}

impl CardQuery {
    pub fn parse(f: &CardFields<'_>) -> Result<CardQuery, QueryError> {
        CardQuery::parse_reusing(f, String::new(), String::new())
    }

    /// [`CardQuery::parse`] that normalizes the symbol and number into the given buffers
    /// (their contents are replaced). A server hands back the buffers of the query it last
    /// answered, so its query path allocates nothing.
    pub fn parse_reusing(
        f: &CardFields<'_>,
        mut symbol: String,
        mut number: String,
    ) -> Result<CardQuery, QueryError> {
        let raw = required("insurer_number", f.insurer_number)?;
        let insurer = InsurerNumber::parse(raw)
            .map_err(|e| QueryError::new("insurer_number", format!("{e}: {}", quote_raw(raw))))?;
        match present(f.symbol) {
            None => symbol.clear(),
            Some(s) => normalize_card_text_into(s, &mut symbol)
                .map_err(|e| QueryError::new("symbol", e.to_string()))?,
        }
        normalize_card_text_into(required("number", f.number)?, &mut number)
            .map_err(|e| QueryError::new("number", e.to_string()))?;
        if number.is_empty() {
            return Err(QueryError::new("number", "is required"));
        }
        let branch = present(f.branch)
            .map(|b| {
                Branch::parse_query(b)
                    .map_err(|e| QueryError::new("branch", format!("{e}: {}", quote_raw(b))))
            })
            .transpose()?;
        let birthdate = parse_date("birthdate", required("birthdate", f.birthdate)?)?;
        let date = optional_date("date", f.date)?;
        Ok(CardQuery {
            insurer,
            symbol,
            number,
            branch,
            birthdate,
            date,
            limit_consent: f.limit_consent,
        })
    }
}

impl PersonQuery {
    pub fn parse(f: &PersonFields<'_>) -> Result<PersonQuery, QueryError> {
        let raw = required("individual_number", f.individual_number)?;
        let individual_number = IndividualNumber::parse(raw)
            .map_err(|e| QueryError::new("individual_number", format!("{e}: {}", mask_raw(raw))))?;
        let date = optional_date("date", f.date)?;
        Ok(PersonQuery {
            individual_number,
            date,
            limit_consent: f.limit_consent,
        })
    }
}

/// Parses a `limit_consent` flag: `1` means yes; empty (or absent) means no.
pub fn parse_consent(v: Option<&str>) -> Result<bool, QueryError> {
    // Only the documented forms: a `yes`, `no` or `0` taken silently would be a guess at
    // what a client meant about consent.
    match present(v).map(text::trim_space) {
        None => Ok(false),
        Some("1") => Ok(true),
        Some(s) => Err(QueryError::new(
            "limit_consent",
            format!("expected 1 or empty, got {}", quote_raw(s)),
        )),
    }
}

/// The outcome of a lookup, borrowing the records it names from the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    /// 1, with the covering record.
    Eligible(R),
    /// 2, with the nearest record before the date.
    Invalid(R),
    /// 3, without details.
    InvalidNewerQualification,
    /// 4.
    NotFound,
    /// 5 from a card query: no personal details.
    MultipleCard,
    /// 5 from a person query: every covering record.
    MultiplePerson(Vec<R>),
}

impl<R> Outcome<R> {
    pub fn validity(&self) -> Validity {
        match self {
            Outcome::Eligible(_) => Validity::Eligible,
            Outcome::Invalid(_) => Validity::Invalid,
            Outcome::InvalidNewerQualification => Validity::InvalidNewerQualification,
            Outcome::NotFound => Validity::NotFound,
            Outcome::MultipleCard | Outcome::MultiplePerson(_) => Validity::Multiple,
        }
    }
}

/// The fields of a qualification as an answer shows them (docs/api.md#answer). Implemented by the
/// index's borrowed record view and by the naive model in tests.
pub trait Qualification {
    fn insurer_number(&self) -> &str;
    fn insurer_name(&self) -> &str;
    fn symbol(&self) -> &str;
    fn number(&self) -> &str;
    fn branch(&self) -> Branch;
    fn relationship(&self) -> u8;
    fn name(&self) -> &str;
    fn name_kana(&self) -> &str;
    /// The four texts as UTF-8 bytes, for the answer writer; an index record gives them
    /// without validating each again (see `RecordView`).
    fn symbol_utf8(&self) -> &[u8] {
        self.symbol().as_bytes()
    }
    fn number_utf8(&self) -> &[u8] {
        self.number().as_bytes()
    }
    fn name_utf8(&self) -> &[u8] {
        self.name().as_bytes()
    }
    fn name_kana_utf8(&self) -> &[u8] {
        self.name_kana().as_bytes()
    }
    fn sex(&self) -> u8;
    fn birthdate(&self) -> Date;
    fn qualification_date(&self) -> Date;
    fn disqualification_date(&self) -> Option<Date>;
    fn reason_of_loss(&self) -> Option<&'static str>;
    fn copay_ratio(&self) -> u8;
    fn limit_category(&self) -> Option<&'static str>;
}

/// Writes the answer JSON of docs/api.md#answer on one line, without allocating. Hand-written rather
/// than serde: it is the last step of every query and writes straight from the mmap.
pub fn write_answer<R: Qualification>(
    out: &mut Vec<u8>,
    outcome: &Outcome<R>,
    date: Date,
    generation: &str,
    limit_consent: bool,
) {
    write_answer_head(out, outcome.validity(), date, generation);
    match outcome {
        Outcome::Eligible(r) | Outcome::Invalid(r) => {
            out.extend_from_slice(b",\"qualification\":");
            write_qualification(out, r, limit_consent);
        }
        Outcome::MultiplePerson(rs) => {
            out.extend_from_slice(b",\"qualifications\":[");
            for (i, r) in rs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_qualification(out, r, limit_consent);
            }
            out.push(b']');
        }
        Outcome::InvalidNewerQualification | Outcome::NotFound | Outcome::MultipleCard => {}
    }
    out.push(b'}');
}

/// `{"validity":…,"validity_name":…,"date":…,"generation":…`, what every answer begins with.
pub(crate) fn write_answer_head(out: &mut Vec<u8>, v: Validity, date: Date, generation: &str) {
    out.extend_from_slice(b"{\"validity\":");
    out.push(b'0' + v.code());
    out.extend_from_slice(b",\"validity_name\":\"");
    out.extend_from_slice(v.as_str().as_bytes());
    out.extend_from_slice(b"\",\"date\":\"");
    date.write_iso(out);
    out.extend_from_slice(b"\",\"generation\":");
    write_json_str(out, generation);
}

fn write_qualification<R: Qualification>(out: &mut Vec<u8>, r: &R, limit_consent: bool) {
    out.extend_from_slice(b"{\"insurer_number\":");
    write_json_str(out, r.insurer_number());
    out.extend_from_slice(b",\"insurer_name\":");
    write_json_str(out, r.insurer_name());
    out.extend_from_slice(b",\"symbol\":");
    // A card without a symbol (every 後期高齢者 card): absent, so null (docs/api.md#answer).
    match r.symbol_utf8() {
        b"" => out.extend_from_slice(b"null"),
        symbol => write_json_utf8(out, symbol),
    }
    out.extend_from_slice(b",\"number\":");
    write_json_utf8(out, r.number_utf8());
    out.extend_from_slice(b",\"branch\":\"");
    out.extend_from_slice(&r.branch().as_bytes());
    out.extend_from_slice(b"\",\"relationship\":");
    write_small_int(out, r.relationship());
    out.extend_from_slice(b",\"name\":");
    write_json_utf8(out, r.name_utf8());
    out.extend_from_slice(b",\"name_kana\":");
    write_json_utf8(out, r.name_kana_utf8());
    out.extend_from_slice(b",\"sex\":");
    write_small_int(out, r.sex());
    out.extend_from_slice(b",\"birthdate\":");
    write_date(out, Some(r.birthdate()));
    out.extend_from_slice(b",\"qualification_date\":");
    write_date(out, Some(r.qualification_date()));
    out.extend_from_slice(b",\"disqualification_date\":");
    write_date(out, r.disqualification_date());
    out.extend_from_slice(b",\"reason_of_loss\":");
    write_opt_code(out, r.reason_of_loss());
    out.extend_from_slice(b",\"copay_ratio\":");
    write_small_int(out, r.copay_ratio());
    out.extend_from_slice(b",\"limit_category\":");
    write_opt_code(out, r.limit_category().filter(|_| limit_consent));
    out.push(b'}');
}

fn write_small_int(out: &mut Vec<u8>, n: u8) {
    if n >= 100 {
        out.push(b'0' + n / 100);
    }
    if n >= 10 {
        out.push(b'0' + n / 10 % 10);
    }
    out.push(b'0' + n % 10);
}

fn write_date(out: &mut Vec<u8>, d: Option<Date>) {
    match d {
        Some(d) => {
            out.push(b'"');
            d.write_iso(out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn write_opt_code(out: &mut Vec<u8>, code: Option<&str>) {
    match code {
        Some(c) => write_json_str(out, c),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(fields: &[(&str, &str)]) -> Result<CardQuery, QueryError> {
        let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
        CardQuery::parse(&CardFields {
            insurer_number: get("insurer_number"),
            symbol: get("symbol"),
            number: get("number"),
            branch: get("branch"),
            birthdate: get("birthdate"),
            date: get("date"),
            limit_consent: false,
        })
    }

    #[test]
    fn card_query_errors_name_the_field() {
        let base = [
            ("insurer_number", "06139992"),
            ("number", "3456"),
            ("birthdate", "1980-01-23"),
        ];
        let check = |over: &[(&'static str, &'static str)], field: Option<&str>| {
            let mut f: Vec<(&str, &str)> = base.to_vec();
            for (k, v) in over {
                f.retain(|(fk, _)| fk != k);
                f.push((k, v));
            }
            let got = card(&f).err().map(|e| e.field);
            assert_eq!(got, field, "{over:?}");
        };
        // 0613999 → check digit 2 (a check digit of 8 would be wrong).
        check(&[], None);
        check(&[("insurer_number", "06139998")], Some("insurer_number"));
        check(&[("insurer_number", "")], Some("insurer_number"));
        check(&[("number", " ")], Some("number"));
        check(&[("number", "123456789012345678901")], Some("number"));
        check(&[("branch", "123")], Some("branch"));
        check(&[("branch", "1")], None);
        check(&[("birthdate", "H31.05.01")], Some("birthdate"));
        check(&[("birthdate", "")], Some("birthdate"));
        check(&[("date", "2026-02-30")], Some("date"));
        check(&[("symbol", "１２"), ("number", "００３４５６")], None);
    }

    #[test]
    fn reused_buffers_give_the_same_query() {
        for (symbol, number) in [
            ("12", "003456"),
            ("", "3456"),
            ("１ ２", "ab-1"),
            (" ", "0"),
        ] {
            let f = CardFields {
                insurer_number: Some("06139992"),
                symbol: Some(symbol),
                number: Some(number),
                birthdate: Some("1980-01-23"),
                ..CardFields::default()
            };
            let stale = || "left over from the last query".to_string();
            assert_eq!(
                CardQuery::parse_reusing(&f, stale(), stale()),
                CardQuery::parse(&f),
                "{symbol:?} {number:?}"
            );
        }
    }

    #[test]
    fn person_query_error_masks_the_number() {
        let e = PersonQuery::parse(&PersonFields {
            individual_number: Some("123456789019"),
            date: None,
            limit_consent: false,
        })
        .unwrap_err();
        assert_eq!(e.field, "individual_number");
        assert!(!e.to_string().contains("123456789019"), "{e}");
        assert!(e.to_string().contains("9019"), "{e}");
    }

    #[test]
    fn consent_flags() {
        assert_eq!(parse_consent(None), Ok(false));
        assert_eq!(parse_consent(Some("")), Ok(false));
        assert_eq!(parse_consent(Some("1")), Ok(true));
        assert_eq!(parse_consent(Some(" 1 ")), Ok(true));
        for undocumented in ["LIMIT", "limit", "yes", "no", "true", "false", "0", "maybe"] {
            assert!(parse_consent(Some(undocumented)).is_err(), "{undocumented}");
        }
    }
}
