//! CSV batches: the columns, a batch read (UTF-8 or CP932), the answers written one row each.

use super::{parse_kind, BatchError, Observe, Slot, MAX_BATCH_QUERIES};
use crate::domain::text::{mask_digit_runs, quote_raw};
use crate::domain::{Date, Validity};
use crate::index::Index;
use crate::query::{
    parse_consent, CardFields, CardQuery, Lookup, Outcome, PersonFields, PersonQuery,
    Qualification, Query, QueryError, QueryKind,
};

/// The columns of the CSV form, in the order the answer repeats them.
pub const CSV_INPUT_COLUMNS: [&str; 9] = [
    "kind",
    "insurer_number",
    "symbol",
    "number",
    "branch",
    "birthdate",
    "individual_number",
    "date",
    "limit_consent",
];

const CSV_ANSWER_COLUMNS: [&str; 20] = [
    "validity",
    "validity_name",
    "error",
    "answer_date",
    "generation",
    "q_insurer_number",
    "q_insurer_name",
    "q_symbol",
    "q_number",
    "q_branch",
    "q_relationship",
    "q_name",
    "q_name_kana",
    "q_sex",
    "q_birthdate",
    "q_qualification_date",
    "q_disqualification_date",
    "q_reason_of_loss",
    "q_copay_ratio",
    "q_limit_category",
];

/// One row of a CSV batch: its cells as given (in [`CSV_INPUT_COLUMNS`] order) and its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    pub cells: [String; 9],
    pub query: Result<Query, QueryError>,
}

/// Parses a CSV batch (docs/api.md#batch). Its encoding is chosen as a snapshot file's is (docs/delivery.md):
/// UTF-8 (BOM optional) when it is valid UTF-8, else CP932 (Shift_JIS, what Japanese Windows
/// software writes) when it decodes without a single replacement. The answers are UTF-8.
pub fn parse_csv(body: &[u8]) -> Result<Vec<CsvRow>, BatchError> {
    let decoded = crate::snapshot::decode::decode(body)
        .map_err(|why| BatchError::Malformed(format!("the CSV {why}")))?;
    let body: &[u8] = decoded.text.as_bytes();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| BatchError::Malformed(format!("CSV header: {e}")))?
        .clone();
    let mut columns = Vec::with_capacity(header.len());
    for name in header.iter() {
        let name = name.trim();
        let col = CSV_INPUT_COLUMNS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| {
                BatchError::Malformed(format!(
                    "unknown CSV column {}; the columns are {}",
                    quote_raw(name),
                    CSV_INPUT_COLUMNS.join(",")
                ))
            })?;
        if columns.contains(&col) {
            return Err(BatchError::Malformed(format!(
                "CSV column {name} appears twice"
            )));
        }
        columns.push(col);
    }
    if !columns.contains(&0) {
        return Err(BatchError::Malformed(
            "CSV header has no kind column".into(),
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| BatchError::Malformed(format!("CSV: {e}")))?;
        // No query field holds a line break: a cell with one is a quote left open, which
        // would swallow the rows after it into one cell, their queries lost.
        if record.iter().any(|cell| cell.contains(['\n', '\r'])) {
            let line = record.position().map_or(0, |p| p.line());
            return Err(BatchError::Malformed(format!(
                "CSV line {line}: a quoted cell runs over more than one line (a quote left open?)"
            )));
        }
        if rows.len() == MAX_BATCH_QUERIES {
            return Err(BatchError::TooMany(MAX_BATCH_QUERIES + 1));
        }
        let mut cells: [String; 9] = Default::default();
        for (value, &col) in record.iter().zip(&columns) {
            cells[col] = value.to_owned();
        }
        let query = if record.len() > columns.len() {
            Err(QueryError::new(
                "row",
                format!(
                    "has {} cells; the header names {}",
                    record.len(),
                    columns.len()
                ),
            ))
        } else {
            csv_query(&cells)
        };
        rows.push(CsvRow { cells, query });
    }
    Ok(rows)
}

