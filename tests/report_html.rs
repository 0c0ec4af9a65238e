//! `report.html` beside `report.json`, rendered by headless Chromium: the page is
//! self-contained (nothing fetched), a screenshot of it is not blank and shows the charts, and
//! every number it names (`data-field`) equals `report.json`'s, of this build and of the one
//! before it.
//!
//! Chromium comes from Debian's `chromium` package, which `.ci/run` installs. Outside CI
//! without it the rendering checks are skipped with a message; with CI=true they never are.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn build(snapshots: &Path, data: &Path, date: &str) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["build", "--date", date, "--snapshots"])
        .arg(snapshots)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = std::fs::read_to_string(data.join("CURRENT")).unwrap();
    data.join("generations").join(id.trim())
}

fn report(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// Every `data-field="name">number<` of a page: the numbers it shows, by name.
fn shown_numbers(html: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for part in html.split("data-field=\"").skip(1) {
        let (name, rest) = part.split_once('"').unwrap();
        let text = rest.split_once('>').unwrap().1.split('<').next().unwrap();
        let n: i64 = text.replace(',', "").parse().unwrap_or_else(|_| {
            panic!("{name} shows {text:?}, not a number");
        });
        // A number shown twice (the totals in the summary and in the comparison) must agree.
        if let Some(earlier) = out.insert(name.to_owned(), n) {
            assert_eq!(earlier, n, "{name} shown as {earlier} and as {n}");
        }
    }
    out
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// What the page must show, computed from the two `report.json`s alone.
fn expected_numbers(now: &Value, before: &Value) -> BTreeMap<String, i64> {
    let mut e = BTreeMap::new();
    let counts = [
        "rows_read",
        "rows_indexed",
        "rows_rejected",
        "rows_deduplicated",
        "covered_today",
    ];
    for c in counts {
        e.insert(format!("totals.{c}"), n(&now["totals"][c]));
    }
    for c in ["rows_indexed", "rows_rejected", "covered_today"] {
        let (was, is) = (n(&before["totals"][c]), n(&now["totals"][c]));
        e.insert(format!("previous.totals.{c}"), was);
        e.insert(format!("change.totals.{c}"), is - was);
    }
    for (rule, count) in now["totals"]["by_rule"].as_object().unwrap() {
        e.insert(format!("by_rule.{rule}"), n(count));
    }
    let insurers = now["insurers"].as_array().unwrap();
    e.insert("insurers".into(), insurers.len() as i64);
    let reused = insurers.iter().filter(|i| i["reused"] == true).count();
    e.insert("insurers_reused".into(), reused as i64);
    e.insert("index_bytes".into(), n(&now["index_bytes"]));
    e.insert("elapsed_ms".into(), n(&now["elapsed_ms"]));
    for i in insurers {
        let id = i["insurer_number"].as_str().unwrap();
        for c in counts {
            e.insert(format!("insurer.{id}.{c}"), n(&i[c]));
        }
    }
    // The public-expense registers: each payer's counts and their totals.
    if let Some(kohi) = now.get("kohi").filter(|k| !k.is_null()) {
        let payer_counts = &counts[..];
        for p in kohi["payers"].as_array().unwrap() {
            let id = p["payer_number"].as_str().unwrap();
            for c in payer_counts {
                e.insert(format!("payer.{id}.{c}"), n(&p[c]));
            }
        }
        for c in payer_counts {
            e.insert(format!("payer.total.{c}"), n(&kohi["totals"][c]));
        }
    }
    // The ten highest reject shares (ties by insurer number), naively in floating point.
    let mut worst: Vec<(&str, i64, i64)> = insurers
        .iter()
        .map(|i| {
            let id = i["insurer_number"].as_str().unwrap();
            (id, n(&i["rows_rejected"]), n(&i["rows_read"]))
        })
        .filter(|&(_, rejected, _)| rejected > 0)
        .collect();
    let share = |r: i64, t: i64| r as f64 / t.max(1) as f64;
    worst.sort_by(|a, b| {
        share(b.1, b.2)
            .partial_cmp(&share(a.1, a.2))
            .unwrap()
            .then(a.0.cmp(b.0))
    });
    for (id, rejected, read) in worst.into_iter().take(10) {
        e.insert(format!("worst.{id}.rows_read"), read);
        e.insert(format!("worst.{id}.rows_rejected"), rejected);
        e.insert(
            format!("worst.{id}.permille"),
            rejected * 1000 / read.max(1),
        );
    }
    // Insurers whose members covered changed, with both counts.
    let was: BTreeMap<&str, i64> = before["insurers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["insurer_number"].as_str().unwrap(),
                n(&i["covered_today"]),
            )
        })
        .collect();
    for i in insurers {
        let id = i["insurer_number"].as_str().unwrap();
        let is = n(&i["covered_today"]);
        if let Some(&w) = was.get(id).filter(|&&w| w != is) {
            e.insert(format!("moved.{id}.previous"), w);
            e.insert(format!("moved.{id}.now"), is);
            e.insert(format!("moved.{id}.change"), is - w);
        }
    }
    e
}

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok());
    if found.is_none() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "chromium is missing under CI: .ci/run must install Debian's chromium package"
        );
        eprintln!("skipped: chromium not found (apt-get install -y chromium)");
    }
    found
}

