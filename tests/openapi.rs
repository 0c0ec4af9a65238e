//! docs/openapi.yaml against a running server: every answer the server gives here (each
//! validity of card and person queries, JSON and CSV batches, errors, the operations
//! endpoints) must be documented for its path, method, status and content type, and must
//! validate against the document's schema for it; so must the requests sent. The document's
//! paths are the server's endpoints, no more and no fewer.

mod server_support;

use serde_json::{json, Value};
use server_support::*;

/// The OpenAPI document, read from YAML into JSON values.
struct Spec {
    doc: Value,
}

impl Spec {
    fn load() -> Spec {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let doc: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
        Spec { doc }
    }

    /// `v`, or what its `$ref` names when it is a reference into this document.
    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved reference {r}")),
            None => v,
        }
    }

    fn operation(&self, method: &str, path: &str) -> &Value {
        let key = path.replace('~', "~0").replace('/', "~1");
        self.doc
            .pointer(&format!("/paths/{key}/{}", method.to_ascii_lowercase()))
            .unwrap_or_else(|| panic!("{method} {path} is not in docs/openapi.yaml"))
    }

    /// A validator for `schema`, a schema of this document whose references point into it.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.as_object().expect("a schema object").clone();
        root.insert("components".into(), self.doc["components"].clone());
        jsonschema::draft202012::new(&Value::Object(root))
            .unwrap_or_else(|e| panic!("schema {schema}: {e}"))
    }

    fn response_schema(&self, method: &str, path: &str, status: u16, media: &str) -> &Value {
        let response = if status == 405 {
            // The answer to a method the path does not take: not an operation of the path,
            // so the document gives it once, as a shared response.
            let key = path.replace('~', "~0").replace('/', "~1");
            let methods = self.doc.pointer(&format!("/paths/{key}"));
            assert!(methods.is_some(), "{path} is not in docs/openapi.yaml");
            assert!(methods.unwrap().get(method.to_ascii_lowercase()).is_none());
            &self.doc["components"]["responses"]["MethodNotAllowed"]
        } else if let Some(shared) = head_refusal(status) {
            // Refused for its head, before its path is looked at: shared by every path.
            &self.doc["components"]["responses"][shared]
        } else {
            let responses = &self.operation(method, path)["responses"];
            responses
                .get(status.to_string())
                .map(|r| self.deref(r))
                .unwrap_or_else(|| panic!("{method} {path}: status {status} is not documented"))
        };
        response
            .pointer(&format!("/content/{}/schema", media.replace('/', "~1")))
            .unwrap_or_else(|| panic!("{method} {path} {status}: {media} is not documented"))
    }

    /// Validates a response to `method path` against its documented schema.
    fn check_response(&self, method: &str, path: &str, r: &Response) {
        let content_type = r.header("content-type").expect("a Content-Type");
        let media = content_type.split(';').next().unwrap().trim();
        let schema = self.response_schema(method, path, r.status, media);
        let instance = if media == "application/json" {
            r.json()
        } else {
            Value::String(r.body.clone())
        };
        self.expect_valid(schema, &instance, &format!("{method} {path} {}", r.status));
    }

    /// Validates a request body sent to `method path` against its documented schema.
    fn check_request(&self, method: &str, path: &str, media: &str, body: &Value) {
        let schema = self
            .operation(method, path)
            .pointer(&format!(
                "/requestBody/content/{}/schema",
                media.replace('/', "~1")
            ))
            .unwrap_or_else(|| panic!("{method} {path}: no {media} request body documented"));
        self.expect_valid(schema, body, &format!("request to {method} {path}"));
    }

    fn expect_valid(&self, schema: &Value, instance: &Value, what: &str) {
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{what}: {errors:#?}\n{instance}");
    }

    fn schema(&self, name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    fn is_valid(&self, name: &str, instance: &Value) -> bool {
        self.validator(&self.schema(name)).is_valid(instance)
    }
}

/// The shared response of a status the server answers for a request's head alone, whatever
/// its path.
fn head_refusal(status: u16) -> Option<&'static str> {
    match status {
        417 => Some("ExpectationFailed"),
        421 => Some("MisdirectedRequest"),
        _ => None,
    }
}

