//! Data-driven tests of the row rules and file handling: each `check` is one boundary, with
//! its passing and failing neighbours side by side.

use super::*;
use crate::domain::{Date, InsurerNumber, Record};
use std::path::{Path, PathBuf};

pub(super) const HEADER: [&str; 15] = [
    "insurer_number",
    "symbol",
    "number",
    "branch",
    "individual_number",
    "name",
    "name_kana",
    "sex",
    "birthdate",
    "relationship",
    "qualification_date",
    "disqualification_date",
    "reason_of_loss",
    "copay_ratio",
    "limit_category",
];

/// A valid row of insurer 33120015 (国家公務員共済, not 後期高齢者), age 46 on the snapshot date.
pub(super) const BASE: [&str; 15] = [
    "33120015",
    "12",
    "3456",
    "01",
    "123456789018",
    "山田 太郎",
    "ヤマダ タロウ",
    "1",
    "1980-01-23",
    "1",
    "2015-04-01",
    "",
    "",
    "30",
    "",
];

const SNAPSHOT_DATE: &str = "2026-04-01";

fn koki() -> InsurerNumber {
    InsurerNumber::from_body("3913001").expect("valid body")
}

fn ctx(insurer: &str) -> FileContext {
    FileContext {
        file: format!("{insurer}/20260401.csv").into(),
        path: PathBuf::from(format!("SNAPSHOTS/{insurer}/20260401.csv")),
        insurer: InsurerNumber::parse(insurer).expect("test insurer"),
        snapshot_date: Date::parse(SNAPSHOT_DATE).expect("date"),
    }
}

/// CSV text (LF, RFC 4180 quoting where needed) of a header and rows.
pub(super) fn csv_text(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(header).expect("write to memory");
    for r in rows {
        w.write_record(r).expect("write to memory");
    }
    String::from_utf8(w.into_inner().expect("flush")).expect("utf-8")
}

fn base_with(overrides: &[(&str, &str)]) -> Vec<String> {
    let mut row: Vec<String> = BASE.iter().map(|s| s.to_string()).collect();
    for (col, value) in overrides {
        let i = HEADER
            .iter()
            .position(|h| h == col)
            .unwrap_or_else(|| panic!("no column {col}"));
        row[i] = value.to_string();
    }
    row
}

fn read_all(text: &[u8], ctx: &FileContext) -> (Vec<RowOutcome>, FileSummary) {
    let mut out = Vec::new();
    let summary = read_snapshot_bytes(text, ctx, |o| out.push(o)).expect("file accepted");
    assert_eq!(summary.rows_read, summary.indexed + summary.rejected);
    assert_eq!(summary.rows_read, out.len() as u64);
    (out, summary)
}

/// "ok", "ok W2 copay_ratio W4 name_kana", or "R3 branch".
fn render(o: &RowOutcome) -> String {
    match o {
        RowOutcome::Indexed { warnings, .. } => std::iter::once("ok".to_owned())
            .chain(warnings.iter().map(|w| format!("{} {}", w.rule, w.field)))
            .collect::<Vec<_>>()
            .join(" "),
        RowOutcome::Rejected(i) => format!("{} {}", i.rule, i.field),
    }
}

/// One row of the base record with `overrides`, in a file of `insurer`; checks its outcome.
fn check_in(insurer: &str, overrides: &[(&str, &str)], expected: &str) -> RowOutcome {
    let text = csv_text(&HEADER, &[base_with(overrides)]);
    let (mut out, _) = read_all(text.as_bytes(), &ctx(insurer));
    assert_eq!(out.len(), 1);
    let o = out.remove(0);
    assert_eq!(render(&o), expected, "{overrides:?}\n{o:?}");
    o
}

fn check(overrides: &[(&str, &str)], expected: &str) -> RowOutcome {
    check_in("33120015", overrides, expected)
}

fn record(o: RowOutcome) -> Record {
    match o {
        RowOutcome::Indexed { record, .. } => record,
        RowOutcome::Rejected(i) => panic!("rejected: {i:?}"),
    }
}

fn reason(o: &RowOutcome) -> String {
    match o {
        RowOutcome::Indexed { warnings, .. } => warnings
            .iter()
            .map(|w| w.reason.clone())
            .collect::<Vec<_>>()
            .join("; "),
        RowOutcome::Rejected(i) => i.reason.clone(),
    }
}