fn run_chromium(browser: &str, profile: &Path, args: &[String]) -> Vec<u8> {
    let out = Command::new(browser)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{browser} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn the_html_report_shows_report_json_s_numbers_and_renders() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    let data = dir.path().join("data");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("data-gen/demo"),
        &snapshots,
    );
    let first = build(&snapshots, &data, "2026-11-24");
    // The next delivery: one insurer sends a new file without its last 20 members (3% of
    // them, under the delivery guard's 10%).
    let file = snapshots.join("01130012/20261124.csv");
    let text = std::fs::read(&file).unwrap();
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    std::fs::write(
        snapshots.join("01130012/20261125.csv"),
        lines[..lines.len() - 20].concat(),
    )
    .unwrap();
    let second = build(&snapshots, &data, "2026-11-25");
    let (now, before) = (report(&second), report(&first));
    let expected = expected_numbers(&now, &before);
    assert!(
        expected.keys().any(|k| k.starts_with("moved.01130012")),
        "{expected:?}"
    );

    let page = std::fs::read_to_string(second.join("report.html")).unwrap();
    for outside in ["http://", "https://", "<script", "<link", "src=", "url("] {
        assert!(
            !page.contains(outside),
            "the page refers outside itself: {outside}"
        );
    }
    // The page as written says what report.json says, field for field.
    assert_eq!(shown_numbers(&page), expected);

    let Some(browser) = chromium() else { return };
    let url = format!("file://{}", second.join("report.html").display());
    let profile = dir.path().join("chromium-profile");
    let dom = run_chromium(browser, &profile, &["--dump-dom".into(), url.clone()]);
    let dom = String::from_utf8(dom).unwrap();
    assert!(dom.contains("<svg"), "{dom}");
    assert_eq!(shown_numbers(&dom), expected, "as Chromium read the page");

    let shot = dir.path().join("report.png");
    run_chromium(
        browser,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000".into(),
            "--hide-scrollbars".into(),
            url,
        ],
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let rgb: Vec<[u8; 3]> = pixels[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let ink = rgb.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(
        ink * 50 > rgb.len(),
        "the screenshot is blank ({ink} of {} pixels)",
        rgb.len()
    );
    // The bars of the charts: the indexed blue and the rejects' red are on the page.
    for (name, colour) in [
        ("indexed blue", [0x2b, 0x6c, 0xb0]),
        ("reject red", [0xc5, 0x30, 0x30]),
    ] {
        let seen = rgb.iter().filter(|p| **p == colour).count();
        assert!(seen > 500, "{name}: {seen} pixels");
    }
}