fn card_body(symbol: &str, number: &str, branch: &str, birth: &str) -> Value {
    json!({
        "insurer_number": "33120015", "symbol": symbol, "number": number,
        "branch": branch, "birthdate": birth, "date": DATE,
    })
}

fn post_json(http: &mut Http, spec: &Spec, path: &str, body: &Value) -> Response {
    spec.check_request("POST", path, "application/json", body);
    let r = http.request(
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    spec.check_response("POST", path, &r);
    r
}

#[test]
fn answers_of_every_validity_match_the_schemas() {
    let spec = Spec::load();
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    for (symbol, number, branch, birth, validity) in CARDS {
        let r = post_json(
            &mut http,
            &spec,
            "/v1/card",
            &card_body(symbol, number, branch, birth),
        );
        assert_eq!(
            (r.status, r.json()["validity"].as_u64()),
            (200, Some(validity.into()))
        );
    }
    for (p, validity) in PERSONS {
        let body = json!({"individual_number": person(p), "date": DATE, "limit_consent": true});
        let r = post_json(&mut http, &spec, "/v1/person", &body);
        assert_eq!(
            (r.status, r.json()["validity"].as_u64()),
            (200, Some(validity.into()))
        );
    }
    // Malformed queries: each names its field, and the document says so.
    let malformed = [
        (
            "/v1/card",
            card_body("12", "3456", "", "1980-02-30"),
            "birthdate",
        ),
        (
            "/v1/card",
            json!({"insurer_number": "33120016", "number": "1", "birthdate": "1980-01-01"}),
            "insurer_number",
        ),
        (
            "/v1/person",
            json!({"individual_number": "123456789019"}),
            "individual_number",
        ),
    ];
    for (path, body, field) in malformed {
        let r = post_json(&mut http, &spec, path, &body);
        assert_eq!((r.status, r.json()["field"].as_str()), (400, Some(field)));
    }
    // Bodies the request schema refuses are refused by the server too, as documented.
    for (path, body) in [
        (
            "/v1/card",
            json!({"insurer_number": 33120015, "number": "1", "birthdate": "x"}),
        ),
        (
            "/v1/person",
            json!({"individual_number": person(P1), "colour": "red"}),
        ),
        ("/v1/person", json!({})),
    ] {
        let op = spec.operation("POST", path);
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        assert!(!spec.validator(schema).is_valid(&body), "{body}");
        let r = http.request("POST", path, &[], body.to_string().as_bytes());
        spec.check_response("POST", path, &r);
        assert_eq!(r.status, 400, "{}", r.body);
    }
}

#[test]
fn batches_match_the_schemas() {
    let spec = Spec::load();
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    let mut queries: Vec<Value> = CARDS
        .iter()
        .map(|&(s, n, b, birth, _)| {
            let mut q = card_body(s, n, b, birth);
            q["kind"] = json!("card");
            q
        })
        .collect();
    queries.extend(
        PERSONS
            .iter()
            .map(|&(p, _)| json!({"kind": "person", "individual_number": person(p), "date": DATE})),
    );
    // A public-expense query of a payer the index does not hold: validity 4.
    queries.push(json!({"kind": "kohi", "payer_number": "54136015",
        "recipient_number": "0123455", "birthdate": "1980-01-23", "date": DATE}));
    let good = queries.len();
    spec.check_request("POST", "/v1/batch", "application/json", &json!(queries));
    // Malformed queries, which the request schema refuses and the server answers in their
    // slots.
    for bad in [
        json!({"kind": "card", "insurer_number": "33120015", "number": "1"}),
        json!({"kind": "lorry"}),
    ] {
        assert!(!spec.validator(&spec.schema("BatchQuery")).is_valid(&bad));
        queries.push(bad);
    }
    let body = Value::Array(queries).to_string();
    let r = http.request("POST", "/v1/batch", &[], body.as_bytes());
    spec.check_response("POST", "/v1/batch", &r);
    assert_eq!(r.status, 200, "{}", r.body);
    let answers = r.json();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), good + 2);
    assert_eq!(
        answers[good - 1]["reason"],
        Value::Null,
        "{}",
        answers[good - 1]
    );
    assert_eq!(answers[good - 1]["validity"], 4);
    assert_eq!(answers[good]["field"], "birthdate");
    assert_eq!(answers[good + 1]["field"], "kind");

    let csv = format!(
        "kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,payer_number,recipient_number\r\n\
         card,33120015,12,3456,,1980-01-23,,{DATE},,\r\n\
         person,,,,,,{},{DATE},,\r\n\
         person,,,,,,{},{DATE},,\r\n\
         card,33120015,12,3456,,1980-02-30,,{DATE},,\r\n\
         kohi,,,,,1980-01-23,,{DATE},54136015,0123455\r\n",
        person(P1),
        person(P5),
    );
    spec.check_request("POST", "/v1/batch", "text/csv", &Value::String(csv.clone()));
    let r = http.post_csv_batch(csv.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    spec.check_response("POST", "/v1/batch", &r);
    // What a pattern cannot say: 45 cells in every row, one row per query, in order.
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(r.body.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|row| row.len() == 45), "{}", r.body);
    let validities: Vec<&str> = rows.iter().map(|row| &row[9]).collect();
    // The public-expense query: a payer the index does not hold, validity 4.
    assert_eq!(validities, ["1", "1", "5", "", "4"]);
    assert_eq!(&rows[4][29], "54136015");
    assert!(rows[3][11].starts_with("birthdate: "), "{}", &rows[3][11]);

    // Whole batches refused, as documented.
    let r = http.post_csv_batch(b"kind,colour\r\ncard,red\r\n");
    spec.check_response("POST", "/v1/batch", &r);
    assert_eq!(r.status, 400);
    let r = http.request("POST", "/v1/batch", &[], b"{\"not\":\"an array\"}");
    spec.check_response("POST", "/v1/batch", &r);
    assert_eq!(r.status, 400);
    let many = Value::Array(vec![json!({"kind": "person"}); 10_001]);
    let r = http.request("POST", "/v1/batch", &[], many.to_string().as_bytes());
    spec.check_response("POST", "/v1/batch", &r);
    assert_eq!(r.status, 413);
}