#[test]
fn base_row_is_indexed_as_written() {
    let r = record(check(&[], "ok"));
    assert_eq!(r.insurer.as_str(), "33120015");
    assert_eq!((r.symbol.as_str(), r.number.as_str()), ("12", "3456"));
    assert_eq!(r.branch.to_string(), "01");
    assert_eq!(
        r.individual_number.map(|n| n.masked()),
        Some("********9018".to_owned())
    );
    assert_eq!(
        (r.name.as_str(), r.name_kana.as_str()),
        ("山田 太郎", "ヤマダ タロウ")
    );
    assert_eq!(r.birthdate.to_string(), "1980-01-23");
    assert_eq!(r.qualification_date.to_string(), "2015-04-01");
    assert_eq!(r.disqualification_date, None);
    assert_eq!(r.copay_ratio.percent(), 30);
}

#[test]
fn r1_insurer_number() {
    check(&[("insurer_number", "33120015")], "ok");
    check(&[("insurer_number", "  33120015")], "ok");
    check(&[("insurer_number", "３３１２００１５")], "ok");
    check(&[("insurer_number", "33120016")], "R1 insurer_number");
    check(&[("insurer_number", "131045")], "R1 insurer_number");
    check(&[("insurer_number", "")], "R1 insurer_number");
    check(&[("insurer_number", "3312001")], "R1 insurer_number");
    check_in("131045", &[("insurer_number", "  131045")], "ok");
    check_in("131045", &[("insurer_number", "１３１０４５")], "ok");
    check_in(
        "131045",
        &[("insurer_number", "131046")],
        "R1 insurer_number",
    );
    let o = check(&[("insurer_number", "131045")], "R1 insurer_number");
    assert_eq!(
        reason(&o),
        "\"131045\" is not the insurer of its directory (33120015)"
    );
}

#[test]
fn r2_symbol_and_number() {
    let twenty = "12345678901234567890";
    let twenty_one = "123456789012345678901";
    check(&[("number", twenty)], "ok");
    check(&[("number", twenty_one)], "R2 number");
    check(&[("number", "")], "R2 number");
    check(&[("number", "  ")], "R2 number");
    check(&[("number", "12;3")], "R2 number");
    check(&[("symbol", "")], "ok");
    check(&[("symbol", &format!("A{}", &twenty[1..]))], "ok");
    check(&[("symbol", &format!("A{twenty}"))], "R2 symbol");
    check(&[("symbol", "記号<1>")], "R2 symbol");
    let r = record(check(&[("symbol", "ＡＢ－１"), ("number", "0012")], "ok"));
    assert_eq!((r.symbol.as_str(), r.number.as_str()), ("AB-1", "12"));
    let r = record(check(&[("symbol", "ｱｲ 12"), ("number", "０３４")], "ok"));
    assert_eq!((r.symbol.as_str(), r.number.as_str()), ("アイ12", "34"));
}

#[test]
fn r3_branch() {
    check(&[("branch", "01")], "ok");
    check(&[("branch", "００")], "ok");
    check(&[("branch", "99")], "ok");
    check(&[("branch", "1")], "R3 branch");
    check(&[("branch", "001")], "R3 branch");
    check(&[("branch", "")], "R3 branch");
    check(&[("branch", "1a")], "R3 branch");
}

#[test]
fn r4_birthdate() {
    // Born on the snapshot date: age 0, 2割 is usual.
    let newborn = [("copay_ratio", "20"), ("qualification_date", SNAPSHOT_DATE)];
    check(
        &[&newborn[..], &[("birthdate", "2026-04-01")]].concat(),
        "ok",
    );
    check(
        &[&newborn[..], &[("birthdate", "2026-04-02")]].concat(),
        "R4 birthdate",
    );
    check(&[("birthdate", "1868-01-25")], "ok W3 birthdate");
    check(&[("birthdate", "1868-01-24")], "R4 birthdate");
    check(&[("birthdate", "M1.1.25")], "ok W3 birthdate");
    check(&[("birthdate", "S55.1.23")], "ok");
    check(&[("birthdate", "3550123")], "ok");
    check(&[("birthdate", "19800123")], "ok");
    check(&[("birthdate", "１９８０－０１－２３")], "ok");
    check(&[("birthdate", "H31.05.01")], "R4 birthdate");
    check(&[("birthdate", "2023-02-29")], "R4 birthdate");
    check(&[("birthdate", "1980/01/23")], "R4 birthdate");
    check(&[("birthdate", "")], "R4 birthdate");
    let o = check(&[("birthdate", "1800-01-01")], "R4 birthdate");
    assert_eq!(reason(&o), "1800-01-01 is before 明治 (1868-01-25)");
}

