//! The claims check against a small index: one card for every verdict, and the bad input of
//! a claims file. Each case is a file and the rows it must give.

use super::output::{FileColumn, RowWriter};
use super::*;
use crate::domain::{InsurerKind, PersonKey, Sex};
use crate::index::Index;
use crate::testing::{build, insurer, Member, INSURER, INSURER_NAME};

/// Insurer 33120015, month of care 2026-10. Cards (number: story):
/// 100 covered since 2015 (ヤマダ タロウ, male); 200 lost 2026-10-16; 300 lost 2026-10-16, its
/// person insured again on card 301 that day; 400 from 2026-10-10; 500 twins on branches 01
/// and 02 with one birthdate; 600 covered, female.
fn index() -> Index<Vec<u8>> {
    Index::open(files(), PersonKey::demo()).unwrap()
}

/// The index of [`index`] as files, with a second insurer (01130012, card 1) that no receipt
/// of these tests names.
fn files() -> crate::index::IndexFiles<Vec<u8>> {
    build(insurers(), "2026-11-24", "g-test")
}

/// The insurers of [`files`].
pub(super) fn insurers() -> Vec<crate::nightly::InsurerRows> {
    let card = |number, branch, person, qual, disq| Member {
        number,
        branch,
        person: Some(person),
        qual,
        disq,
        ..Member::default()
    };
    let members = [
        card("100", 0, 10000000001, "2015-04-01", None),
        card("200", 0, 10000000002, "2015-04-01", Some("2026-10-16")),
        card("300", 0, 10000000003, "2015-04-01", Some("2026-10-16")),
        card("301", 0, 10000000003, "2026-10-16", None),
        card("400", 0, 10000000004, "2026-10-10", None),
        card("500", 1, 10000000051, "2015-04-01", None),
        card("500", 2, 10000000052, "2015-04-01", None),
        card("600", 0, 10000000006, "2015-04-01", None),
    ];
    let mut rows = insurer(
        INSURER,
        INSURER_NAME,
        InsurerKind::Kyosai,
        "2026-11-01",
        &members,
    );
    rows.rows[7].0.sex = Sex::Female;
    let other = insurer(
        OTHER_INSURER,
        "他保険者",
        InsurerKind::Kyosai,
        "2026-11-01",
        &[card("1", 0, 10000000099, "2015-04-01", None)],
    );
    vec![rows, other]
}

const OTHER_INSURER: &str = "01130012";

/// `shikaku claims` verifies what its files reach before their first row, and only that: a
/// damaged segment that no receipt reaches does not stop a run; one that a receipt reaches
/// stops it before any row of that file.
#[test]
fn a_run_verifies_the_segments_its_files_reach() {
    use super::files::{check_files, RunError};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("RECEIPTC.UKE");
    std::fs::write(&path, file(&receipt(1, "100", &[3]))).unwrap();
    let damaged = |insurer: &str| {
        let mut files = files();
        let i = Index::open(files.clone(), PersonKey::demo())
            .unwrap()
            .insurer_position(&crate::domain::InsurerNumber::parse(insurer).unwrap())
            .unwrap();
        let last = files.segments[i].len() - 30;
        files.segments[i][last] ^= 1;
        Index::open(files, PersonKey::demo()).unwrap()
    };
    let segment_bytes: usize = files().segments.iter().map(Vec::len).sum();
    let small = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(
        small * 4 < segment_bytes,
        "{small} bytes against {segment_bytes}"
    );
    let mut out = Vec::new();
    let outcome = check_files(
        &damaged(OTHER_INSURER),
        std::slice::from_ref(&path),
        Format::Csv,
        &mut out,
    )
    .expect("the damaged segment is not reached");
    assert_eq!(outcome.summary.rows, 1);
    let mut out = Vec::new();
    let run = check_files(&damaged(INSURER), &[path], Format::Csv, &mut out);
    assert!(
        matches!(
            run,
            Err(RunError::Verify(
                crate::format::FormatError::Checksum { .. }
            ))
        ),
        "{run:?}"
    );
    assert!(
        !String::from_utf8_lossy(&out).contains(",ok,"),
        "no row before verification"
    );

    // A run as large as a quarter of the segments' bytes verifies the whole generation
    // first (cheaper than looking for what each receipt reaches): the damage it does not
    // reach stops it too.
    let big = dir.path().join("BIG.UKE");
    let records: Vec<String> = (1..=400).flat_map(|n| receipt(n, "100", &[3])).collect();
    std::fs::write(&big, file(&records)).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() as usize * 4 > segment_bytes);
    let run = check_files(
        &damaged(OTHER_INSURER),
        &[big],
        Format::Csv,
        &mut Vec::new(),
    );
    assert!(matches!(run, Err(RunError::Verify(_))), "{run:?}");

    // Two files, the second reaching the damaged segment: nothing is written, not even the
    // first file's rows (its output would otherwise end half-written, a JSON array unclosed).
    let reaches_other = dir.path().join("OTHER.UKE");
    let records = vec![
        re(1, "202610", "1", "19800123", "ヤマダ タロウ"),
        format!("HO,{OTHER_INSURER},12,1,3,450,,,,,,,,,"),
        si(&[3]),
    ];
    std::fs::write(&reaches_other, file(&records)).unwrap();
    let first = dir.path().join("FIRST.UKE");
    std::fs::write(&first, file(&receipt(1, "100", &[3]))).unwrap();
    let mut out = Vec::new();
    let run = check_files(
        &damaged(OTHER_INSURER),
        &[first, reaches_other],
        Format::Json,
        &mut out,
    );
    assert!(matches!(run, Err(RunError::Verify(_))), "{run:?}");
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
}

