//! CSV batches: the columns, a batch read (UTF-8 or CP932), the answers written one row each.

use super::json::KOHI_FIELDS;
use super::{parse_kind, BatchError, Observe, Slot, MAX_BATCH_QUERIES};
use crate::domain::text::{mask_digit_runs, quote_raw};
use crate::domain::{Date, Validity};
use crate::index::{CertificateView, Index};
use crate::query::kohi::{lookup_kohi, KohiOutcome};
use crate::query::{
    parse_consent, CardFields, CardQuery, KohiFields, KohiQuery, Lookup, Outcome, PersonFields,
    PersonQuery, Qualification, Query, QueryError, QueryKind,
};

/// The columns of card and person queries in the CSV form, in the order the answer repeats
/// them.
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

/// Every input column: those of card and person queries, then the public-expense query's own
/// ([`KOHI_FIELDS`]), which the answer repeats after the qualification's fields so that the
/// columns of a card or person answer keep their places.
const ALL_INPUT_COLUMNS: usize = CSV_INPUT_COLUMNS.len() + KOHI_FIELDS.len();

/// The cells of [`CSV_INPUT_COLUMNS`] and then [`KOHI_FIELDS`], by name.
fn input_column(name: &str) -> Option<usize> {
    CSV_INPUT_COLUMNS
        .iter()
        .chain(&KOHI_FIELDS)
        .position(|c| *c == name)
}

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

/// A public-expense answer's columns, after its inputs: the reason of a validity 2, then the
/// certificate's fields prefixed `k_` (`k_institutions` `;`-separated).
const CSV_KOHI_ANSWER_COLUMNS: [&str; 13] = [
    "reason",
    "k_payer_number",
    "k_payer_name",
    "k_program",
    "k_recipient_number",
    "k_name",
    "k_name_kana",
    "k_sex",
    "k_birthdate",
    "k_valid_from",
    "k_valid_to",
    "k_copay_limit_yen",
    "k_institutions",
];

/// Columns of an answer row: 9 inputs, 20 answer cells, 3 public-expense inputs, 13 of its
/// answer.
pub const CSV_ANSWER_CELLS: usize = CSV_INPUT_COLUMNS.len()
    + CSV_ANSWER_COLUMNS.len()
    + KOHI_FIELDS.len()
    + CSV_KOHI_ANSWER_COLUMNS.len();