#[test]
fn r5_qualification_date() {
    check(&[("qualification_date", "1980-01-23")], "ok");
    check(
        &[("qualification_date", "1980-01-22")],
        "R5 qualification_date",
    );
    check(&[("qualification_date", "R3.07.09")], "ok");
    check(&[("qualification_date", "５０３０７０９")], "ok");
    check(&[("qualification_date", "")], "R5 qualification_date");
    check(&[("qualification_date", "soon")], "R5 qualification_date");
}

#[test]
fn r6_disqualification_date() {
    let q = ("qualification_date", "2015-04-01");
    check(&[q, ("disqualification_date", "2015-04-02")], "ok");
    check(
        &[q, ("disqualification_date", "2015-04-01")],
        "R6 disqualification_date",
    );
    check(
        &[q, ("disqualification_date", "2015-03-31")],
        "R6 disqualification_date",
    );
    check(
        &[q, ("disqualification_date", "2015-13-01")],
        "R6 disqualification_date",
    );
    check(&[q, ("disqualification_date", " ")], "ok");
    let r = record(check(
        &[
            q,
            ("disqualification_date", "H27.4.2"),
            ("reason_of_loss", "03"),
        ],
        "ok",
    ));
    assert_eq!(
        r.disqualification_date.map(|d| d.to_string()).as_deref(),
        Some("2015-04-02")
    );
}

#[test]
fn r7_codes() {
    check(&[("sex", "3")], "ok");
    check(&[("sex", "２")], "ok");
    check(&[("sex", "4")], "R7 sex");
    check(&[("sex", "")], "R7 sex");
    check(&[("relationship", "2")], "ok");
    check(&[("relationship", "0")], "R7 relationship");
    check(&[("reason_of_loss", "99")], "ok");
    check(&[("reason_of_loss", "1")], "R7 reason_of_loss");
    check(&[("copay_ratio", "3割")], "ok");
    check(&[("copay_ratio", "３割")], "ok");
    check(&[("copay_ratio", "1割")], "ok W2 copay_ratio");
    check(&[("copay_ratio", "40")], "R7 copay_ratio");
    check(&[("copay_ratio", "")], "R7 copay_ratio");
    check(&[("limit_category", "A03")], "ok");
    check(&[("limit_category", "B10")], "ok");
    check(&[("limit_category", "A07")], "R7 limit_category");
    let o = check(&[("sex", "9")], "R7 sex");
    assert_eq!(reason(&o), "\"9\" is not a listed code (1, 2, 3)");
}

#[test]
fn first_failing_rule_wins() {
    check(
        &[("insurer_number", "1"), ("number", "")],
        "R1 insurer_number",
    );
    check(&[("number", ""), ("symbol", &"x".repeat(30))], "R2 number");
    check(&[("branch", "1"), ("sex", "9")], "R3 branch");
    check(
        &[("birthdate", "x"), ("qualification_date", "x")],
        "R4 birthdate",
    );
    check(
        &[("disqualification_date", "x"), ("sex", "9")],
        "R6 disqualification_date",
    );
    check(&[("sex", "9"), ("limit_category", "Z")], "R7 sex");
}

#[test]
fn w1_individual_number() {
    check(&[("individual_number", "")], "ok");
    check(&[("individual_number", "１２３４５６７８９０１８")], "ok");
    let o = check(
        &[("individual_number", "123456789019")],
        "ok W1 individual_number",
    );
    assert_eq!(
        reason(&o),
        "********9019 bad check digit; the row is kept without it"
    );
    assert_eq!(record(o).individual_number, None);
    check(
        &[("individual_number", "12345678901")],
        "ok W1 individual_number",
    );
    check(
        &[("individual_number", "12345678901x")],
        "ok W1 individual_number",
    );
}

#[test]
fn w2_copay_for_age() {
    // Age on 2026-04-01: born 2020-04-02 is 5, born 2020-04-01 is 6.
    let q = ("qualification_date", "2020-04-02");
    check(
        &[q, ("birthdate", "2020-04-02"), ("copay_ratio", "20")],
        "ok",
    );
    check(
        &[q, ("birthdate", "2020-04-02"), ("copay_ratio", "30")],
        "ok W2 copay_ratio",
    );
    check(
        &[q, ("birthdate", "2020-04-01"), ("copay_ratio", "30")],
        "ok",
    );
    check(
        &[q, ("birthdate", "2020-04-01"), ("copay_ratio", "20")],
        "ok W2 copay_ratio",
    );
    // 69 and 70.
    check(
        &[("birthdate", "1956-04-02"), ("copay_ratio", "20")],
        "ok W2 copay_ratio",
    );
    check(&[("birthdate", "1956-04-01"), ("copay_ratio", "20")], "ok");
    check(
        &[("birthdate", "1956-04-01"), ("copay_ratio", "10")],
        "ok W2 copay_ratio",
    );
    let o = check(&[("copay_ratio", "20")], "ok W2 copay_ratio");
    assert_eq!(
        reason(&o),
        "copay ratio 20 is unusual at age 46 on 2026-04-01 (usual: 30)"
    );
}