#[test]
fn operations_endpoints_and_errors_match_the_schemas() {
    let spec = Spec::load();
    let data = data_dir();
    let (table, query_auth, admin_auth) = query_and_admin_clients();
    let server = start(data.path(), Some(table));
    // A connection per request: a request with a body refused for its credentials closes its
    // connection (the body is never read).
    let check = |method: &str, path: &str, auth: Option<&str>, body: &[u8], status: u16| {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let r = Http::connect(server.http_addr()).request(method, path, &headers, body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        spec.check_response(method, path, &r);
        r
    };
    check("GET", "/healthz", None, b"", 200);
    check("GET", "/v1/generation", Some(&query_auth), b"", 200);
    check("GET", "/v1/generation", None, b"", 401);
    let wrong = "Bearer 0110113719:wrong".to_owned();
    check("POST", "/v1/card", Some(&wrong), b"{}", 401);
    check("GET", "/metrics", Some(&query_auth), b"", 403);
    check("GET", "/metrics", Some(&admin_auth), b"", 200);
    check("POST", "/admin/reload", Some(&query_auth), b"", 403);
    check("POST", "/admin/reload", Some(&admin_auth), b"", 202);
    check("GET", "/v1/card", Some(&query_auth), b"", 405);
    check("POST", "/healthz", None, b"", 405);
    let big = vec![b' '; 17 * 1024];
    check("POST", "/v1/person", Some(&query_auth), &big, 413);

    // The paths the server routes are the document's, no more and no fewer: the 404
    // message lists them.
    let mut http = Http::connect(server.http_addr());
    let r = http.request("GET", "/nowhere", &[], b"");
    assert_eq!(r.status, 404);
    assert!(spec.is_valid("Error", &r.json()));
    let mut routed: Vec<String> = r.json()["error"]
        .as_str()
        .unwrap()
        .split([' ', ','])
        .filter(|w| w.starts_with('/'))
        .map(str::to_owned)
        .collect();
    let mut documented: Vec<String> = spec.doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    routed.sort();
    documented.sort();
    assert_eq!(routed, documented);
    // An individual number in a URL is refused (400 is documented for every query path).
    let r = http.request("POST", &format!("/v1/person?n={}", person(P1)), &[], b"{}");
    assert_eq!(r.status, 400);
    spec.check_response("POST", "/v1/person", &r);
}

/// The refusals of a request's head (issue 27) are documented, whatever the path: no `Host`
/// (400), a host that is not loopback without `--auth` (421), an unknown `Expect` (417).
#[test]
fn head_refusals_match_the_schemas() {
    let spec = Spec::load();
    let data = data_dir();
    let server = start(data.path(), None);
    let check = |path: &str, head: &str, status: u16| {
        let mut http = Http::connect(server.http_addr());
        http.send_raw(
            format!("POST {path} HTTP/1.1\r\n{head}Content-Length: 2\r\n\r\n{{}}").as_bytes(),
        );
        let r = http.read_response().expect("a response");
        assert_eq!(r.status, status, "{path} {head:?}: {}", r.body);
        spec.check_response("POST", path, &r);
        assert!(http.closed(), "{path} {head:?}: the connection is closed");
    };
    for path in ["/v1/card", "/v1/batch", "/admin/reload"] {
        check(path, "Host: evil.example\r\n", 421);
        check(path, "Host: localhost\r\nExpect: 200-ok\r\n", 417);
    }
    check("/v1/card", "", 400);
    check("/v1/person", "Host: localhost\r\nHost: localhost\r\n", 400);
}

/// The schemas are strict enough to catch an answer that drifted from the document.
#[test]
fn schemas_refuse_answers_that_break_the_rules() {
    let spec = Spec::load();
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    let (s, n, b, birth, _) = CARDS[0];
    let r = http.request(
        "POST",
        "/v1/card",
        &[],
        card_body(s, n, b, birth).to_string().as_bytes(),
    );
    let eligible = r.json();
    assert!(spec.is_valid("CardAnswer", &eligible));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = eligible.clone();
        f(&mut v);
        v
    };
    let cases: [(&str, Value); 8] = [
        (
            "validity 4 with a record",
            broken(&|v| v["validity"] = json!(4)),
        ),
        (
            "name of another validity",
            broken(&|v| v["validity_name"] = json!("invalid")),
        ),
        (
            "copay ratio as text",
            broken(&|v| v["qualification"]["copay_ratio"] = json!("30")),
        ),
        (
            "branch as a number",
            broken(&|v| v["qualification"]["branch"] = json!(0)),
        ),
        ("date not ISO", broken(&|v| v["date"] = json!("R8.11.24"))),
        (
            "an absent value left out",
            broken(&|v| {
                v["qualification"]
                    .as_object_mut()
                    .unwrap()
                    .remove("limit_category");
            }),
        ),
        ("an unknown field", broken(&|v| v["extra"] = json!(1))),
        (
            "validity 1 without its record",
            broken(&|v| {
                v.as_object_mut().unwrap().remove("qualification");
            }),
        ),
    ];
    for (what, answer) in cases {
        assert!(!spec.is_valid("CardAnswer", &answer), "{what}: {answer}");
    }
    // A card query's 5 has no list; a person query's has one.
    let multiple =
        json!({"validity": 5, "validity_name": "multiple", "date": DATE, "generation": "g"});
    assert!(spec.is_valid("CardAnswer", &multiple));
    assert!(!spec.is_valid("PersonAnswer", &multiple));
}