fn opt(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn csv_query(c: &[String; 9]) -> Result<Query, QueryError> {
    let consent = parse_consent(opt(&c[8]))?;
    match parse_kind(Some(&c[0]))? {
        QueryKind::Card => {
            if !c[6].trim().is_empty() {
                return Err(QueryError::new(
                    "individual_number",
                    "is not an input of a card query",
                ));
            }
            CardQuery::parse(&CardFields {
                insurer_number: opt(&c[1]),
                symbol: opt(&c[2]),
                number: opt(&c[3]),
                branch: opt(&c[4]),
                birthdate: opt(&c[5]),
                date: opt(&c[7]),
                limit_consent: consent,
            })
            .map(Query::Card)
        }
        QueryKind::Person => PersonQuery::parse(&PersonFields {
            individual_number: opt(&c[6]),
            date: opt(&c[7]),
            limit_consent: consent,
        })
        .map(Query::Person),
        QueryKind::Kohi => Err(not_in_csv_batches()),
    }
}

/// The CSV form has no columns for public-expense queries yet: JSON batches take them.
fn not_in_csv_batches() -> QueryError {
    QueryError::new(
        "kind",
        "kohi queries are not answered in CSV batches yet; send them in a JSON batch or to POST /v1/kohi",
    )
}

/// Answers a CSV batch from `index` into `out` as CSV, in order.
pub fn write_csv_answers<B: AsRef<[u8]>>(
    index: &Index<B>,
    rows: &[CsvRow],
    today: Date,
    out: &mut Vec<u8>,
    observe: Observe<'_>,
) {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(std::mem::take(out));
    let header = CSV_INPUT_COLUMNS.iter().chain(CSV_ANSWER_COLUMNS.iter());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(header);
    let mut fields: Vec<String> = Vec::with_capacity(29);
    for row in rows {
        fields.clear();
        // The input echoed, but never an individual number in clear (whatever column it was
        // sent in): rows are matched by their order.
        fields.extend(row.cells.iter().map(|c| mask_digit_runs(c).into_owned()));
        // A row made by hand with a public-expense query (`csv_query` makes none): refused as
        // `csv_query` refuses the kind.
        let refused;
        let query = match &row.query {
            Ok(Query::Kohi(_)) => {
                refused = Err(not_in_csv_batches());
                &refused
            }
            other => other,
        };
        match query {
            Err(e) => {
                fields.extend(["".into(), "".into(), e.to_string()]);
                fields.resize(29, String::new());
                observe(Slot::Malformed(parse_kind(Some(&row.cells[0])).ok()));
            }
            Ok(q) => {
                let v = csv_answer(index, q, today, &mut fields);
                observe(Slot::Answered(q, v));
            }
        }
        let _ = w.write_record(&fields);
    }
    *out = w.into_inner().unwrap_or_default();
}

fn csv_answer<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &Query,
    today: Date,
    fields: &mut Vec<String>,
) -> Validity {
    let (outcome, date, consent) = match q {
        Query::Card(c) => (
            index.card(c, today),
            c.date.unwrap_or(today),
            c.limit_consent,
        ),
        Query::Person(p) => (
            index.person(p, today),
            p.date.unwrap_or(today),
            p.limit_consent,
        ),
        // Refused before this (`write_csv_answers`).
        Query::Kohi(_) => (Outcome::NotFound, today, false),
    };
    let v = outcome.validity();
    let mut iso = Vec::with_capacity(10);
    date.write_iso(&mut iso);
    fields.extend([
        v.code().to_string(),
        v.as_str().to_owned(),
        String::new(),
        String::from_utf8_lossy(&iso).into_owned(),
        index.generation().to_owned(),
    ]);
    match &outcome {
        Outcome::Eligible(r) | Outcome::Invalid(r) => csv_qualification(r, consent, fields),
        _ => fields.resize(29, String::new()),
    }
    v
}