#[test]
fn w3_seventy_five_outside_koki() {
    let koki = koki().to_string();
    // Born 1951-04-01 is 75 on the snapshot date; a day later is 74.
    check(&[("birthdate", "1951-04-02")], "ok");
    check(&[("birthdate", "1951-04-01")], "ok W3 birthdate");
    // Regression (data-gen histories): a record lost at the 75th birthday is history, not W3.
    check(
        &[
            ("birthdate", "1940-01-01"),
            ("disqualification_date", "2016-01-01"),
            ("reason_of_loss", "99"),
        ],
        "ok",
    );
    check_in(
        &koki,
        &[
            ("insurer_number", &koki),
            ("birthdate", "1951-04-01"),
            ("copay_ratio", "10"),
        ],
        "ok",
    );
    check_in(
        &koki,
        &[
            ("insurer_number", &koki),
            ("birthdate", "1951-04-02"),
            ("copay_ratio", "10"),
        ],
        "ok W2 copay_ratio",
    );
}

#[test]
fn w4_name_kana() {
    check(&[("name_kana", "ヤマダ・タロー")], "ok");
    check(&[("name_kana", "ヤマダ\u{3000}タロウ")], "ok");
    let r = record(check(&[("name_kana", "ﾔﾏﾀﾞ ﾀﾛｳ")], "ok"));
    assert_eq!(r.name_kana, "ヤマダ タロウ");
    check(&[("name_kana", "やまだ たろう")], "ok W4 name_kana");
    check(&[("name_kana", "YAMADA")], "ok W4 name_kana");
    check(&[("name_kana", "山田")], "ok W4 name_kana");
    let o = check(&[("name_kana", "")], "ok W4 name_kana");
    assert_eq!(reason(&o), "name_kana is empty");
    check(&[("name_kana", "  ")], "ok W4 name_kana");
    // Regression: an individual number typed into a name column was indexed in clear.
    let r = record(check(
        &[
            ("name_kana", "１２３４ ５６７８ ９０１８"),
            ("name", "9876-5432-1093"),
        ],
        "ok W4 name_kana",
    ));
    assert_eq!(r.name_kana, "**** **** 9018");
    assert_eq!(r.name, "****-****-1093");
}

#[test]
fn several_warnings_in_rule_order() {
    check(
        &[
            ("individual_number", "1"),
            ("birthdate", "1940-01-01"),
            ("copay_ratio", "10"),
            ("name_kana", "やまだ"),
        ],
        "ok W1 individual_number W3 birthdate W4 name_kana",
    );
    check(
        &[
            ("individual_number", "1"),
            ("copay_ratio", "10"),
            ("name_kana", ""),
        ],
        "ok W1 individual_number W2 copay_ratio W4 name_kana",
    );
}

fn lines_and_codes(out: &[RowOutcome]) -> Vec<(u64, String)> {
    out.iter()
        .map(|o| match o {
            RowOutcome::Indexed { line, .. } => (*line, render(o)),
            RowOutcome::Rejected(i) => (i.line, render(o)),
        })
        .collect()
}

#[test]
fn header_in_any_order_with_unknown_columns() {
    let mut order: Vec<usize> = (0..15).rev().collect();
    order.swap(2, 9);
    let header: Vec<&str> = order.iter().map(|&i| HEADER[i]).collect();
    let mut header = header;
    header.insert(4, "memo");
    let row = |r: Vec<String>| {
        let mut v: Vec<String> = order.iter().map(|&i| r[i].clone()).collect();
        v.insert(4, "note, with comma".to_owned());
        v
    };
    let text = csv_text(
        &header,
        &[row(base_with(&[])), row(base_with(&[("branch", "1")]))],
    );
    let (out, summary) = read_all(text.as_bytes(), &ctx("33120015"));
    assert_eq!(
        lines_and_codes(&out),
        [(2, "ok".to_owned()), (3, "R3 branch".to_owned())]
    );
    assert_eq!(record(out[0].clone()), record(check(&[], "ok")));
    assert_eq!(summary.file_warnings.len(), 1);
    let w = &summary.file_warnings[0];
    assert_eq!((w.rule, &*w.field, w.line), (Rule::W0, "memo", 1));
    assert_eq!(summary.by_rule.get(Rule::W0), 1);
    assert_eq!(summary.by_rule.get(Rule::R3), 1);
}