/// The institution code 1311234569 (a valid check digit: public expenses need it).
pub(super) const IR: &str = "IR,1,13,1,1234569,,テスト医院,202611,00,0312345678";
const GO_END: &str = "GO,";

/// An `RE` record: receipt number, month, sex, birthdate, katakana name (field 37).
pub(super) fn re(n: u32, month: &str, sex: &str, birth: &str, kana: &str) -> String {
    let mut f = vec![String::new(); 37];
    f[0] = "RE".into();
    f[1] = n.to_string();
    f[2] = "1112".into();
    f[3] = month.into();
    f[4] = "山田 太郎".into();
    f[5] = sex.into();
    f[6] = birth.into();
    f[36] = kana.into();
    f.join(",")
}

pub(super) fn ho(number: &str, points: &str) -> String {
    format!("HO,33120015,12,{number},3,{points},,,,,,,,,")
}

/// An `SI` record with a count of 1 on each of `days`.
pub(super) fn si(days: &[u8]) -> String {
    let mut f = vec![String::new(); 44];
    f[0] = "SI".into();
    f[1] = "11".into();
    f[2] = "1".into();
    f[3] = "111000110".into();
    f[5] = "288".into();
    f[6] = "1".into();
    for &day in days {
        f[13 + usize::from(day) - 1] = "1".into();
    }
    f.join(",")
}

/// An `SI` record with `cell` as the count of day `day`.
fn si_cell(day: usize, cell: &str) -> String {
    let mut f: Vec<String> = si(&[]).split(',').map(String::from).collect();
    f[13 + day - 1] = cell.into();
    f.join(",")
}

/// A file of `IR`, the given records and `GO` (its count right), CRLF, with 0x1A.
pub(super) fn file(records: &[String]) -> Vec<u8> {
    let receipts = records.iter().filter(|r| r.starts_with("RE,")).count();
    let mut lines = vec![IR.to_string()];
    lines.extend(records.iter().cloned());
    lines.push(format!("{GO_END}{receipts},1000,99"));
    let mut text = lines.join("\r\n");
    text.push_str("\r\n\x1a");
    text.into_bytes()
}

/// A plain receipt of card `number` on `days`.
pub(super) fn receipt(n: u32, number: &str, days: &[u8]) -> Vec<String> {
    vec![
        re(n, "202610", "1", "19800123", "ヤマダ タロウ"),
        ho(number, "450"),
        si(days),
    ]
}

/// The rows of a file as `verdict reason days` (days as day numbers), and the summary.
fn rows_of(bytes: &[u8]) -> Result<(Vec<String>, Summary), UkeError> {
    rows_in(&index(), bytes)
}

/// [`rows_of`] against `index`.
pub(super) fn rows_in(
    index: &Index<Vec<u8>>,
    bytes: &[u8],
) -> Result<(Vec<String>, Summary), UkeError> {
    let f = parse(bytes)?;
    let mut writer = RowWriter::new(Format::Csv, FileColumn::Unnamed);
    let mut out = Vec::new();
    writer.begin(&mut out);
    let mut summary = Summary::default();
    let mut seen = Vec::new();
    check_file(
        index,
        "f.UKE",
        &f,
        &mut writer,
        &mut out,
        &mut summary,
        |_, c, _| {
            let days: Vec<String> = (1..=31)
                .filter(|d| c.days & (1 << (d - 1)) != 0)
                .map(|d: u32| d.to_string())
                .collect();
            seen.push(
                format!(
                    "{} {} {}",
                    c.verdict.as_str(),
                    c.reason.as_str(),
                    days.join(";")
                )
                .trim_end()
                .to_string(),
            );
        },
    );
    let csv = String::from_utf8(out).unwrap();
    assert_eq!(csv.lines().count() as u64, summary.rows + 1, "{csv}");
    assert_eq!(summary.rows, summary.receipts);
    assert_eq!(summary.receipts, f.receipts.len() as u64);
    Ok((seen, summary))
}