fn csv_qualification<R: Qualification>(r: &R, consent: bool, fields: &mut Vec<String>) {
    let iso = |d: Option<Date>| {
        d.map(|d| {
            let mut b = Vec::with_capacity(10);
            d.write_iso(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
        .unwrap_or_default()
    };
    fields.extend([
        r.insurer_number().to_owned(),
        r.insurer_name().to_owned(),
        r.symbol().to_owned(),
        r.number().to_owned(),
        String::from_utf8_lossy(&r.branch().as_bytes()).into_owned(),
        r.relationship().to_string(),
        r.name().to_owned(),
        r.name_kana().to_owned(),
        r.sex().to_string(),
        iso(Some(r.birthdate())),
        iso(Some(r.qualification_date())),
        iso(r.disqualification_date()),
        r.reason_of_loss().unwrap_or("").to_owned(),
        r.copay_ratio().to_string(),
        r.limit_category()
            .filter(|_| consent)
            .unwrap_or("")
            .to_owned(),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day as d, individual_number as person, three_cards_index};

    /// Answers a CSV batch and returns its lines with the first `keep` answer columns.
    fn check_csv(input: &str, keep: usize, expected: Result<&[&str], BatchError>) {
        let index = three_cards_index("12");
        let got = parse_csv(input.as_bytes()).map(|rows| {
            let mut out = Vec::new();
            write_csv_answers(&index, &rows, d("2026-11-24"), &mut out, &mut |_| {});
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(out.as_slice());
            reader
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    assert_eq!(r.len(), 29, "{r:?}");
                    r.iter().take(9 + keep).collect::<Vec<_>>().join(",")
                })
                .collect::<Vec<_>>()
        });
        let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, expected, "{input}");
    }

    #[test]
    fn csv_batches() {
        let header = "kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent";
        let p = person(22345678901);
        check_csv(
            &format!("\u{feff}{header}\r\ncard,33120015,12,3456,,1980-01-23,,,1\r\nperson,,,,,,{p},2015-01-01,\r\ncard,33120015,12,3456,,1980-02-30,,,\r\nbogus,,,,,,,,\r\n"),
            3,
            Ok(&[
                &format!("{header},validity,validity_name,error"),
                "card,33120015,12,3456,,1980-01-23,,,1,1,eligible,",
                // The individual number is echoed masked.
                &format!("person,,,,,,********{},2015-01-01,,1,eligible,", &p[8..]),
                "card,33120015,12,3456,,1980-02-30,,,,,,birthdate: no such day: \"1980-02-30\"",
                "bogus,,,,,,,,,,,kind: must be card or person, not \"bogus\"",
            ]),
        );
        // Columns in another order, some absent; the answer repeats them in the standard order.
        check_csv(
            "number,kind,birthdate,insurer_number,symbol\n3457,card,1980-01-23,33120015,12\n",
            2,
            Ok(&[
                &format!("{header},validity,validity_name"),
                "card,33120015,12,3457,,1980-01-23,,,,3,invalid_newer_qualification",
            ]),
        );
        check_csv(
            "kind,insurer_number\ncard,33120015,extra\n",
            3,
            Ok(&[
                &format!("{header},validity,validity_name,error"),
                "card,33120015,,,,,,,,,,row: has 3 cells; the header names 2",
            ]),
        );
        check_csv(
            "kind,nope\n",
            0,
            Err(BatchError::Malformed(
                "unknown CSV column \"nope\"; the columns are kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent".into(),
            )),
        );
        check_csv(
            "number\n1\n",
            0,
            Err(BatchError::Malformed(
                "CSV header has no kind column".into(),
            )),
        );
        let many = format!("kind\n{}", "card\n".repeat(MAX_BATCH_QUERIES + 1));
        check_csv(&many, 0, Err(BatchError::TooMany(MAX_BATCH_QUERIES + 1)));
        // Regression: a quote left open swallowed the rows after it into one cell; three
        // rows got two answers.
        check_csv(
            "kind,individual_number\nperson,1\nperson,\"2\nperson,3\nperson,4\n",
            0,
            Err(BatchError::Malformed(
                "CSV line 3: a quoted cell runs over more than one line (a quote left open?)"
                    .into(),
            )),
        );
    }

    /// A batch from Japanese Windows software, in CP932: answered as the same batch in UTF-8.
    #[test]
    fn csv_batches_in_cp932() {
        let text = "kind,insurer_number,symbol,number,birthdate,date\r\ncard,３３１２００１５,１２,３４５６,Ｓ５５．１．２３,Ｒ６．１１．２４\r\n";
        let (cp932, _, unmappable) = encoding_rs::SHIFT_JIS.encode(text);
        assert!(!unmappable && std::str::from_utf8(&cp932).is_err());
        let answer = |body: &[u8]| {
            let rows = parse_csv(body).unwrap();
            let mut out = Vec::new();
            write_csv_answers(
                &three_cards_index("12"),
                &rows,
                d("2026-11-24"),
                &mut out,
                &mut |_| {},
            );
            String::from_utf8(out).unwrap()
        };
        let got = answer(&cp932);
        assert_eq!(got, answer(text.as_bytes()));
        assert!(
            got.contains(",Ｓ５５．１．２３,,Ｒ６．１１．２４,,1,eligible,"),
            "{got}"
        );
        let bad = parse_csv(b"kind\r\ncard\r\n\xff\xff\r\n").unwrap_err();
        assert_eq!(
            bad,
            BatchError::Malformed(
                "the CSV is neither UTF-8 nor CP932 (Shift_JIS); first byte invalid as UTF-8 is on line 3, as CP932 on line 3".into()
            )
        );
        // A row pasted in CP932 under a UTF-8 one: each alone decodes as CP932.
        let mut mixed = "kind,symbol\r\ncard,山田\r\n".as_bytes().to_vec();
        mixed.extend_from_slice(&encoding_rs::SHIFT_JIS.encode("card,山田\r\n").0);
        assert_eq!(
            parse_csv(&mixed).unwrap_err(),
            BatchError::Malformed(
                "the CSV mixes encodings: line 2 is UTF-8 but line 3 is not; save the whole file in one encoding".into()
            )
        );
    }

    #[test]
    fn csv_qualification_fields() {
        let index = three_cards_index("12");
        let rows = parse_csv(b"kind,insurer_number,symbol,number,birthdate,date\ncard,33120015,12,3457,1980-01-23,2015-06-01\n").unwrap();
        let mut out = Vec::new();
        write_csv_answers(&index, &rows, d("2026-11-24"), &mut out, &mut |_| {});
        let text = String::from_utf8(out).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "card,33120015,12,3457,,1980-01-23,,2015-06-01,,1,eligible,,2015-06-01,g-test,33120015,地方職員共済組合,12,3457,01,1,山田 太郎,ヤマダ タロウ,1,1980-01-23,2010-04-01,2016-01-01,03,30,"
        );
    }
}