/// One row of a CSV batch: its cells as given (in [`CSV_INPUT_COLUMNS`] order, then
/// [`KOHI_FIELDS`]) and its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    pub cells: [String; ALL_INPUT_COLUMNS],
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
        let col = input_column(name).ok_or_else(|| {
            BatchError::Malformed(format!(
                "unknown CSV column {}; the columns are {},{}",
                quote_raw(name),
                CSV_INPUT_COLUMNS.join(","),
                KOHI_FIELDS.join(",")
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
        let mut cells: [String; ALL_INPUT_COLUMNS] = Default::default();
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

/// The cells a query of each kind does not read: given, they are an error naming the first
/// (as the JSON form refuses the field), but for the card cells of a person query, which
/// spreadsheets fill on every row.
fn foreign_cell(kind: QueryKind, c: &[String; ALL_INPUT_COLUMNS]) -> Result<(), QueryError> {
    // As the JSON form: a field given, even blank, is given (but for a card's individual
    // number, which has always been read trimmed).
    let given = |i: usize| !c[i].is_empty();
    let (columns, why): (&[usize], &str) = match kind {
        QueryKind::Card if !c[6].trim().is_empty() => (&[6], "is not an input of a card query"),
        QueryKind::Card | QueryKind::Person => (&[9, 10, 11], "is an input of a kohi query only"),
        QueryKind::Kohi => (&[1, 2, 3, 4, 6, 8], "is not an input of a kohi query"),
    };
    match columns.iter().find(|&&i| given(i)) {
        Some(&i) => Err(QueryError::new(column_name(i), why)),
        None => Ok(()),
    }
}

fn column_name(i: usize) -> &'static str {
    CSV_INPUT_COLUMNS
        .iter()
        .chain(&KOHI_FIELDS)
        .nth(i)
        .copied()
        .unwrap_or("row")
}

fn csv_query(c: &[String; ALL_INPUT_COLUMNS]) -> Result<Query, QueryError> {
    let kind = parse_kind(Some(&c[0]))?;
    foreign_cell(kind, c)?;
    match kind {
        QueryKind::Card => CardQuery::parse(&CardFields {
            insurer_number: opt(&c[1]),
            symbol: opt(&c[2]),
            number: opt(&c[3]),
            branch: opt(&c[4]),
            birthdate: opt(&c[5]),
            date: opt(&c[7]),
            limit_consent: parse_consent(opt(&c[8]))?,
        })
        .map(Query::Card),
        QueryKind::Person => PersonQuery::parse(&PersonFields {
            individual_number: opt(&c[6]),
            date: opt(&c[7]),
            limit_consent: parse_consent(opt(&c[8]))?,
        })
        .map(Query::Person),
        QueryKind::Kohi => KohiQuery::parse(&KohiFields {
            payer_number: opt(&c[9]),
            recipient_number: opt(&c[10]),
            birthdate: opt(&c[5]),
            date: opt(&c[7]),
            institution_code: opt(&c[11]),
        })
        .map(Query::Kohi),
    }
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
    let header = CSV_INPUT_COLUMNS
        .iter()
        .chain(CSV_ANSWER_COLUMNS.iter())
        .chain(KOHI_FIELDS.iter())
        .chain(CSV_KOHI_ANSWER_COLUMNS.iter());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(header);
    let mut fields: Vec<String> = Vec::with_capacity(CSV_ANSWER_CELLS);
    let mut kohi: Vec<String> = Vec::with_capacity(CSV_KOHI_ANSWER_COLUMNS.len());
    for row in rows {
        fields.clear();
        kohi.clear();
        let (card_cells, kohi_cells) = row.cells.split_at(CSV_INPUT_COLUMNS.len());
        fields.extend(card_cells.iter().map(|c| echo(c)));
        match &row.query {
            Err(e) => {
                fields.extend(["".into(), "".into(), e.to_string()]);
                observe(Slot::Malformed(parse_kind(Some(&row.cells[0])).ok()));
            }
            Ok(q) => {
                let v = csv_answer(index, q, today, &mut fields, &mut kohi);
                observe(Slot::Answered(q, v));
            }
        }
        fields.resize(
            CSV_INPUT_COLUMNS.len() + CSV_ANSWER_COLUMNS.len(),
            String::new(),
        );
        fields.extend(kohi_cells.iter().map(|c| echo(c)));
        fields.append(&mut kohi);
        fields.resize(CSV_ANSWER_CELLS, String::new());
        let _ = w.write_record(&fields);
    }
    *out = w.into_inner().unwrap_or_default();
}

/// An input cell echoed, but never an individual number in clear (whatever column it was sent
/// in): rows are matched by their order.
fn echo(cell: &str) -> String {
    mask_digit_runs(cell).into_owned()
}

/// The answer cells of query `q` into `fields` (validity to the `q_` fields) and, for a
/// public-expense query, its own into `kohi`.
fn csv_answer<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &Query,
    today: Date,
    fields: &mut Vec<String>,
    kohi: &mut Vec<String>,
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
        Query::Kohi(k) => {
            let outcome = lookup_kohi(index, k, today);
            let v = outcome.validity();
            answer_head(index, v, k.date.unwrap_or(today), fields);
            csv_public_expense(&outcome, kohi);
            return v;
        }
    };
    let v = outcome.validity();
    answer_head(index, v, date, fields);
    if let Outcome::Eligible(r) | Outcome::Invalid(r) = &outcome {
        csv_qualification(r, consent, fields);
    }
    v
}

/// `validity,validity_name,error,answer_date,generation`.
fn answer_head<B: AsRef<[u8]>>(
    index: &Index<B>,
    v: Validity,
    date: Date,
    fields: &mut Vec<String>,
) {
    fields.extend([
        v.code().to_string(),
        v.as_str().to_owned(),
        String::new(),
        iso(Some(date)),
        index.generation().to_owned(),
    ]);
}

fn iso(d: Option<Date>) -> String {
    d.map(|d| {
        let mut b = Vec::with_capacity(10);
        d.write_iso(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    })
    .unwrap_or_default()
}

/// A public-expense answer's `reason` and `k_` cells.
fn csv_public_expense(outcome: &KohiOutcome<CertificateView<'_>>, kohi: &mut Vec<String>) {
    let (c, reason) = match outcome {
        KohiOutcome::Eligible(c) => (c, ""),
        KohiOutcome::Invalid(c, reason) => (c, reason.as_str()),
        KohiOutcome::NotFound | KohiOutcome::Multiple => return,
    };
    let payer = c.payer();
    let number = payer.number.as_str();
    kohi.extend([
        reason.to_owned(),
        number.to_owned(),
        payer.name.clone(),
        number[..2].to_owned(),
        c.recipient().to_owned(),
        c.name().to_owned(),
        c.name_kana().to_owned(),
        c.sex().map_or(String::new(), |s| s.code().to_string()),
        iso(Some(c.birthdate())),
        iso(Some(c.valid_from())),
        iso(c.valid_to()),
        c.copay_limit_yen().map_or(String::new(), |y| y.to_string()),
        c.institutions().collect::<Vec<_>>().join(";"),
    ]);
}

fn csv_qualification<R: Qualification>(r: &R, consent: bool, fields: &mut Vec<String>) {
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
                    assert_eq!(r.len(), CSV_ANSWER_CELLS, "{r:?}");
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
                "bogus,,,,,,,,,,,kind: must be card, person or kohi, not \"bogus\"",
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
                "unknown CSV column \"nope\"; the columns are kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent,payer_number,recipient_number,institution_code".into(),
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

    /// Public-expense rows beside card rows: their own columns, each cell of another kind
    /// refused by name, and the certificate's fields after the card's.
    #[test]
    fn csv_public_expense_queries() {
        use crate::domain::{Certificate, InstitutionCode, PayerNumber, Sex};
        let payer = PayerNumber::from_body("5413601").unwrap();
        let clinic = InstitutionCode::parse("0110113719").unwrap();
        let cert = Certificate {
            payer,
            recipient: "0123455".into(),
            individual_number: None,
            name: "難病 花子".into(),
            name_kana: "ナンビョウ ハナコ".into(),
            sex: Some(Sex::Female),
            birthdate: d("1980-01-23"),
            valid_from: d("2026-04-01"),
            valid_to: Some(d("2027-03-31")),
            copay_limit_yen: Some(10_000),
            institutions: vec![clinic],
        };
        let files = crate::testing::build_with_kohi(
            crate::testing::three_cards_rows("12"),
            &[(payer, "東京都 難病")],
            &[cert],
            "2026-11-24",
            "g-test",
        );
        let index = Index::open(files, crate::domain::PersonKey::demo()).unwrap();
        let body = format!(
            "kind,payer_number,recipient_number,birthdate,date,institution_code,insurer_number,number,symbol\r\n\
             kohi,{payer},0123455,1980-01-23,2027-03-31,0110113719,,,\r\n\
             kohi,{payer},0123455,1980-01-23,2027-04-01,,,,\r\n\
             kohi,{payer},0123455,1980-01-23,2026-11-24,0110113727,,,\r\n\
             kohi,{payer},0123456,1980-01-23,,,,,\r\n\
             kohi,{payer},0123455,1980-01-23,,,33120015,,\r\n\
             card,,,1980-01-23,,,33120015,3456,12\r\n\
             card,{payer},,1980-01-23,,,33120015,3456,12\r\n"
        );
        let rows = parse_csv(body.as_bytes()).unwrap();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        write_csv_answers(&index, &rows, d("2026-11-24"), &mut out, &mut |slot| {
            seen.push(matches!(slot, Slot::Answered(..)))
        });
        assert_eq!(seen, [true, true, true, false, false, true, false]);
        let text = String::from_utf8(out).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header.len(), CSV_ANSWER_CELLS);
        assert_eq!(
            &header[29..33],
            [
                "payer_number",
                "recipient_number",
                "institution_code",
                "reason"
            ]
        );
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let cells = [
            "validity",
            "error",
            "reason",
            "k_valid_to",
            "k_institutions",
            "k_sex",
            "q_number",
        ];
        let got: Vec<String> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                assert_eq!(r.len(), CSV_ANSWER_CELLS);
                cells
                    .iter()
                    .map(|c| &r[col(c)])
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        assert_eq!(
            got,
            [
                // valid_to inclusive; the designated institution asking.
                "1|||2027-03-31|0110113719|2|",
                "2||expired|2027-03-31|0110113719|2|",
                "2||other_institution|2027-03-31|0110113719|2|",
                "|recipient_number: bad check digit: \"0123456\"|||||",
                "|insurer_number: is not an input of a kohi query|||||",
                "1||||||3456",
                "|payer_number: is an input of a kohi query only|||||",
            ]
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
            "card,33120015,12,3457,,1980-01-23,,2015-06-01,,1,eligible,,2015-06-01,g-test,33120015,地方職員共済組合,12,3457,01,1,山田 太郎,ヤマダ タロウ,1,1980-01-23,2010-04-01,2016-01-01,03,30,,,,,,,,,,,,,,,,,"
        );
    }
}
