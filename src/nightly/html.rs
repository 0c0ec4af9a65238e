//! `report.html`: the build report as one self-contained page for the insurers' data officers
//! (inline CSS and SVG charts, no script, nothing fetched): the totals, findings by rule, the
//! insurers with the highest reject share, the change against the previous generation, and
//! every insurer's rows. Written beside `report.json` from the same (masked) report, so the
//! numbers are the same; each number carries `data-field` naming it, for tests and scrapers.

use super::report::{
    rule_meaning, ChangeReport, Counts, InsurerReport, KohiReport, PayerReport, Report,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The page's file name, beside `report.json`.
pub const REPORT_HTML_FILE: &str = "report.html";

/// Insurers listed in the "highest reject share" and "largest changes" tables.
const TOP: usize = 10;
/// Insurers drawn in the rows-by-insurer chart (all are in its table).
const CHART_INSURERS: usize = 20;

/// Renders the page for `report`, compared with `previous` (the live generation's report when
/// the build began) when there is one. Both should be masked (`Report::masked`).
pub fn render(report: &Report, previous: Option<&Report>) -> String {
    let mut h = String::with_capacity(64 * 1024 + report.insurers.len() * 600);
    let title = format!("shikaku build report {}", report.generation);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    status(&mut h, report);
    summary(&mut h, report);
    by_rule(&mut h, &report.totals);
    reject_share(&mut h, &report.insurers);
    change(&mut h, report, previous);
    insurers(&mut h, &report.insurers);
    change_files(&mut h, report);
    if let Some(kohi) = &report.kohi {
        public_expense(&mut h, kohi);
    }
    if !report.notes.is_empty() {
        h.push_str("<h2>Notes</h2><ul>");
        for n in &report.notes {
            let _ = write!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    h
}

/// The page of a change generation (`report` its own part, masked): what its layer applied
/// and touched, each change file it applied, and a link to its base's page (beside it in
/// `reports/`), which shows the insurers.
pub fn render_layer(report: &Report) -> String {
    let mut h = String::with_capacity(16 * 1024);
    let title = format!("shikaku change generation {}", report.generation);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    status(&mut h, report);
    if let Some(l) = &report.layer {
        let _ = write!(
            h,
            "<p>Layer {} on base {} (parent {}). The base's report, with every insurer: <a href=\"{}/base.html\">{}/base.html</a>.</p>",
            report.layer_count,
            esc(&l.base),
            esc(report.parent.as_deref().unwrap_or("")),
            super::report_files::REPORTS_DIR,
            super::report_files::REPORTS_DIR,
        );
        if l.merged_layers > 0 {
            let _ = write!(
                h,
                "<p>A compaction: this layer merged the {} layers before it into one, from the index alone, and answers as they did. The change files below are theirs, each applied by its own layer; it read none.</p>",
                l.merged_layers
            );
        }
        layer_summary(&mut h, report, l);
        h.push_str("<h2>Change files applied</h2><table><tr><th>file</th><th>read</th><th>applied</th><th>rejected</th></tr>");
        for c in &l.change_files {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&c.file),
                grouped(count(c.rows_read)),
                grouped(count(c.rows_applied)),
                grouped(count(c.rows_rejected)),
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

fn layer_summary(h: &mut String, r: &Report, l: &super::report::LayerReport) {
    let rows_of = |f: fn(&ChangeReport) -> u64| l.change_files.iter().map(f).sum::<u64>();
    h.push_str("<h2>Summary</h2><table>");
    let rows: [(&str, &str, u64); 12] = [
        (
            "Change files applied",
            "layer.change_files",
            l.change_files.len() as u64,
        ),
        ("Rows read", "layer.rows_read", rows_of(|c| c.rows_read)),
        (
            "Rows applied",
            "layer.rows_applied",
            rows_of(|c| c.rows_applied),
        ),
        (
            "Rows rejected",
            "layer.rows_rejected",
            rows_of(|c| c.rows_rejected),
        ),
        (
            "Insurers touched",
            "layer.insurers_touched",
            l.insurers_touched.len() as u64,
        ),
        ("Cards changed", "layer.cards_changed", l.cards_changed),
        ("Cards removed", "layer.cards_removed", l.cards_removed),
        (
            "Persons checked again",
            "layer.persons_touched",
            l.persons_touched,
        ),
        (
            "Records written",
            "layer.records_written",
            l.records_written,
        ),
        ("Bytes written", "layer.bytes_written", l.bytes_written),
        ("Index bytes", "index_bytes", r.index_bytes),
        ("Build time (ms)", "elapsed_ms", r.elapsed_ms),
    ];
    number_rows(h, &rows);
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:2px solid #2b6cb0}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#edf2f7}\
.ok{color:#276749;font-weight:bold}.refused{color:#c53030;font-weight:bold}\
svg text{font-size:12px;font-family:sans-serif}";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` as `1,234,567`.
fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A numeric cell named `field`.
fn num(h: &mut String, field: &str, n: i64) {
    let _ = write!(
        h,
        "<td class=\"n\" data-field=\"{}\">{}</td>",
        esc(field),
        grouped(n)
    );
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn status(h: &mut String, r: &Report) {
    if r.published {
        let _ = write!(
            h,
            "<p><span class=\"ok\">Published</span> on {} (build date)</p>",
            esc(&r.built_on)
        );
    } else {
        let _ = write!(
            h,
            "<p><span class=\"refused\">Refused by the delivery guard</span> (build date {}); the previous generation keeps serving:</p><ul>",
            esc(&r.built_on)
        );
        for why in &r.refused {
            let _ = write!(h, "<li>{}</li>", esc(why));
        }
        h.push_str("</ul>");
    }
}

fn summary(h: &mut String, r: &Report) {
    let t = &r.totals;
    let reused = r.insurers.iter().filter(|i| i.reused).count() as u64;
    h.push_str("<h2>Summary</h2><table>");
    let rows: [(&str, &str, u64); 9] = [
        ("Rows read", "totals.rows_read", t.rows_read),
        ("Rows indexed", "totals.rows_indexed", t.rows_indexed),
        ("Rows rejected", "totals.rows_rejected", t.rows_rejected),
        (
            "Duplicate rows",
            "totals.rows_deduplicated",
            t.rows_deduplicated,
        ),
        (
            "Members covered on the build date",
            "totals.covered_today",
            t.covered_today,
        ),
        ("Insurers", "insurers", r.insurers.len() as u64),
        ("Insurers reused unchanged", "insurers_reused", reused),
        ("Index bytes", "index_bytes", r.index_bytes),
        ("Build time (ms)", "elapsed_ms", r.elapsed_ms),
    ];
    number_rows(h, &rows);
}

/// Table rows of a label and a number named by its field, and the table's end.
fn number_rows(h: &mut String, rows: &[(&str, &str, u64)]) {
    for &(label, field, n) in rows {
        let _ = write!(h, "<tr><th>{label}</th>");
        num(h, field, count(n));
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

/// One bar of a chart: its label and its stacked parts, each a value and a colour.
struct Bar {
    label: String,
    parts: Vec<(u64, &'static str)>,
}

const BLUE: &str = "#2b6cb0";
const RED: &str = "#c53030";
const AMBER: &str = "#d69e2e";
const VIOLET: &str = "#6b46c1";
const GREY: &str = "#a0aec0";

/// A horizontal bar chart, with a legend of `(name, colour)`.
fn bars(h: &mut String, rows: &[Bar], legend: &[(&str, &str)]) {
    let max = rows
        .iter()
        .map(|b| b.parts.iter().map(|p| p.0).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (label_w, bar_w, row_h) = (300.0, 600.0, 18.0);
    let width = label_w + bar_w + 120.0;
    let height = row_h * rows.len() as f64 + 30.0;
    let _ = write!(
        h,
        "<svg role=\"img\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for (i, bar) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + 13.0,
            esc(&bar.label)
        );
        let mut x = label_w;
        for &(value, colour) in &bar.parts {
            let w = value as f64 / max as f64 * bar_w;
            let _ = write!(
                h,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>",
                y + 2.0,
                row_h - 4.0,
            );
            x += w;
        }
        let total: u64 = bar.parts.iter().map(|p| p.0).sum();
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 4.0,
            y + 13.0,
            grouped(count(total))
        );
    }
    let y = row_h * rows.len() as f64 + 18.0;
    for (j, (name, colour)) in legend.iter().enumerate() {
        let x = label_w + j as f64 * 150.0;
        let _ = write!(
            h,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{colour}\"/><text x=\"{}\" y=\"{y}\">{}</text>",
            y - 10.0,
            x + 16.0,
            esc(name)
        );
    }
    h.push_str("</svg>");
}

fn by_rule(h: &mut String, totals: &Counts) {
    h.push_str("<h2>Rejects and warnings by rule</h2>");
    if totals.by_rule.is_empty() {
        h.push_str("<p>No row was rejected or warned about.</p>");
        return;
    }
    // Rejects red, warnings amber, cross-insurer findings violet, duplicates grey.
    let colour = |rule: &str| match rule.as_bytes().first() {
        Some(b'R' | b'F') => RED,
        Some(b'W') => AMBER,
        Some(b'X') => VIOLET,
        _ => GREY,
    };
    let rows: Vec<Bar> = totals
        .by_rule
        .iter()
        .map(|(rule, n)| Bar {
            label: rule.clone(),
            parts: vec![(*n, colour(rule))],
        })
        .collect();
    bars(
        h,
        &rows,
        &[
            ("rejects", RED),
            ("warnings", AMBER),
            ("across insurers", VIOLET),
            ("duplicates", GREY),
        ],
    );
    h.push_str("<table><tr><th>rule</th><th>meaning</th><th>count</th></tr>");
    for (rule, n) in &totals.by_rule {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td>",
            esc(rule),
            rule_meaning(rule)
        );
        num(h, &format!("by_rule.{rule}"), count(*n));
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

/// Rejected rows per thousand read, for ordering (exact, in integers).
fn share_permille(c: &Counts) -> u64 {
    (c.rows_rejected * 1000)
        .checked_div(c.rows_read)
        .unwrap_or(0)
}

fn reject_share(h: &mut String, insurers: &[InsurerReport]) {
    h.push_str("<h2>Insurers with the highest reject share</h2>");
    let mut worst: Vec<&InsurerReport> = insurers
        .iter()
        .filter(|i| i.counts.rows_rejected > 0)
        .collect();
    if worst.is_empty() {
        h.push_str("<p>No insurer had a row rejected.</p>");
        return;
    }
    worst.sort_by(|a, b| {
        let (x, y) = (&a.counts, &b.counts);
        // a/b > c/d ⇔ a·d > c·b: highest share first, exact.
        (y.rows_rejected * x.rows_read.max(1))
            .cmp(&(x.rows_rejected * y.rows_read.max(1)))
            .then(a.insurer_number.cmp(&b.insurer_number))
    });
    worst.truncate(TOP);
    let rows: Vec<Bar> = worst
        .iter()
        .map(|i| Bar {
            label: format!("{} {}", i.insurer_number, i.insurer_name),
            parts: vec![
                (i.counts.rows_rejected, RED),
                (
                    i.counts.rows_read.saturating_sub(i.counts.rows_rejected),
                    GREY,
                ),
            ],
        })
        .collect();
    bars(h, &rows, &[("rejected", RED), ("not rejected", GREY)]);
    h.push_str("<table><tr><th>insurer</th><th>name</th><th>rows read</th><th>rejected</th><th>share (‰)</th></tr>");
    for i in worst {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td>",
            esc(&i.insurer_number),
            esc(&i.insurer_name)
        );
        let key = format!("worst.{}", i.insurer_number);
        num(h, &format!("{key}.rows_read"), count(i.counts.rows_read));
        num(
            h,
            &format!("{key}.rows_rejected"),
            count(i.counts.rows_rejected),
        );
        num(
            h,
            &format!("{key}.permille"),
            count(share_permille(&i.counts)),
        );
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

fn change(h: &mut String, r: &Report, previous: Option<&Report>) {
    h.push_str("<h2>Change against the previous generation</h2>");
    let Some(p) = previous else {
        h.push_str(
            "<p>No previous generation: this is the first build of this data directory.</p>",
        );
        return;
    };
    let _ = write!(h, "<p>Previous generation: {}</p><table><tr><th></th><th>previous</th><th>this build</th><th>change</th></tr>", esc(&p.generation));
    let rows: [(&str, &str, u64, u64); 3] = [
        (
            "Rows indexed",
            "rows_indexed",
            p.totals.rows_indexed,
            r.totals.rows_indexed,
        ),
        (
            "Rows rejected",
            "rows_rejected",
            p.totals.rows_rejected,
            r.totals.rows_rejected,
        ),
        (
            "Members covered on the build date",
            "covered_today",
            p.totals.covered_today,
            r.totals.covered_today,
        ),
    ];
    for (label, field, before, now) in rows {
        let _ = write!(h, "<tr><th>{label}</th>");
        num(h, &format!("previous.totals.{field}"), count(before));
        num(h, &format!("totals.{field}"), count(now));
        num(
            h,
            &format!("change.totals.{field}"),
            count(now) - count(before),
        );
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    let before: BTreeMap<&str, &InsurerReport> = p
        .insurers
        .iter()
        .map(|i| (i.insurer_number.as_str(), i))
        .collect();
    let now: BTreeMap<&str, &InsurerReport> = r
        .insurers
        .iter()
        .map(|i| (i.insurer_number.as_str(), i))
        .collect();
    let listed = |h: &mut String, what: &str, ids: Vec<&str>| {
        if !ids.is_empty() {
            let _ = write!(h, "<p>{what}: {}</p>", esc(&ids.join(", ")));
        }
    };
    listed(
        h,
        "New insurers",
        now.keys()
            .filter(|k| !before.contains_key(*k))
            .copied()
            .collect(),
    );
    listed(
        h,
        "Insurers gone",
        before
            .keys()
            .filter(|k| !now.contains_key(*k))
            .copied()
            .collect(),
    );
    let mut moved: Vec<(&str, &str, i64, i64)> = now
        .iter()
        .filter_map(|(k, i)| {
            let b = before.get(k)?;
            let (was, is) = (count(b.counts.covered_today), count(i.counts.covered_today));
            (was != is).then_some((*k, i.insurer_name.as_str(), was, is))
        })
        .collect();
    moved.sort_by_key(|&(k, _, was, is)| (std::cmp::Reverse((is - was).abs()), k));
    moved.truncate(TOP);
    if moved.is_empty() {
        h.push_str("<p>No insurer's members covered on the build date changed.</p>");
        return;
    }
    h.push_str("<h3>Largest changes in members covered</h3><table><tr><th>insurer</th><th>name</th><th>previous</th><th>this build</th><th>change</th></tr>");
    for (k, name, was, is) in moved {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td>", esc(k), esc(name));
        num(h, &format!("moved.{k}.previous"), was);
        num(h, &format!("moved.{k}.now"), is);
        num(h, &format!("moved.{k}.change"), is - was);
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

fn insurers(h: &mut String, insurers: &[InsurerReport]) {
    h.push_str("<h2>Rows by insurer</h2>");
    let mut largest: Vec<&InsurerReport> = insurers.iter().collect();
    largest.sort_by_key(|i| {
        (
            std::cmp::Reverse(i.counts.rows_read),
            i.insurer_number.clone(),
        )
    });
    largest.truncate(CHART_INSURERS);
    let rows: Vec<Bar> = largest
        .iter()
        .map(|i| {
            let c = &i.counts;
            Bar {
                label: format!("{} {}", i.insurer_number, i.insurer_name),
                parts: vec![
                    (c.rows_indexed, BLUE),
                    (c.rows_rejected, RED),
                    (c.rows_deduplicated, GREY),
                ],
            }
        })
        .collect();
    if insurers.len() > CHART_INSURERS {
        let _ = write!(
            h,
            "<p>The {CHART_INSURERS} largest of {} insurers; the table lists all.</p>",
            insurers.len()
        );
    }
    bars(
        h,
        &rows,
        &[("indexed", BLUE), ("rejected", RED), ("duplicates", GREY)],
    );
    h.push_str("<table><tr><th>insurer</th><th>name</th><th>file</th><th>encoding</th><th>reused</th><th>read</th><th>indexed</th><th>rejected</th><th>duplicates</th><th>replaced</th><th>covered</th></tr>");
    for i in insurers {
        let c = &i.counts;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&i.insurer_number),
            esc(&i.insurer_name),
            esc(i.file.as_deref().unwrap_or("")),
            esc(i.encoding.as_deref().unwrap_or("")),
            if i.reused { "yes" } else { "" }
        );
        let key = format!("insurer.{}", i.insurer_number);
        num(h, &format!("{key}.rows_read"), count(c.rows_read));
        num(h, &format!("{key}.rows_indexed"), count(c.rows_indexed));
        num(h, &format!("{key}.rows_rejected"), count(c.rows_rejected));
        num(
            h,
            &format!("{key}.rows_deduplicated"),
            count(c.rows_deduplicated),
        );
        // Rows change files took out of the state (docs/delivery.md#change-files).
        let _ = write!(
            h,
            "<td class=\"n\">{}</td>",
            grouped(count(c.rows_replaced))
        );
        num(h, &format!("{key}.covered_today"), count(c.covered_today));
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

/// The public-expense registers: each payer's rows, and the findings by rule.
fn public_expense(h: &mut String, kohi: &KohiReport) {
    h.push_str("<h2>Public-expense registers (公費)</h2>");
    h.push_str("<table><tr><th>payer</th><th>name</th><th>file</th><th>encoding</th><th>read</th><th>indexed</th><th>rejected</th><th>duplicates</th><th>valid today</th></tr>");
    let totals = PayerReport {
        payer_number: "total".to_owned(),
        counts: kohi.totals.clone(),
        ..PayerReport::default()
    };
    for p in kohi.payers.iter().chain(std::iter::once(&totals)) {
        let c = &p.counts;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&p.payer_number),
            esc(&p.payer_name),
            esc(p.file.as_deref().unwrap_or("")),
            esc(p.encoding.as_deref().unwrap_or(""))
        );
        let key = format!("payer.{}", p.payer_number);
        num(h, &format!("{key}.rows_read"), count(c.rows_read));
        num(h, &format!("{key}.rows_indexed"), count(c.rows_indexed));
        num(h, &format!("{key}.rows_rejected"), count(c.rows_rejected));
        num(
            h,
            &format!("{key}.rows_deduplicated"),
            count(c.rows_deduplicated),
        );
        num(h, &format!("{key}.covered_today"), count(c.covered_today));
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    if !kohi.totals.by_rule.is_empty() {
        h.push_str("<table><tr><th>rule</th><th>meaning</th><th>rows</th></tr>");
        for (rule, n) in &kohi.totals.by_rule {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(rule),
                esc(rule_meaning(rule)),
                grouped(count(*n))
            );
        }
        h.push_str("</table>");
    }
}

/// Each change file of each insurer and public-expense payer, applied or superseded, with its
/// rows; nothing when the delivery had none.
fn change_files(h: &mut String, report: &Report) {
    let insurers = report
        .insurers
        .iter()
        .map(|i| (&i.insurer_number, &i.changes));
    let payers = report
        .kohi
        .iter()
        .flat_map(|k| &k.payers)
        .map(|p| (&p.payer_number, &p.changes));
    let owners: Vec<(&String, &Vec<ChangeReport>)> = insurers.chain(payers).collect();
    if owners.iter().all(|(_, changes)| changes.is_empty()) {
        return;
    }
    h.push_str("<h2>Change files</h2><table><tr><th>insurer or payer</th><th>file</th><th>outcome</th><th>read</th><th>applied</th><th>rejected</th></tr>");
    for (owner, changes) in owners {
        for c in changes {
            let outcome = match c.outcome {
                super::report::ChangeOutcome::Applied => "applied",
                super::report::ChangeOutcome::Superseded => "superseded",
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{outcome}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(owner),
                esc(&c.file),
                grouped(count(c.rows_read)),
                grouped(count(c.rows_applied)),
                grouped(count(c.rows_rejected)),
            );
        }
    }
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (-1234567, "-1,234,567"),
        ] {
            assert_eq!(grouped(n), s);
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