/// `POST /v1/claims` with the demo's claims file: its CSV and JSON rows match the schemas.
#[test]
fn claims_answers_match_the_schemas() {
    let spec = Spec::load();
    let data = data_dir();
    let server = start(data.path(), None);
    let mut http = Http::connect(server.http_addr());
    let uke = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data-gen/demo-claims/0110000007/RECEIPTC.UKE"
    ))
    .unwrap();
    let r = http.request("POST", "/v1/claims", &[], &uke);
    assert_eq!(r.status, 200, "{}", r.body);
    spec.check_response("POST", "/v1/claims", &r);
    let csv_rows = r.body.lines().count() - 1;
    let r = http.request(
        "POST",
        "/v1/claims",
        &[("Accept", "application/json")],
        &uke,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    spec.check_response("POST", "/v1/claims", &r);
    assert_eq!(r.json().as_array().unwrap().len(), csv_rows);
    let r = http.request("POST", "/v1/claims", &[], b"XX,1\r\n");
    assert_eq!(r.status, 400, "{}", r.body);
    spec.check_response("POST", "/v1/claims", &r);
}

/// A replica following a fleet adds `fleet` to `/healthz` and `/v1/generation`: what its report
/// writes, behind and in trouble or keeping up, matches the schema, and a wrong one does not.
#[test]
fn a_replicas_fleet_report_matches_the_schemas() {
    use shikaku::server::live::FleetReport;
    let spec = Spec::load();
    let report = |facts: shikaku::fleet::health::Facts| {
        let health = shikaku::fleet::FollowHealth::new("tokyo-1");
        health.update(|f| *f = facts);
        let mut out = Vec::new();
        health.write_json(&mut out, "g1");
        serde_json::from_slice::<Value>(&out).unwrap()
    };
    use shikaku::fleet::trouble::{Trouble, Troubles};
    let mut troubles = Troubles::default();
    troubles.settle(
        |_| true,
        vec![
            Trouble::DownloadFailed {
                id: "g2".into(),
                why: "the store cannot be read".into(),
            },
            Trouble::UnnamableKey {
                key: "p/generations/../x".into(),
            },
        ],
    );
    let behind = report(shikaku::fleet::health::Facts {
        fleet_live: Some("g2".into()),
        fleet_changed_ms: shikaku::fleet::unix_now_ms() - 5_000,
        stored_up_to_live: vec!["g1".into(), "g2".into()],
        ready: vec!["g1".into()],
        store_seen_ms: shikaku::fleet::unix_now_ms(),
        troubles,
        download_failures: 3,
    });
    assert_eq!(behind["troubles"].as_array().unwrap().len(), 2, "{behind}");
    assert_eq!(behind["behind"], true, "{behind}");
    assert!(behind["behind_seconds"].as_u64().unwrap() >= 4, "{behind}");
    assert_eq!(behind["generations_behind"], 1, "{behind}");
    let fresh = report(shikaku::fleet::health::Facts::default());
    assert_eq!(fresh["fleet_live"], Value::Null, "{fresh}");
    for fleet in [behind, fresh] {
        let health = json!({"status": "ok", "generation": "g1", "fleet": fleet});
        spec.expect_valid(&spec.schema("Health"), &health, "replica /healthz");
        let generation = json!({"id": "g1", "epoch": 0, "built_on": "2026-11-24", "insurers": 1,
            "records": 1, "persons": 1, "verified": "signed", "signed_by": "ed25519:0123456789abcdef",
            "last_reload_refused": null, "fleet": fleet});
        spec.expect_valid(
            &spec.schema("Generation"),
            &generation,
            "replica /v1/generation",
        );
        let mut wrong = fleet.clone();
        wrong["behind"] = json!("yes");
        assert!(!spec.is_valid("FleetReplica", &wrong));
        let mut wrong = fleet.clone();
        wrong["troubles"] = json!([{"kind": "unheard_of", "generation": null, "message": "x"}]);
        assert!(!spec.is_valid("FleetReplica", &wrong));
    }
}