/// Regression: an unknown column named with an individual number showed it in clear in
/// rejects.csv's `field` column (the reason was masked).
#[test]
fn an_unknown_column_is_named_masked() {
    let mut header = HEADER.to_vec();
    header.push("987654321093");
    let mut row = base_with(&[]);
    row.push(String::new());
    let text = csv_text(&header, &[row]);
    let (_, summary) = read_all(text.as_bytes(), &ctx("33120015"));
    let w = &summary.file_warnings[0];
    assert_eq!((w.rule, &*w.field), (Rule::W0, "********1093"));
    assert!(!w.reason.contains("987654321093"), "{}", w.reason);
}

#[test]
fn optional_columns_may_be_left_out() {
    let keep: Vec<usize> = (0..15)
        .filter(|&i| !matches!(HEADER[i], "symbol" | "individual_number" | "limit_category"))
        .collect();
    let header: Vec<&str> = keep.iter().map(|&i| HEADER[i]).collect();
    let row: Vec<String> = keep.iter().map(|&i| BASE[i].to_owned()).collect();
    let (out, _) = read_all(csv_text(&header, &[row]).as_bytes(), &ctx("33120015"));
    let r = record(out[0].clone());
    assert_eq!((r.symbol.as_str(), r.individual_number), ("", None));
}

#[test]
fn missing_required_column_rejects_the_file() {
    let header: Vec<&str> = HEADER
        .iter()
        .copied()
        .filter(|&h| h != "birthdate")
        .collect();
    let text = csv_text(&header, &[]);
    let err = read_snapshot_bytes(text.as_bytes(), &ctx("33120015"), |_| {}).unwrap_err();
    assert_eq!(err.rule(), Rule::F2);
    assert_eq!(err.field(), "birthdate");
    assert_eq!(
        err.to_string(),
        "SNAPSHOTS/33120015/20260401.csv: required column \"birthdate\" missing from the header"
    );
    let err = read_snapshot_bytes(b"", &ctx("33120015"), |_| {}).unwrap_err();
    assert!(matches!(err, SnapshotError::NoHeader { .. }), "{err}");
}

#[test]
fn crlf_bom_blank_lines_and_quoted_newlines_keep_line_numbers() {
    let rows = [
        base_with(&[("name", "山田,\n太郎")]),
        base_with(&[("branch", "1")]),
        base_with(&[("name", "\"quoted\"\r\nname")]),
        base_with(&[]),
    ];
    // Lines 2-3 row 1, line 4 row 2, lines 5-6 row 3, a blank line 7, line 8 row 4.
    let mut lf = csv_text(&HEADER, &rows[..3]);
    lf.push('\n');
    let last = csv_text(&HEADER, &rows[3..]);
    lf.push_str(last.split_once('\n').map_or("", |(_, row)| row));
    // A cell holding a line break is R0, named with the lines its row spans.
    let expected = [
        (2, "R0 name".to_owned()),
        (4, "R3 branch".to_owned()),
        (5, "R0 name".to_owned()),
        (8, "ok".to_owned()),
    ];
    let (out, _) = read_all(lf.as_bytes(), &ctx("33120015"));
    assert_eq!(lines_and_codes(&out), expected, "{lf}");
    assert!(reason(&out[0]).contains("lines 2-3"), "{}", reason(&out[0]));
    let crlf = format!("\u{feff}{}", lf.replace('\n', "\r\n"));
    let (out, summary) = read_all(crlf.as_bytes(), &ctx("33120015"));
    assert_eq!(lines_and_codes(&out), expected);
    assert_eq!(summary.encoding, Some(Encoding::Utf8));
    assert!(reason(&out[2]).contains("lines 5-6"), "{}", reason(&out[2]));
}