pub(super) fn check(records: &[Vec<String>], expected: &[&str]) {
    let all: Vec<String> = records.iter().flatten().cloned().collect();
    let (rows, _) = rows_of(&file(&all)).unwrap();
    assert_eq!(rows, expected, "{all:#?}");
}

#[test]
fn every_verdict() {
    check(&[receipt(1, "100", &[1, 15, 31])], &["ok"]);
    check(
        &[receipt(1, "200", &[1, 15, 16, 20])],
        &["return lost 16;20"],
    );
    check(
        &[receipt(1, "300", &[2, 17])],
        &["return other_qualification 17"],
    );
    check(
        &[receipt(1, "301", &[2, 17])],
        &["return other_qualification 2"],
    );
    check(&[receipt(1, "400", &[3, 9, 10])], &["return not_yet 3;9"]);
    check(&[receipt(1, "999", &[3])], &["return not_found 3"]);
    check(&[receipt(1, "500", &[3])], &["return multiple 3"]);
    // A wrong birthdate is told as an unknown card.
    let mut wrong_birth = receipt(1, "100", &[4]);
    wrong_birth[0] = re(1, "202610", "1", "19800124", "");
    check(&[wrong_birth], &["return not_found 4"]);
    // The branch from SN decides between the twins.
    let mut twin = receipt(1, "500", &[3]);
    twin.insert(2, "SN,1,01,,,,02,,".into());
    check(&[twin], &["ok"]);
    let mut women = receipt(1, "600", &[3]);
    women[0] = re(1, "202610", "1", "19800123", "");
    check(&[women], &["check sex_differs"]);
    let mut kana = receipt(1, "100", &[3]);
    kana[0] = re(1, "202610", "1", "19800123", "ヤマダ ハナコ");
    check(&[kana], &["check kana_differs"]);
    // Half-width kana and an ideographic space are the same name.
    let mut half = receipt(1, "100", &[3]);
    half[0] = re(1, "202610", "1", "19800123", "ﾔﾏﾀﾞ\u{3000}ﾀﾛｳ");
    check(&[half], &["ok"]);
    // No day counts: every day of the month; covered on some only.
    check(
        &[vec![re(1, "202610", "1", "19800123", ""), ho("200", "450")]],
        &["check partial_month"],
    );
    check(&[vec![re(1, "202610", "1", "19800123", ""), ho("999", "450")]], &["return not_found 1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23;24;25;26;27;28;29;30;31"]);
    // Neither HO nor KO (public expenses: claims::kohi's tests).
    check(
        &[vec![re(1, "202610", "1", "19800123", ""), si(&[1])]],
        &["unchecked no_insurance"],
    );
    // 和暦 month of care: 令和8年10月.
    let mut wareki = receipt(1, "200", &[20]);
    wareki[0] = re(1, "50810", "1", "19800123", "");
    check(&[wareki], &["return lost 20"]);
}

/// Checks a bad receipt's `records` between two good ones with `check`: it is the only error,
/// none is skipped.
pub(super) fn between_good_receipts(
    check: fn(&[Vec<String>], &[&str]),
    records: Vec<String>,
    expected: &str,
) {
    let around = [receipt(1, "100", &[1]), records, receipt(3, "100", &[2])];
    check(&around, &["ok", expected, "ok"]);
}

