//! The server over HTTP/1.1: single queries, batches, authentication, limits.

mod server_support;

use server_support::*;
use shikaku::domain::InstitutionCode;
use shikaku::server::{auth::new_entry, AuthTable, Role};

fn card_body(symbol: &str, number: &str, branch: &str, birth: &str) -> String {
    serde_json::json!({
        "insurer_number": "33120015", "symbol": symbol, "number": number,
        "branch": branch, "birthdate": birth, "date": DATE,
    })
    .to_string()
}

fn person_body(n: &str) -> String {
    serde_json::json!({"individual_number": n, "date": DATE}).to_string()
}

#[test]
fn answers_equal_the_cli_for_every_validity() {
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    for (symbol, number, branch, birth, validity) in CARDS {
        let r = http.request(
            "POST",
            "/v1/card",
            &[("Content-Type", "application/json")],
            card_body(symbol, number, branch, birth).as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, cli_card(data.path(), symbol, number, branch, birth));
        assert_eq!(r.json()["validity"], validity);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    for (p, validity) in PERSONS {
        let n = person(p);
        let r = http.request("POST", "/v1/person", &[], person_body(&n).as_bytes());
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, cli_person(data.path(), &n));
        assert_eq!(r.json()["validity"], validity);
    }
    let r = http.request(
        "POST",
        "/v1/person",
        &[],
        format!(
            r#"{{"individual_number":"{}","limit_consent":true}}"#,
            person(P1)
        )
        .as_bytes(),
    );
    assert_eq!(r.json()["qualification"]["limit_category"], "A03");
}