/// Regression: a quote left open swallowed the rows after it into one cell; the file's
/// report said 2 rows read of 5 and named none of the three swallowed.
#[test]
fn a_quote_left_open_is_reported_with_the_lines_it_swallowed() {
    let mut text = csv_text(&HEADER, &[base_with(&[])]);
    let open = BASE.join(",").replacen("山田 太郎", "\"山田 太郎", 1);
    assert_ne!(open, BASE.join(","), "the base row has the name");
    text.push_str(&format!("{open}\n"));
    for _ in 0..3 {
        text.push_str(&format!("{}\n", BASE.join(",")));
    }
    let (out, summary) = read_all(text.as_bytes(), &ctx("33120015"));
    assert_eq!(
        lines_and_codes(&out),
        [(2, "ok".to_owned()), (3, "R0 name".to_owned())]
    );
    assert!(reason(&out[1]).contains("lines 3-6"), "{}", reason(&out[1]));
    assert_eq!((summary.rows_read, summary.rejected), (2, 1));
}

#[test]
fn cp932_file_decodes_kanji() {
    let text = csv_text(
        &HEADER,
        &[base_with(&[
            ("name", "髙橋 一郎"),
            ("name_kana", "ﾀｶﾊｼ ｲﾁﾛｳ"),
        ])],
    )
    .replace('\n', "\r\n");
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&bytes).is_err());
    let (out, summary) = read_all(&bytes, &ctx("33120015"));
    assert_eq!(summary.encoding, Some(Encoding::Cp932));
    let r = record(out[0].clone());
    assert_eq!(
        (r.name.as_str(), r.name_kana.as_str()),
        ("髙橋 一郎", "タカハシ イチロウ")
    );
}

#[test]
fn malformed_rows_are_r0() {
    let mut text = csv_text(&HEADER, &[base_with(&[])]);
    text.push_str("33120015,12,3456\n");
    text.push_str(&format!("{},extra\n", BASE.join(",")));
    let (out, summary) = read_all(text.as_bytes(), &ctx("33120015"));
    assert_eq!(
        lines_and_codes(&out),
        [
            (2, "ok".to_owned()),
            (3, "R0 ".to_owned()),
            (4, "R0 ".to_owned())
        ]
    );
    assert_eq!(reason(&out[1]), "3 fields where the header has 15");
    assert_eq!(summary.by_rule.get(Rule::R0), 2);
}

pub(super) fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A file rejected whole under F1 (its rows counted as read and rejected), and the error's
/// words.
fn check_undecodable(first_lines: &str, last_line: &[u8], expected: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = csv_text(&HEADER, &[base_with(&[]), base_with(&[])]).into_bytes();
    bytes.splice(bytes.iter().position(|&b| b == b'\n').unwrap() + 1.., []);
    bytes.extend_from_slice(first_lines.as_bytes());
    bytes.extend_from_slice(last_line);
    write(dir.path(), "33120015/20260401.csv", &bytes);
    let file = SnapshotFile {
        path: dir.path().join("33120015/20260401.csv"),
        rel_path: "33120015/20260401.csv".into(),
        date: Date::parse(SNAPSHOT_DATE).expect("date"),
    };
    let entry = InsurerEntry {
        number: InsurerNumber::parse("33120015").expect("number"),
        name: "test".to_owned(),
        kind: crate::domain::InsurerKind::Kyosai,
        line: 2,
    };
    let mut rows = 0;
    let err = read_snapshot(&file, &entry, |_| rows += 1).unwrap_err();
    assert_eq!(rows, 0);
    assert_eq!(err.rule(), Rule::F1);
    assert!(err.to_string().contains("33120015/20260401.csv"), "{err}");
    assert!(err.to_string().ends_with(expected), "{err}");
    let s = account_rejected_file(
        &file,
        Some(entry.number),
        err.rule(),
        err.field(),
        &err.to_string(),
    );
    assert_eq!((s.rows_read, s.rejected, s.indexed), (3, 3, 0));
    assert_eq!(s.by_rule.get(Rule::F1), 3);
    let issue = s.file_reject.expect("file reject");
    assert_eq!(
        (issue.line, issue.rule, &*issue.file),
        (0, Rule::F1, "33120015/20260401.csv")
    );
}

#[test]
fn undecodable_file_is_rejected_whole_and_its_rows_counted() {
    let rows = "33120015,12,3456\n33120015,12,3457\n";
    check_undecodable(
        rows,
        b"33120015,\xff\xfe,3456\n",
        "first byte invalid as UTF-8 is on line 4, as CP932 on line 4",
    );
    // Regression: a UTF-8 file with a line pasted in CP932 was read whole as CP932, its
    // UTF-8 names indexed as mojibake.
    let (cp932, _, _) = encoding_rs::SHIFT_JIS.encode("33120015,12,3458,山田 花子\n");
    check_undecodable(
        "33120015,12,3456,山田 太郎\n33120015,12,3457\n",
        &cp932,
        "mixes encodings: line 2 is UTF-8 but line 4 is not; save the whole file in one encoding",
    );
}