#[test]
fn malformed_fields_are_error_rows() {
    let with = |i: usize, line: String| {
        let mut r = receipt(1, "100", &[3]);
        r[i] = line;
        r
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            with(1, "HO,3312001X,12,100,3,450".into()),
            "error malformed: HO 2",
        ),
        (
            with(1, "HO,33120015,12,,3,450".into()),
            "error malformed: HO 4",
        ),
        (
            with(1, "HO,33120015,12,100,3,45x".into()),
            "error malformed: HO 6",
        ),
        (
            with(0, re(1, "202610", "1", "1980013", "")),
            "error malformed: RE 7",
        ),
        (
            with(0, re(1, "202613", "1", "19800123", "")),
            "error malformed: RE 4",
        ),
        (
            with(0, re(1, "202610", "9", "19800123", "")),
            "error malformed: RE 6",
        ),
        (
            with(
                0,
                re(1, "202610", "1", "19800123", "").replacen("RE,1,", "RE,x1,", 1),
            ),
            "error malformed: RE 2",
        ),
        (with(2, si_cell(1, "x")), "error malformed: SI 14"),
        (with(2, si_cell(2, "1000")), "error malformed: SI 15"),
        (with(2, "ZZ,1,2".into()), "error malformed: record"),
        (with(2, ho("100", "450")), "error malformed: HO"),
    ];
    for (records, expected) in cases {
        between_good_receipts(check, records, expected);
    }
    // A count on 31 October is fine, on 31 November is not.
    let mut november = receipt(1, "100", &[31]);
    november[0] = re(1, "202611", "1", "19800123", "");
    check(&[november], &["error malformed: SI 44"]);
}

#[test]
fn file_level_errors_name_the_line() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"IR,1\r\nHO,33120015,12,100,3,450\r\nRE,1\r\nGO,1\r\n".to_vec(),
            "line 2: a \"HO\"",
        ),
        (
            file(&receipt(1, "100", &[1]))
                .into_iter()
                .chain(b"RE,2\r\n".iter().copied())
                .collect(),
            "after the GO record",
        ),
        (b"IR,1\r\nGO,0\r\n".to_vec(), "holds no RE record"),
        (b"".to_vec(), "holds no RE record"),
        (
            b"IR,1\rRE,1,1112,202610\rGO,1\r".to_vec(),
            "lines end in CR alone",
        ),
        // CP932 cut inside a character on its last line (3): the cut is named.
        (
            b"IR,1\r\nRE,1,,,\x8eR\r\n\x8e".to_vec(),
            "as CP932 on line 3",
        ),
    ];
    for (bytes, expected) in cases {
        let e = parse(&bytes).unwrap_err().to_string();
        assert!(e.contains(expected), "{e} should say {expected}");
    }
    // Mixed encodings: a UTF-8 line and a CP932 one.
    let mut mixed = file(&receipt(1, "100", &[1]));
    mixed.extend_from_slice(b"\x8eR\x93c\r\n");
    let e = parse(&mixed).unwrap_err().to_string();
    assert!(e.contains("mixes encodings"), "{e}");
}

#[test]
fn a_truncated_file_marks_its_last_receipt() {
    let all: Vec<String> = [receipt(1, "100", &[1]), receipt(2, "100", &[2])].concat();
    let mut text = IR.to_string();
    for r in &all {
        text.push_str("\r\n");
        text.push_str(r);
    }
    // Cut in the middle of the last SI record.
    let cut = &text[..text.len() - 10];
    let (rows, summary) = rows_of(cut.as_bytes()).unwrap();
    assert_eq!(rows, ["ok", "error malformed: GO"]);
    assert!(
        summary.errors[0].contains("cut short"),
        "{:?}",
        summary.errors
    );
}

#[test]
fn encodings_and_line_ends() {
    let utf8 = file(&receipt(1, "100", &[1]));
    let text = String::from_utf8(utf8.clone()).unwrap();
    let (cp932, _, lossy) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!lossy);
    let lf = text
        .replace("\r\n", "\n")
        .trim_end_matches('\x1a')
        .to_string();
    for bytes in [utf8, cp932.into_owned(), lf.into_bytes()] {
        let (rows, _) = rows_of(&bytes).unwrap();
        assert_eq!(rows, ["ok"]);
    }
    // A kana mismatch is seen through CP932 too.
    let kana = file(&[
        re(1, "202610", "1", "19800123", "ヤマダ ハナコ"),
        ho("100", "1"),
        si(&[1]),
    ]);
    let text = String::from_utf8(kana).unwrap();
    let (cp932, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
    assert_eq!(rows_of(&cp932).unwrap().0, ["check kana_differs"]);
}

#[test]
fn summary_counts_and_points() {
    let all: Vec<String> = [
        receipt(1, "100", &[1]),
        receipt(2, "200", &[20]),
        receipt(3, "999", &[2]),
        vec![re(4, "202610", "1", "19800123", ""), si(&[1])],
    ]
    .concat();
    let (_, s) = rows_of(&file(&all)).unwrap();
    assert_eq!(s.receipts, 4);
    assert_eq!(s.of_verdict(Verdict::Return), 2);
    assert_eq!(s.by_reason().get("return lost"), Some(&1));
    assert_eq!(s.by_reason().get("unchecked no_insurance"), Some(&1));
    assert_eq!(s.points_at_risk, 900);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let text = s.render();
    assert!(text.contains("points at risk (return): 900"), "{text}");
}

