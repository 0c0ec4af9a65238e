//! The demo's claims file (`data-gen/demo-claims/`) checked against the demo delivery: by
//! `shikaku claims` as its ground truth says, and by `POST /v1/claims` with the same rows,
//! chunked or not, CSV or JSON, each receipt an audit line.

mod server_support;

use server_support::*;
use shikaku::domain::{Date, PersonKey};
use shikaku::nightly::run::{run, BuildConfig, Reuse};
use shikaku::server::ServeConfig;
use std::path::{Path, PathBuf};
use std::process::Command;

fn demo_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data-gen")
        .join(rel)
}

fn uke() -> PathBuf {
    demo_dir("demo-claims/0110000007/RECEIPTC.UKE")
}

/// The demo delivery built into a new data directory.
fn demo_data() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    run(&BuildConfig {
        snapshots: demo_dir("demo"),
        data: data.path().to_owned(),
        key: PersonKey::demo(),
        built_on: Date::parse(DATE).unwrap(),
        max_drop_percent: 10.0,
        accept: Vec::new(),
        reuse: Reuse::UnchangedInsurers,
        progress: false,
        signing: None,
    })
    .unwrap();
    data
}

fn cli_claims(data: &Path, extra: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .arg("claims")
        .arg("--data")
        .arg(data)
        .args(extra)
        .arg(uke())
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.success(),
    )
}

#[test]
fn the_demo_claims_file_is_checked_as_its_truth_says() {
    let data = demo_data();
    let (rows, summary, ok) = cli_claims(data.path(), &[]);
    assert!(ok, "{summary}");
    let truth = std::fs::read_to_string(demo_dir("demo-claims/truth.csv")).unwrap();
    let want: Vec<String> = truth
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap().1.to_string())
        .collect();
    let got: Vec<String> = rows
        .lines()
        .skip(1)
        .map(|l| l.splitn(6, ',').take(5).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(got, want);
    assert!(summary.contains(&format!(
        "{} receipts in 1 file(s), {0} rows written",
        want.len()
    )));
    // Every verdict and reason of the check is in the demo file.
    for reason in [
        "not_found",
        "multiple",
        "other_qualification",
        "lost",
        "not_yet",
        "partial_month",
        "sex_differs",
        "kana_differs",
        "kohi_not_found",
        "kohi_multiple",
        "kohi_expired",
        "kohi_not_yet",
        "kohi_other_institution",
        "kohi_not_held",
        "malformed: HO 2",
        "malformed: KO 3",
    ] {
        assert!(summary.contains(reason), "no {reason} in\n{summary}");
    }
}

/// The public-expense query `shikaku demo` prints (`demo::kohi_example`) answers as it says:
/// validity 1, and for another institution validity 2 `other_institution`.
#[test]
fn the_demo_public_expense_example_answers_validity_1() {
    let data = demo_data();
    let example = shikaku::demo::kohi_example(&demo_dir("demo"))
        .unwrap()
        .unwrap();
    let mut args = vec!["kohi".to_string()];
    for (k, v) in &example.fields {
        args.push(format!("--{}", k.replace('_', "-")));
        args.push(v.clone());
    }
    let answer = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        serde_json::from_str::<serde_json::Value>(&cli_query(data.path(), &args)).unwrap()
    };
    let v = answer(&args);
    assert_eq!(
        (v["validity"].as_u64(), &v["reason"]),
        (Some(1), &serde_json::Value::Null),
        "{v}"
    );
    let last = args.len() - 1;
    args[last] = "0110113719".into();
    let v = answer(&args);
    assert_eq!(
        (v["validity"].as_u64(), v["reason"].as_str()),
        (Some(2), Some("other_institution")),
        "{v}"
    );
}

#[test]
fn post_v1_claims_answers_the_cli_rows_and_audits_each_receipt() {
    let data = demo_data();
    let (cli_rows, _, _) = cli_claims(data.path(), &[]);
    let (cli_json, _, _) = cli_claims(data.path(), &["--json"]);
    let audit = tempfile::tempdir().unwrap();
    let server = try_start(
        data.path(),
        ServeConfig {
            audit_dir: Some(audit.path().to_owned()),
            ..test_config()
        },
    )
    .unwrap();
    let body = std::fs::read(uke()).unwrap();
    let mut http = Http::connect(server.http_addr());
    let r = http.request("POST", "/v1/claims", &[], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(r.body, cli_rows);
    let r = http.request(
        "POST",
        "/v1/claims",
        &[("Accept", "application/json")],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::from_str::<serde_json::Value>(&cli_json).unwrap()
    );
    // Chunked, in 4 KiB chunks.
    let mut req =
        b"POST /v1/claims HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for chunk in body.chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    http.send_raw(&req);
    let r = http.read_response().unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, cli_rows.as_str()));
    // A file that cannot be read is refused, naming the line.
    let r = http.request(
        "POST",
        "/v1/claims",
        &[],
        b"IR,1\r\nHO,1\r\nRE,1\r\nGO,1\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["error"].as_str().unwrap().contains("line 2"),
        "{}",
        r.body
    );
    server.drain();
    server.join();
    let mut claims = 0;
    for entry in std::fs::read_dir(audit.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["kind"] == "claim" {
                claims += 1;
                assert!(
                    v["verdict"].is_string() && v["receipt"].is_string(),
                    "{line}"
                );
            }
        }
    }
    let receipts = cli_rows.lines().count() - 1;
    assert_eq!(
        claims,
        3 * receipts,
        "an audit line per receipt of each of three requests"
    );
}

#[test]
fn a_claims_body_without_a_valid_token_is_refused_before_it_is_read() {
    use shikaku::domain::InstitutionCode;
    use shikaku::server::{auth::new_entry, AuthTable, Role};
    let data = demo_data();
    let code = InstitutionCode::parse("0110113719").unwrap();
    let (token, line) = new_entry(code, Role::Query).unwrap();
    let server = try_start(
        data.path(),
        ServeConfig {
            auth: Some(AuthTable::parse(&line).unwrap()),
            ..test_config()
        },
    )
    .unwrap();
    // Headers announcing 100 MB, and only the start of the body: the 401 comes at once.
    let mut http = Http::connect(server.http_addr());
    http.send_raw(
        b"POST /v1/claims HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\nIR,1",
    );
    let r = http.read_response().unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(http.closed());
    let bearer = format!("Bearer {code}:{token}");
    let body = std::fs::read(uke()).unwrap();
    let mut http = Http::connect(server.http_addr());
    let r = http.request("POST", "/v1/claims", &[("Authorization", &bearer)], &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http.request(
        "POST",
        "/v1/claims",
        &[("Authorization", "Bearer 0110113719:x")],
        &body,
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

/// `shikaku claims` verifies the parts of the generation its file reaches before the file's
/// first row: with every segment damaged, it writes no row and says which generation failed.
#[test]
fn a_damaged_generation_gives_no_rows() {
    let data = demo_data();
    for generation in std::fs::read_dir(data.path().join("generations")).unwrap() {
        let segments = generation.unwrap().path().join("segments");
        for segment in std::fs::read_dir(segments).unwrap() {
            let path = segment.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 30;
            bytes[last] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let (stdout, stderr, ok) = cli_claims(data.path(), &[]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("failed verification"), "{stderr}");
    assert!(stdout.lines().count() <= 1, "at most the header: {stdout}");
}
