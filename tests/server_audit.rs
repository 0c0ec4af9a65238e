//! The audit log (`serve --audit-dir`): one line per query answered over RESP, HTTP and in
//! batches, naming the client, and never an individual number in clear.

mod server_support;

use server_support::*;
use shikaku::domain::{IndividualNumber, InstitutionCode, PersonKey};
use shikaku::server::{auth::new_entry, AuthTable, Role, ServeConfig};

/// Every line of every audit file in `dir`, and the files' whole text.
fn audit_lines(dir: &std::path::Path) -> (Vec<serde_json::Value>, String) {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with("audit-") && name.ends_with("-0000.jsonl"),
            "{name}"
        );
        text.push_str(&std::fs::read_to_string(&path).unwrap());
    }
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (lines, text)
}

#[test]
fn every_query_is_audited_with_its_client_and_no_individual_number() {
    let data = data_dir();
    let audit = tempfile::tempdir().unwrap();
    let code = InstitutionCode::parse("0110113719").unwrap();
    let (token, line) = new_entry(code, Role::Query).unwrap();
    let server = try_start(
        data.path(),
        ServeConfig {
            auth: Some(AuthTable::parse(&line).unwrap()),
            audit_dir: Some(audit.path().to_owned()),
            ..test_config()
        },
    )
    .unwrap();
    let addr = server.resp_addr();
    let mut con = redis::Client::open(format!("redis://{code}:{token}@{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let (symbol, number, branch, birth, validity) = CARDS[0];
    resp_card(&mut con, (symbol, number, branch, birth)).unwrap();
    let _: String = redis::cmd("ELIG.PERSON")
        .arg(person(P1))
        .arg(DATE)
        .query(&mut con)
        .unwrap();
    assert!(resp_card(&mut con, ("12", "1", "", "1980-02-30")).is_err());
    let mut http = Http::connect(server.http_addr());
    let bearer = format!("Bearer {code}:{token}");
    let body = format!(
        r#"[{{"kind":"person","individual_number":"{}","date":"{DATE}"}},{{"kind":"person","individual_number":"1"}}]"#,
        person(P2)
    );
    let r = http.request(
        "POST",
        "/v1/batch",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Draining writes what the cores buffered.
    server.drain();
    server.join();

    let (lines, text) = audit_lines(audit.path());
    for p in [P1, P2] {
        assert!(!text.contains(&person(p)), "{text}");
    }
    let key = PersonKey::demo();
    let hash_hex = |first11| {
        let h = key.hash(&IndividualNumber::from_first11(first11));
        h.0.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let mut got: Vec<String> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["client"], code.as_str(), "{l}");
            assert!(l["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{l}");
            assert_eq!(l["generation"], GENERATION, "{l}");
            assert!(l["at"].as_str().unwrap().ends_with("+09:00"), "{l}");
            let subject = match l["kind"].as_str() {
                Some("card") if l["validity"].is_null() => "malformed card".to_owned(),
                Some("card") => format!(
                    "card {}:{}:{}:{}",
                    l["insurer_number"], l["symbol"], l["number"], l["branch"]
                ),
                Some("person") if l["validity"].is_null() => "malformed person".to_owned(),
                Some("person") => {
                    let p = [P1, P2]
                        .into_iter()
                        .find(|&p| l["person"] == hash_hex(p))
                        .unwrap_or_else(|| panic!("unknown person hash: {l}"));
                    assert_eq!(
                        l["individual_number"],
                        format!("********{}", &person(p)[8..]),
                        "{l}"
                    );
                    format!("person {p}")
                }
                _ => panic!("{l}"),
            };
            format!("{} {subject} {} {}", l["via"], l["date"], l["validity"])
        })
        .collect();
    got.sort();
    let today = shikaku::domain::Date::today_jst().to_string();
    let mut expected = vec![
        format!("\"resp\" card \"33120015\":\"12\":\"3456\":null \"{DATE}\" {validity}"),
        format!("\"resp\" person {P1} \"{DATE}\" 1"),
        format!("\"resp\" malformed card \"{today}\" null"),
        format!("\"batch\" person {P2} \"{DATE}\" 2"),
        format!("\"batch\" malformed person \"{today}\" null"),
    ];
    expected.sort();
    assert_eq!(got, expected);
}

/// Regression guard for the start: a directory that cannot be written stops the server
/// with an error naming it, instead of serving unaudited.
#[test]
fn an_unwritable_audit_directory_stops_the_start() {
    let data = data_dir();
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = try_start(
        data.path(),
        ServeConfig {
            audit_dir: Some(file.path().join("audit")),
            ..test_config()
        },
    )
    .err()
    .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains(&file.path().join("audit").display().to_string()),
        "{message}"
    );
}