#[test]
fn discovery_picks_newest_and_reports_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let koki = koki().to_string();
    write(
        root,
        "insurers.csv",
        format!(
            "insurer_number,insurer_name,kind,note\n33120015,共済,kyosai,\n  131045,国保,kokuho,\n{koki},広域連合,koki,\n"
        )
        .as_bytes(),
    );
    let body = csv_text(&HEADER, &[base_with(&[])]);
    write(root, "33120015/20250101.csv", body.as_bytes());
    write(root, "33120015/20260401.csv", body.as_bytes());
    // Regression: a file dated ahead of the build (a mistyped year) won as the newest.
    write(root, "33120015/20620401.csv", body.as_bytes());
    // Regression: of two files of one date, one was ignored without a word.
    write(root, "33120015/20260401.CSV", body.as_bytes());
    write(root, "33120015/notes.txt", b"x");
    write(root, "131045/2026-04-01.csv", b"x");
    write(root, "06139998/20260401.csv", body.as_bytes());
    write(root, "README", b"x");
    let d = discover(root, Date::parse("2026-11-24").unwrap()).expect("discover");
    assert_eq!(d.insurers.len(), 3);
    let picked: Vec<(String, usize)> = d
        .snapshots
        .iter()
        .map(|s| (s.file.rel_path.to_string(), s.older))
        .collect();
    assert_eq!(picked, [("33120015/20260401.csv".to_owned(), 2)]);
    let findings: Vec<String> = d.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        findings,
        [
            "insurers.csv: unknown column \"note\" ignored",
            "directory 06139998 is not a listed insurer; its newest snapshot 06139998/20260401.csv is not read",
            "131045/2026-04-01.csv is not named <insurer_number>/YYYYMMDD.csv; ignored",
            "33120015/notes.txt is not named <insurer_number>/YYYYMMDD.csv; ignored",
            "README is not named <insurer_number>/YYYYMMDD.csv; ignored",
            "33120015/20620401.csv is dated after the build date 2026-11-24; not read (a mistyped date?)",
            "33120015/20260401.CSV has the date of 33120015/20260401.csv, which is read; 33120015/20260401.CSV is not",
            "insurer 131045 is listed but has no snapshot",
            &format!("insurer {koki} is listed but has no snapshot"),
        ]
    );
    // The chosen file reads end to end; the unlisted one is accounted under F4.
    let s = &d.snapshots[0];
    let mut n = 0;
    let summary = read_snapshot(&s.file, &s.insurer, |_| n += 1).expect("read");
    assert_eq!((n, summary.indexed), (1, 1));
    let Some(Finding::UnlistedDirectory {
        newest: Some(f),
        insurer,
        ..
    }) = d
        .findings
        .iter()
        .find(|f| matches!(f, Finding::UnlistedDirectory { .. }))
    else {
        panic!("no unlisted directory finding");
    };
    let s = account_rejected_file(f, *insurer, Rule::F4, "", "not listed in insurers.csv");
    assert_eq!(
        (s.rows_read, s.rejected, s.by_rule.get(Rule::F4)),
        (1, 1, 1)
    );
}