#[test]
fn pipelined_requests_and_other_endpoints() {
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    let body = card_body("12", "3456", "", "1980-01-23");
    let one = format!(
        "POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    http.send_raw(one.repeat(50).as_bytes());
    let expected = cli_card(data.path(), "12", "3456", "", "1980-01-23");
    for _ in 0..50 {
        let r = http.read_response().unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, expected.as_str()));
    }
    let r = http.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["generation"], GENERATION);
    let r = http.request("GET", "/v1/generation", &[], b"");
    assert_eq!(r.status, 200);
    let g = r.json();
    assert_eq!(g["id"], GENERATION);
    assert_eq!(
        (&g["verified"], &g["signed_by"]),
        (&"deep".into(), &serde_json::Value::Null)
    );
    assert_eq!(g["built_on"], "2026-11-20");
    assert_eq!(g["insurers"], 2);
    assert_eq!(g["records"], 8);
    let r = http.request("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("shikaku_queries_total{command=\"card\",via=\"http\",validity=\"1\"} 50\n"),
        "{}",
        r.body
    );
    assert!(r.body.contains(&format!(
        "shikaku_live_generation{{id=\"{GENERATION}\",epoch=\"0\",verified=\"deep\"}} 1"
    )));
    assert!(
        r.body
            .contains("shikaku_open_connections{protocol=\"http\"} 1\n"),
        "{}",
        r.body
    );
    assert!(r.body.contains("shikaku_request_duration_seconds_count"));
    // Errors: JSON with a fitting status, and the connection stays usable.
    let r = http.request("GET", "/nope", &[], b"");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = http.request("GET", "/v1/card", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = http.request(
        "POST",
        "/v1/card",
        &[],
        br#"{"insurer_number":"33120015","number":"1","birthdate":"H31.05.01"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "birthdate");
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("birthdate: "));
    let r = http.request("POST", "/v1/person", &[], b"{not json");
    assert_eq!(r.status, 400);
    let r = http.request(
        "POST",
        "/v1/person",
        &[],
        br#"{"individual_number":"123456789019"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(!r.body.contains("123456789019"));
    // An individual number never travels in a URL.
    let r = http.request(
        "POST",
        &format!("/v1/person?individual_number={}", person(P1)),
        &[],
        b"{}",
    );
    assert_eq!(r.status, 400);
    assert!(!r.body.contains(&person(P1)));
    let r = http.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    // Connection: close is honoured.
    let r = http.request("GET", "/healthz", &[("Connection", "close")], b"");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(http.closed());
}

/// A POST of `pieces` with `Transfer-Encoding: chunked`, a chunk per piece.
fn chunked_request(path: &str, content_type: &str, pieces: &[&[u8]]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for piece in pieces {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    req
}

#[test]
fn batches_json_and_csv() {
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for (symbol, number, branch, birth, _) in CARDS {
        items.push(serde_json::json!({"kind": "card", "insurer_number": "33120015", "symbol": symbol, "number": number, "branch": branch, "birthdate": birth, "date": DATE}));
        expected.push(
            serde_json::from_str::<serde_json::Value>(&cli_card(
                data.path(),
                symbol,
                number,
                branch,
                birth,
            ))
            .unwrap(),
        );
    }
    for (p, _) in PERSONS {
        items.push(
            serde_json::json!({"kind": "person", "individual_number": person(p), "date": DATE}),
        );
        expected.push(
            serde_json::from_str::<serde_json::Value>(&cli_person(data.path(), &person(p)))
                .unwrap(),
        );
    }
    items.insert(3, serde_json::json!({"kind": "card", "insurer_number": "33120015", "number": "1", "birthdate": "1980-02-30"}));
    let body = serde_json::to_vec(&items).unwrap();
    let r = http.request(
        "POST",
        "/v1/batch",
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Streamed with Transfer-Encoding: chunked, each written apart (a chunk per 7 bytes):
    // the same answer.
    let pieces: Vec<&[u8]> = body.chunks(7).collect();
    http.send_raw(&chunked_request("/v1/batch", "application/json", &pieces));
    let streamed = http.read_response().unwrap();
    assert_eq!((streamed.status, &streamed.body), (200, &r.body));
    let answers: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answers.len(), 11);
    assert_eq!(answers[3]["field"], "birthdate");
    let mut answered: Vec<_> = answers.clone();
    answered.remove(3);
    assert_eq!(answered, expected);

    let csv = format!(
        "kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent\r\n\
         card,33120015,12,3456,,1980-01-23,,{DATE},1\r\n\
         person,,,,,,{},{DATE},\r\n\
         card,33120015,12,3456,,1980-13-01,,,\r\n",
        person(P2)
    );
    let r = http.post_csv_batch(csv.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.body);
    assert!(lines[0].starts_with("kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent,validity,validity_name,error,"));
    assert!(
        lines[1].starts_with(&format!(
            "card,33120015,12,3456,,1980-01-23,,{DATE},1,1,eligible,,{DATE},{GENERATION},33120015,"
        )),
        "{}",
        lines[1]
    );
    // The card's last field, then the 16 public-expense columns, empty for a card query.
    assert!(
        lines[1].ends_with(&format!(",A03{}", ",".repeat(16))),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains(",2,invalid,,"), "{}", lines[2]);
    assert!(lines[3].contains(",,,\"birthdate: "), "{}", lines[3]);
    // A CSV batch a line per chunk, as a client writing it row by row sends it.
    let rows: Vec<&[u8]> = csv.split_inclusive('\n').map(str::as_bytes).collect();
    http.send_raw(&chunked_request("/v1/batch", "text/csv", &rows));
    let streamed = http.read_response().unwrap();
    assert_eq!((streamed.status, &streamed.body), (200, &r.body));
    // The same batch with full-width digits, from Windows software in CP932 (Shift_JIS):
    // answered as in UTF-8, in UTF-8.
    let wide = csv.replacen("3456", "３４５６", 1);
    let (cp932, _, _) = encoding_rs::SHIFT_JIS.encode(&wide);
    let in_utf8 = http.post_csv_batch(wide.as_bytes());
    let in_cp932 = http.post_csv_batch(&cp932);
    assert_eq!((in_cp932.status, &in_cp932.body), (200, &in_utf8.body));
    assert!(in_utf8.body.contains(",３４５６,"), "{}", in_utf8.body);

    // Over 10,000 queries: 413; not an array: 400.
    let many = format!("[{}]", vec![r#"{"kind":"card"}"#; 10_001].join(","));
    let r = http.request("POST", "/v1/batch", &[], many.as_bytes());
    assert_eq!(r.status, 413, "{}", r.body);
    let r = http.request("POST", "/v1/batch", &[], b"{}");
    assert_eq!(r.status, 400);
    let r = http.request("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn oversized_and_malformed_requests() {
    let data = data_dir();
    let server = start(data.path(), None);
    let addr = server.http_addr();
    // A body over the limit: 413 and close, without reading it.
    let got = raw_exchange(
        addr,
        b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999\r\n\r\n",
        usize::MAX,
    );
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 413 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Headers too large or too many: 431.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let got = raw_exchange(addr, big.as_bytes(), usize::MAX);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431 "));
    let many = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        "X: y\r\n".repeat(100)
    );
    let got = raw_exchange(addr, many.as_bytes(), usize::MAX);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431 "));
    // Broken framing: 400 and close.
    let got = raw_exchange(addr, b"\x00\x01 garbage\r\n\r\n", usize::MAX);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 400 "));
    // A chunked body over the limit: 413 and close; a coding other than chunked: 501.
    let huge = format!(
        "POST /v1/card HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n4001\r\n{}\r\n0\r\n\r\n",
        "x".repeat(0x4001)
    );
    let got = raw_exchange(addr, huge.as_bytes(), usize::MAX);
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 413 "));
    let got = raw_exchange(
        addr,
        b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n",
        usize::MAX,
    );
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 501 "));
    let got = raw_exchange(
        addr,
        b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n",
        usize::MAX,
    );
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 400 "));
    // Junk of every byte value: an error, no panic; the server still answers.
    let junk: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let _ = raw_exchange(addr, &junk, usize::MAX);
    let mut http = Http::connect(addr);
    assert_eq!(http.request("GET", "/healthz", &[], b"").status, 200);
    // A request arriving a byte at a time.
    let body = person_body(&person(P1));
    let req = format!(
        "POST /v1/person HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for b in req.as_bytes() {
        http.send_raw(&[*b]);
    }
    let r = http.read_response().unwrap();
    assert_eq!(r.body, cli_person(data.path(), &person(P1)));
    // HTTP/1.0 without keep-alive closes.
    let got = raw_exchange(addr, b"GET /healthz HTTP/1.0\r\n\r\n", usize::MAX);
    assert!(String::from_utf8_lossy(&got).contains("Connection: close"));
}

#[test]
fn authentication_and_roles() {
    let data = data_dir();
    let query_code = InstitutionCode::parse("0110113719").unwrap();
    let admin_code = InstitutionCode::parse("1310000003").unwrap();
    let (query_token, query_line) = new_entry(query_code, Role::Query).unwrap();
    let (admin_token, admin_line) = new_entry(admin_code, Role::Admin).unwrap();
    let table = AuthTable::parse(&format!("{query_line}\n{admin_line}\n")).unwrap();
    let server = start(data.path(), Some(table));
    let mut http = Http::connect(server.http_addr());
    let body = person_body(&person(P1));
    let query_auth = format!("Bearer {query_code}:{query_token}");
    let admin_auth = format!("Bearer {admin_code}:{admin_token}");

    // A request with a body refused for its credentials closes its connection (the body is
    // never read): a connection for each.
    let refused = |headers: &[(&str, &str)]| {
        let r = Http::connect(server.http_addr()).request(
            "POST",
            "/v1/person",
            headers,
            body.as_bytes(),
        );
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.header("connection"), Some("close"));
    };
    refused(&[]);
    refused(&[("Authorization", &format!("Bearer {query_code}:wrong"))]);
    refused(&[(
        "Authorization",
        &format!("Basic {query_code}:{query_token}"),
    )]);
    // Health checks need no token.
    assert_eq!(http.request("GET", "/healthz", &[], b"").status, 200);

    for auth in [&query_auth, &admin_auth] {
        let r = http.request(
            "POST",
            "/v1/person",
            &[("Authorization", auth)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, cli_person(data.path(), &person(P1)));
        assert_eq!(
            http.request("GET", "/v1/generation", &[("Authorization", auth)], b"")
                .status,
            200
        );
    }
    // /metrics is for admins.
    let r = http.request("GET", "/metrics", &[("Authorization", &query_auth)], b"");
    assert_eq!(r.status, 403);
    let r = http.request("GET", "/metrics", &[("Authorization", &admin_auth)], b"");
    assert_eq!(r.status, 200);
    // The wrong token above is counted, for alerting on guessing (the missing and the Basic
    // headers are not credentials).
    assert!(
        r.body
            .contains("\nshikaku_auth_refused_total{protocol=\"http\"} 1\n"),
        "{}",
        r.body
    );
    // A cached credential does not let a different one through.
    let r = http.request(
        "POST",
        "/v1/person",
        &[(
            "Authorization",
            &format!("Bearer {admin_code}:{query_token}"),
        )],
        body.as_bytes(),
    );
    assert_eq!(r.status, 401);
}

/// Regression: every malformed query of a batch was counted as a card query in /metrics,
/// person queries included.
#[test]
fn regression_batch_errors_count_under_their_kind() {
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    let json = br#"[{"kind":"person","individual_number":"1"},{"kind":"person","individual_number":2},{"kind":"card"},{"number":"1"}]"#;
    let r = http.request("POST", "/v1/batch", &[], json);
    assert_eq!(r.status, 200, "{}", r.body);
    let csv = "kind,individual_number\r\nperson,1\r\nperson,\r\nbogus,1\r\n";
    let r = http.post_csv_batch(csv.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    let metrics = http.request("GET", "/metrics", &[], b"").body;
    for (kind, errors) in [("person", 4), ("card", 1), ("unknown", 2)] {
        let line = format!(
            "shikaku_queries_total{{command=\"{kind}\",via=\"batch\",validity=\"error\"}} {errors}\n"
        );
        assert!(metrics.contains(&line), "{line}{metrics}");
    }
    assert!(!metrics.contains("command=\"unknown\",via=\"batch\",validity=\"1\""));
}

/// A generation signed by a key the server trusts is served as signed, and says so in
/// `/v1/generation` and `/metrics` (the only test of this file that sets trusted keys; the
/// others' generations are unsigned, deep-checked whatever is trusted).
#[test]
fn a_signed_generation_says_so() {
    use shikaku::signing::{new_key_file, sign_generation, SigningKey, TrustedKeys};
    let data = data_dir();
    let keys = tempfile::tempdir().unwrap();
    let public = new_key_file(&keys.path().join("signing.key")).unwrap();
    let signer = SigningKey::load(&keys.path().join("signing.key")).unwrap();
    let store = shikaku::generations::Store::new(data.path());
    sign_generation(&store.generation_dir(GENERATION), GENERATION, &signer).unwrap();
    assert!(shikaku::signing::set_trusted_keys(TrustedKeys::of([
        public
    ])));
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    let g = http.request("GET", "/v1/generation", &[], b"").json();
    assert_eq!(g["verified"], "signed");
    assert_eq!(g["signed_by"], public.id().to_string());
    let metrics = http.request("GET", "/metrics", &[], b"").body;
    assert!(metrics.contains(&format!(
        "shikaku_live_generation{{id=\"{GENERATION}\",epoch=\"0\",verified=\"signed\"}} 1"
    )));
}
