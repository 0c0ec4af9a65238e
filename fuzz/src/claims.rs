//! A claims file (UKE) through the reader and the check against the fixture's index.
//!
//! Properties: a file refused whole quotes no individual number; a file read gives receipts
//! in line order, each with its fields inside the text and on character boundaries and its
//! days of service inside its month; every receipt gets exactly one row and is counted once
//! in the summary (by verdict, and by verdict and reason); the summary quotes no individual
//! number in clear.

use super::fixture;
use super::input::assert_no_clear_number;
use shikaku::claims::output::{FileColumn, RowWriter};
use shikaku::claims::{check_file, parse, Format, Summary, UkeFile};
use std::ops::Range;

thread_local! {
    static FIXTURE: std::sync::Arc<shikaku::server::live::Live> = fixture::live();
}

fn check_range(file: &UkeFile<'_>, r: &Range<usize>, text: &str, what: &str) {
    assert!(r.start <= r.end, "{what}: a reversed range {r:?}");
    assert!(
        r.end <= text.len(),
        "{what}: {r:?} past the text ({} bytes)",
        text.len()
    );
    assert!(
        text.is_char_boundary(r.start) && text.is_char_boundary(r.end),
        "{what}: {r:?} not on character boundaries"
    );
    assert_eq!(
        file.text(r),
        &text[r.clone()],
        "{what}: text() reads another range"
    );
}

pub fn uke(data: &[u8]) {
    let file = match parse(data) {
        Ok(file) => file,
        Err(e) => return assert_no_clear_number(&e.to_string(), "a claims file error"),
    };
    let text = file.whole_text();
    let mut last_line = 0;
    for r in &file.receipts {
        assert!(r.line > last_line, "receipts out of line order");
        assert!(r.line <= file.lines, "a receipt past the last line");
        last_line = r.line;
        for (range, what) in [
            (&r.number, "RE 2"),
            (&r.sex, "RE 6"),
            (&r.birthdate, "RE 7"),
            (&r.kana, "RE 37"),
        ] {
            check_range(&file, range, text, what);
        }
        if let Some(ins) = &r.insurance {
            for range in [&ins.insurer_number, &ins.symbol, &ins.number, &ins.points] {
                check_range(&file, range, text, "HO");
            }
        }
        if let Some(b) = &r.branch {
            check_range(&file, b, text, "SN 7");
        }
        if let Some(m) = r.month {
            assert!((28..=31).contains(&m.days), "a month of {} days", m.days);
            assert_eq!(
                r.days & !m.all_days(),
                0,
                "a day of service past the month's end"
            );
        }
        if let Some(bad) = &r.malformed {
            assert_no_clear_number(&bad.why, "a malformed field's explanation");
        }
    }
    let generation = FIXTURE.with(|live| live.load());
    let mut writer = RowWriter::new(Format::Csv, FileColumn::Unnamed);
    let mut out = Vec::new();
    let mut summary = Summary::default();
    let mut seen = 0u64;
    writer.begin(&mut out);
    check_file(
        &generation.index,
        "RECEIPTC.UKE",
        &file,
        &mut writer,
        &mut out,
        &mut summary,
        |_, _, _| seen += 1,
    );
    writer.end(&mut out);
    let receipts = file.receipts.len() as u64;
    assert_eq!(seen, receipts, "a receipt checked other than once");
    assert_eq!(
        summary.receipts, receipts,
        "the summary counts other receipts"
    );
    assert_eq!(summary.rows, receipts, "not one row per receipt");
    let by_verdict: u64 = shikaku::claims::Verdict::ALL
        .iter()
        .map(|&v| summary.of_verdict(v))
        .sum();
    assert_eq!(by_verdict, receipts, "verdict counts do not add up");
    assert_eq!(
        summary.by_reason().values().sum::<u64>(),
        receipts,
        "reason counts do not add up"
    );
    let csv_rows = out.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(
        csv_rows > receipts,
        "{csv_rows} CSV lines for {receipts} receipts and a header"
    );
    assert_no_clear_number(&summary.render(), "the claims summary");
}