#[test]
fn csv_and_json_rows() {
    let index = index();
    let bytes = file(&receipt(7, "200", &[16, 17]));
    let f = parse(&bytes).unwrap();
    let render = |format| rendered(&index, &f, format, |_| {});
    assert_eq!(
        render(Format::Csv),
        "receipt,line,verdict,reason,days,insurer_number,symbol,number,branch,points\r\n\
         7,2,return,lost,2026-10-16;2026-10-17,33120015,12,200,,450\r\n"
    );
    let json: serde_json::Value = serde_json::from_str(&render(Format::Json)).unwrap();
    assert_eq!(
        json,
        serde_json::json!([{"receipt": "7", "line": 2, "verdict": "return", "reason": "lost",
            "days": ["2026-10-16", "2026-10-17"], "insurer_number": "33120015", "symbol": "12",
            "number": "200", "branch": null, "points": 450}])
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Lines a claims file may hold, good and bad.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(re(1, "202610", "1", "19800123", "ヤマダ タロウ")),
            Just(re(2, "50810", "2", "19800123", "")),
            Just(re(3, "2026", "1", "1980", "")),
            Just(ho("100", "450")),
            Just(ho("200", "x")),
            Just("HO,  1310450,,7,1,1".to_string()),
            Just("SN,1,01,,,,02,,".to_string()),
            Just("KO,13".to_string()),
            Just(si(&[1, 16, 31])),
            Just(si_cell(3, "x")),
            Just("SY,8840107".to_string()),
            Just("IR,1,13,1,1234567".to_string()),
            Just("ZZ,1".to_string()),
            Just(String::new()),
            "[A-Z]{2},[0-9,]{0,20}",
            "\\PC{0,30}",
        ]
    }

    proptest! {
        /// Whatever the lines, reading never panics; when the file is read, every `RE` record
        /// is one receipt (a naive count of the lines), and every receipt one row.
        #[test]
        fn every_receipt_is_one_row(lines in prop::collection::vec(line(), 0..30), crlf in any::<bool>(), go in any::<bool>()) {
            let mut text = lines.join(if crlf { "\r\n" } else { "\n" });
            if go {
                text.push_str("\r\nGO,1,1,99\r\n");
            }
            let Ok(file) = parse(text.as_bytes()) else {
                return Ok(());
            };
            let res: Vec<&String> = lines.iter().filter(|l| l.split(',').next().map(str::trim) == Some("RE")).collect();
            prop_assert_eq!(file.receipts.len(), res.len());
            let (rows, summary) = rows_of(text.as_bytes()).unwrap();
            prop_assert_eq!(rows.len(), res.len());
            prop_assert_eq!(summary.receipts, res.len() as u64);
        }

        /// Arbitrary bytes: an error or receipts, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(file) = parse(&bytes) {
                let _ = rows_of(&bytes);
                prop_assert!(!file.receipts.is_empty());
            }
        }
    }
}

/// An individual number typed into a receipt's number (or symbol) is not written back in
/// clear: the row's card fields are masked as every quoted input is, in CSV and JSON.
#[test]
fn a_twelve_digit_card_field_is_masked_in_rows() {
    let index = index();
    let bytes = file(&receipt(7, "123456789012", &[3]));
    let f = parse(&bytes).unwrap();
    for format in [Format::Csv, Format::Json] {
        let mut cards = Vec::new();
        let out = rendered(&index, &f, format, |q| {
            cards.push(q.map(|q| q.number.clone()))
        });
        assert_eq!(
            cards,
            [Some("123456789012".to_string())],
            "the card query itself"
        );
        assert!(!out.contains("123456789012"), "{out}");
        assert!(out.contains("********9012"), "{out}");
    }
}

/// The rows of file `f` in `format`, each receipt's card query passed to `each`.
fn rendered(
    index: &Index<Vec<u8>>,
    f: &UkeFile<'_>,
    format: Format,
    mut each: impl FnMut(Option<&crate::query::CardQuery>),
) -> String {
    let mut w = RowWriter::new(format, FileColumn::Unnamed);
    let mut out = Vec::new();
    w.begin(&mut out);
    check_file(
        index,
        "x",
        f,
        &mut w,
        &mut out,
        &mut Summary::default(),
        |_, _, q| each(q),
    );
    w.end(&mut out);
    String::from_utf8(out).unwrap()
}
