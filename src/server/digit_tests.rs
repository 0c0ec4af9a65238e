//! No reply quotes an individual number: a run of 12 or more digits is sent in every position
//! of RESP and HTTP, in several lengths and forms, with and without `--auth`, and no reply
//! holds such a run in clear (`mask_digit_runs` leaves every reply as it is).

use super::auth::{new_entry, AuthTable, Role};
use super::http::HttpSession;
use super::resp::RespSession;
use super::session::Session;
use super::tests::{feed, shared};
use crate::domain::text::mask_digit_runs;
use crate::domain::InstitutionCode;

/// The forms a number may come in: 12 digits (a valid individual number), longer runs, full
/// width, written with separators.
const NUMBERS: [&str; 6] = [
    "123456789018",
    "123456789012",
    "1234567890123456789012345",
    "１２３４５６７８９０１８",
    "1234-5678-9018",
    "000000000000000000000000000000000000000000000123456789012",
];

/// Every reply to `inputs` (each a whole connection's bytes, delivered at once and a byte at
/// a time) is free of a clear run of 12 or more digits.
fn check<S: Session>(new: impl Fn() -> S, shared: &super::session::Shared, inputs: &[Vec<u8>]) {
    for input in inputs {
        let whole = feed(new(), shared, &[input]).0;
        // A byte at a time too, where a partial frame is what is answered; the long inputs
        // in halves (byte by byte they would take a while in a debug build).
        let step = if input.len() > 512 {
            input.len() / 2 + 1
        } else {
            1
        };
        let bytes: Vec<&[u8]> = input.chunks(step).collect();
        let trickled = feed(new(), shared, &bytes).0;
        for reply in [whole, trickled] {
            let reply = beyond_echo(&reply);
            assert_eq!(
                mask_digit_runs(&reply),
                reply,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

/// `reply` without what a CSV batch answer repeats of its input: the answer CSV repeats the
/// nine input columns as given (so a client can match its rows), which is the client's own
/// text sent back on its own connection; everything shikaku writes is kept.
fn beyond_echo(reply: &str) -> String {
    let Some((head, body)) = reply.split_once("\r\n\r\n") else {
        return reply.to_owned();
    };
    if !head.contains("Content-Type: text/csv") {
        return reply.to_owned();
    }
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body.as_bytes());
    let written: Vec<String> = rows
        .records()
        .map(|r| r.unwrap().iter().skip(9).collect::<Vec<_>>().join(","))
        .collect();
    format!("{head}\r\n\r\n{}", written.join("\n"))
}

/// A RESP command of `args` as a multibulk frame.
fn frame(args: &[&str]) -> Vec<u8> {
    let mut f = format!("*{}\r\n", args.len());
    for a in args {
        f += &format!("${}\r\n{a}\r\n", a.len());
    }
    f.into_bytes()
}

fn resp_inputs(n: &str) -> Vec<Vec<u8>> {
    let card = ["ELIG.CARD", "33120015", "12", "3456", "", "1980-01-23"];
    let mut inputs: Vec<Vec<u8>> = vec![
        format!("*{n}\r\n").into_bytes(),
        format!("*1\r\n${n}\r\n").into_bytes(),
        format!("*1\r\n$4\r\nPING\r\n${n}\r\n").into_bytes(),
        format!("*{n}\r\n$4\r\nPING\r\n").into_bytes(),
        format!("{n}\r\n").into_bytes(),
        format!("{n} {n}\r\n").into_bytes(),
        format!("*1\r\n${}\r\n{n}x\r\n", n.len()).into_bytes(),
        format!("ECHO \"{n}\r\n").into_bytes(),
        format!("{}\r\n", n.repeat(2000)).into_bytes(),
    ];
    for i in 0..card.len() {
        let mut args = card;
        args[i] = n;
        inputs.push(frame(&args));
    }
    let mut dated = card.to_vec();
    dated.push(n);
    inputs.push(frame(&dated));
    dated.push(n);
    inputs.push(frame(&dated));
    for args in [
        vec!["ELIG.PERSON", n],
        vec!["ELIG.PERSON", n, n],
        vec!["ELIG.PERSON", "123456789018", n, "LIMIT"],
        vec!["ELIG.PERSON", "123456789018", "2026-11-24", n],
        vec!["ELIG.PERSON", n, n, n, n, n],
        vec!["AUTH", n],
        vec!["AUTH", n, n],
        vec!["HELLO", n],
        vec!["HELLO", "3", "AUTH", n, n],
        vec!["HELLO", "2", "SETNAME", n],
        vec!["HELLO", "2", n],
        vec!["PING", n],
        vec!["ECHO", n],
        vec!["CLIENT", n],
        vec!["CLIENT", "SETNAME", n],
        vec!["SELECT", n],
        vec!["CONFIG", "GET", n],
        vec!["COMMAND", n],
        vec![n, n],
    ] {
        inputs.push(frame(&args));
    }
    inputs
}

fn http_inputs(n: &str) -> Vec<Vec<u8>> {
    // The number as a chunk size: its value in hex (123456789012 is 1cbe991a14).
    let hex = n
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse::<u64>()
        .map_or_else(|_| n.to_owned(), |v| format!("{v:x}"));
    let post = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut inputs = vec![
        format!("{n} / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        format!("GET /{n} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        format!("GET /v1/generation?q={n} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        format!("GET /healthz HTTP/{n}\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{n}: x\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\nHost: {n}\r\n\r\n"),
        format!("GET /healthz HTTP/1.1\r\nHost: localhost:{n}\r\n\r\n"),
        format!("GET http://{n}/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        format!("GET http://x/{n} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        format!("POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Length: {n}\r\n\r\n"),
        format!("POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: {n}\r\n\r\n"),
        format!("POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: {n}\r\n\r\n"),
        format!("POST /v1/card HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: {n}\r\n\r\n"),
        format!("POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{hex}\r\n"),
        format!("POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{n}\r\n"),
        format!(
            "POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1;{n}\r\nx\r\n0\r\n\r\n"
        ),
        format!(
            "POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{n}: {n}\r\n\r\n"
        ),
        format!("POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n{n}\r\n\r\n"),
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {n}:{n}\r\n\r\n"),
        format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: {n}\r\n\r\n"),
        format!("POST /v1/card HTTP/1.1\r\nHost: localhost\r\nExpect: {n}\r\nContent-Length: 2\r\n\r\n{{}}"),
        format!("POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: {n}\r\nContent-Length: 2\r\n\r\n[]"),
        format!("POST /v1/card HTTP/1.1\r\nHost: localhost\r\nConnection: {n}\r\nContent-Length: 2\r\n\r\n{{}}"),
    ];
    let fields = crate::query::batch::CSV_INPUT_COLUMNS;
    for path in ["/v1/card", "/v1/person"] {
        for field in fields {
            inputs.push(post(path, &format!(r#"{{"{field}":"{n}"}}"#)));
            inputs.push(post(path, &format!(r#"{{"{field}":{n}}}"#)));
            inputs.push(post(path, &format!(r#"{{"{field}":"1","{field}":"{n}"}}"#)));
        }
        inputs.push(post(path, &format!(r#"{{"{n}":"1"}}"#)));
        inputs.push(post(path, &format!(r#"{{"{n}":"1","{n}":"1"}}"#)));
        inputs.push(post(path, n));
        inputs.push(post(path, &format!("[{n}]")));
        inputs.push(post(path, &format!(r#"{{"date":"1"{n}}}"#)));
    }
    for field in fields {
        inputs.push(post("/v1/batch", &format!(r#"[{{"{field}":"{n}"}}]"#)));
        inputs.push(post(
            "/v1/batch",
            &format!(r#"[{{"kind":"card","{field}":{n}}}]"#),
        ));
        inputs.push(post(
            "/v1/batch",
            &format!(r#"[{{"kind":"person","{field}":"{n}"}}]"#),
        ));
    }
    inputs.push(post("/v1/batch", n));
    inputs.push(post("/v1/batch", &format!("{{\"{n}\":1}}")));
    inputs.push(post("/v1/batch", &format!("[{n},\"{n}\"]")));
    let csv = |body: &str| {
        format!(
            "POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let header = fields.join(",");
    inputs.push(csv(&format!("{n}\n1\n")));
    inputs.push(csv(&format!("{header},{n}\n")));
    for i in 0..fields.len() {
        let mut row = vec![""; fields.len()];
        row[0] = if i == 6 { "person" } else { "card" };
        row[i] = n;
        inputs.push(csv(&format!("{header}\n{}\n", row.join(","))));
    }
    inputs.push(csv(&format!("{header}\n\"{n}\n")));
    inputs.into_iter().map(String::into_bytes).collect()
}

#[test]
fn no_reply_holds_an_individual_number() {
    let code = InstitutionCode::parse("0110113719").unwrap();
    let (token, line) = new_entry(code, Role::Admin).unwrap();
    let (_dir, open) = shared(None);
    let (_dir2, guarded) = shared(Some(AuthTable::parse(&line).unwrap()));
    let login = format!("AUTH {code} {token}\r\n").into_bytes();
    for n in NUMBERS {
        let resp = resp_inputs(n);
        check(|| RespSession::new(7), &open, &resp);
        check(|| RespSession::new(7), &guarded, &resp);
        let logged_in: Vec<Vec<u8>> = resp.iter().map(|i| [&login[..], i].concat()).collect();
        check(|| RespSession::new(7), &guarded, &logged_in);
        let http = http_inputs(n);
        check(HttpSession::default, &open, &http);
        check(HttpSession::default, &guarded, &http);
        let bearer = format!("Authorization: Bearer {code}:{token}\r\n");
        let authorized: Vec<Vec<u8>> = http
            .iter()
            .map(|i| {
                let s = String::from_utf8_lossy(i);
                s.replacen("\r\n", &format!("\r\n{bearer}"), 1).into_bytes()
            })
            .collect();
        check(HttpSession::default, &guarded, &authorized);
    }
}