#[test]
fn insurers_csv_bad_line_fails_naming_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |text: &str, expected: &str| {
        write(dir.path(), "insurers.csv", text.as_bytes());
        let got = read_insurers(&dir.path().join("insurers.csv"))
            .map(|v| v.len().to_string())
            .unwrap_or_else(|e| e.to_string().replace(&dir.path().display().to_string(), ""));
        assert_eq!(got, expected, "{text}");
    };
    check(
        "kind,insurer_name,insurer_number\r\nkyosai,共済,33120015\r\n",
        "1",
    );
    check(
        "insurer_number,insurer_name,kind\n33120016,共済,kyosai\n",
        "/insurers.csv: line 2: field insurer_number: \"33120016\" bad check digit",
    );
    check("insurer_number,insurer_name,kind\n33120015,共済,other\n", "/insurers.csv: line 2: field kind: \"other\" is not one of kyokai, senin, kumiai, kyosai, kokuho, kokuho_kumiai, koki");
    check(
        "insurer_number,insurer_name,kind\n33120015,,kyosai\n",
        "/insurers.csv: line 2: field insurer_name: is empty",
    );
    check(
        "insurer_number,insurer_name,kind\n33120015,a,kyosai\n\n33120015,b,kyosai\n",
        "/insurers.csv: line 4: field insurer_number: 33120015 listed twice (first on line 2)",
    );
    check(
        "insurer_number,insurer_name\n",
        "/insurers.csv: required column \"kind\" missing from the header",
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Field values that hit every parser's edge: codes, dates, digits, kana, quotes, commas,
    /// newlines, full-width forms, and 12-digit numbers in any column.
    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[0-9]{1,14}",
            "[0-9０-９]{12}",
            "[ 0-9A-Za-z,\"\r\n.\\-]{0,12}",
            "[ｱ-ﾝア-ンあ-ん山田ー・　]{0,8}",
            "(S|H|R|M|T)[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,2}",
            prop::sample::select(vec![
                "33120015",
                "  33120015",
                "01",
                "1",
                "30",
                "3割",
                "A03",
                "99",
                "2026-04-01",
                "1980-01-23",
                "20260402",
            ])
            .prop_map(str::to_owned),
        ]
    }

    /// Mostly rows of the header's width, sometimes not (R0).
    fn row() -> impl Strategy<Value = Vec<String>> {
        prop_oneof![
            9 => prop::collection::vec(field(), 15),
            1 => prop::collection::vec(field(), 1..20),
        ]
        .prop_filter(
            "the CSV writer skips nothing but a row must not be blank",
            |r| !(r.len() == 1 && r[0].is_empty()),
        )
    }

    fn has_twelve_digit_run(s: &str) -> bool {
        let mut run = 0;
        for c in s.chars() {
            run = if c.is_ascii_digit() || ('０'..='９').contains(&c) {
                run + 1
            } else {
                0
            };
            if run >= 12 {
                return true;
            }
        }
        false
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn any_rows_never_panic_count_right_and_never_leak(rows in prop::collection::vec(row(), 0..12), crlf: bool) {
            let mut text = csv_text(&HEADER, &rows);
            if crlf {
                text = text.replace('\n', "\r\n");
            }
            let mut out = Vec::new();
            let summary = read_snapshot_bytes(text.as_bytes(), &ctx("33120015"), |o| out.push(o))
                .expect("a UTF-8 file with a full header is read");
            prop_assert_eq!(out.len(), rows.len());
            prop_assert_eq!(summary.rows_read, summary.indexed + summary.rejected);
            let mut last_line = 1;
            for o in &out {
                let (line, issues): (u64, Vec<&Issue>) = match o {
                    RowOutcome::Indexed { line, warnings, .. } => (*line, warnings.iter().collect()),
                    RowOutcome::Rejected(i) => (i.line, vec![i]),
                };
                prop_assert!(line > last_line);
                last_line = line;
                for i in issues {
                    prop_assert!(!has_twelve_digit_run(&i.reason), "{}", i.reason);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let mut full = HEADER.join(",").into_bytes();
            full.push(b'\n');
            full.extend_from_slice(&bytes);
            let mut n = 0u64;
            if let Ok(s) = read_snapshot_bytes(&full, &ctx("33120015"), |_| n += 1) {
                prop_assert_eq!(s.rows_read, n);
            }
            let _ = read_snapshot_bytes(&bytes, &ctx("33120015"), |_| {});
            let _ = count_data_lines(&bytes);
        }
    }
}

#[test]
fn names_longer_than_a_record_holds_are_r0() {
    // Regression: a name over 65,535 bytes once failed the whole build instead of one row.
    let long = "山".repeat(342); // 1,026 bytes
    let at_limit = "a".repeat(super::row::MAX_NAME_BYTES);
    check(&[("name", &long)], "R0 name");
    check(&[("name_kana", &long)], "R0 name_kana");
    check(&[("name", &at_limit)], "ok");
    let near_line_limit = "x".repeat(60_000);
    let o = check(&[("name", &near_line_limit)], "R0 name");
    assert!(reason(&o).contains("60000 bytes"), "{}", reason(&o));
    // Past the longest line a row may take, the line is rejected before it is parsed.
    let huge = "x".repeat(70_000);
    let o = check(&[("name", &huge)], "R0 ");
    assert!(
        reason(&o).contains("longer than any row can be"),
        "{}",
        reason(&o)
    );
    // R0 comes first: a long name on a row that also breaks R1 is reported as R0.
    check(
        &[("name", &long), ("insurer_number", "33120016")],
        "R0 name",
    );
}
