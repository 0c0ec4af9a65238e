//! Data-driven tests of the protocol sessions: `check(input, expected output)`, with the input
//! delivered whole, split at every byte, and a byte at a time; each must give the same bytes.

use super::auth::{new_entry, AuthTable, Role};
use super::http::HttpSession;
use super::live::Live;
use super::metrics::CoreMetrics;
use super::resp::RespSession;
use super::session::{Ctx, Session, Shared};
use crate::domain::*;
use crate::index::MappedIndex;
use crate::query::answer::answer_card;
use crate::query::{CardFields, CardQuery};
use crate::testing::{build_with_kohi, insurer, Member, INSURER, INSURER_NAME};
use std::sync::Arc;

const TODAY: &str = "2026-11-24";

fn d(s: &str) -> Date {
    Date::parse(s).unwrap()
}

/// The local program (88) of [`live`]'s certificates.
const LOCAL_PAYER: &str = "88130018";

/// One member, 33120015 12/3456 born 1980-01-23, covered since 2015-04-01; and two
/// certificates of a local program (88130018), recipients `A-1` and `B-2222`, born
/// 1980-01-23, from 2020-04-01.
fn live() -> (tempfile::TempDir, Arc<Live>) {
    let member = Member {
        person: Some(12345678901),
        ..Member::default()
    };
    let rows = insurer(
        INSURER,
        INSURER_NAME,
        InsurerKind::Kyosai,
        "2026-11-01",
        &[member],
    );
    let payer = PayerNumber::parse(LOCAL_PAYER).unwrap();
    let cert = |recipient: &str| Certificate {
        payer,
        recipient: recipient.into(),
        individual_number: None,
        name: "公費 花子".into(),
        name_kana: "コウヒ ハナコ".into(),
        sex: Some(Sex::Female),
        birthdate: d("1980-01-23"),
        valid_from: d("2020-04-01"),
        valid_to: None,
        copay_limit_yen: Some(0),
        institutions: Vec::new(),
    };
    let certs = [cert("A-1"), cert("B-2222")];
    let bytes = build_with_kohi(
        vec![rows],
        &[(payer, "子ども医療費助成")],
        &certs,
        TODAY,
        "g-unit",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = crate::nightly::write_files(&bytes, dir.path()).unwrap();
    let index = MappedIndex::open_file(&path, PersonKey::demo()).unwrap();
    (dir, Arc::new(Live::new(index).unwrap()))
}

/// The member's individual number, in clear (test data).
fn member_number() -> String {
    crate::testing::individual_number(12345678901)
}

pub(super) fn shared(auth: Option<AuthTable>) -> (tempfile::TempDir, Shared) {
    let (dir, live) = live();
    let shared = Shared {
        live,
        auth,
        cores: vec![Arc::new(CoreMetrics::default())],
        reload: Default::default(),
        draining: Default::default(),
        budget: Default::default(),
    };
    (dir, shared)
}

/// Feeds `chunks` to a session as a connection would: append, answer, drop what was consumed.
pub(super) fn feed<S: Session>(
    mut session: S,
    shared: &Shared,
    chunks: &[&[u8]],
) -> (String, bool) {
    let generation = shared.live.load();
    let ctx = Ctx {
        generation: &generation,
        today: d(TODAY),
        shared,
        metrics: &shared.cores[0],
        audit: None,
    };
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let step = session.process(&buf, &ctx, &mut out);
            buf.drain(..step.consumed);
            if step.close {
                return (String::from_utf8(out).unwrap(), true);
            }
            if !step.more {
                break;
            }
        }
    }
    (String::from_utf8(out).unwrap(), false)
}

fn check_with<S: Session>(
    new: impl Fn() -> S,
    shared: &Shared,
    input: &[u8],
    expected: &str,
    closes: bool,
) {
    let whole = feed(new(), shared, &[input]);
    assert_eq!(
        whole,
        (expected.to_owned(), closes),
        "{:?}",
        String::from_utf8_lossy(input)
    );
    for cut in 0..input.len() {
        let split = feed(new(), shared, &[&input[..cut], &input[cut..]]);
        assert_eq!(split, whole, "split at {cut}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(feed(new(), shared, &bytes), whole, "a byte at a time");
}

fn answer(date: Option<&str>) -> String {
    let (_dir, live) = live();
    let q = CardQuery::parse(&CardFields {
        insurer_number: Some("33120015"),
        symbol: Some("12"),
        number: Some("3456"),
        branch: None,
        birthdate: Some("1980-01-23"),
        date,
        limit_consent: false,
    })
    .unwrap();
    let mut out = Vec::new();
    answer_card(&live.load().index, &q, d(TODAY), &mut out);
    String::from_utf8(out).unwrap()
}

/// The answer to the public-expense query of `recipient` (born 1980-01-23), today.
fn kohi_answer(recipient: &str) -> String {
    let (_dir, live) = live();
    let q = crate::query::KohiQuery::parse(&crate::query::KohiFields {
        payer_number: Some(LOCAL_PAYER),
        recipient_number: Some(recipient),
        birthdate: Some("1980-01-23"),
        ..Default::default()
    })
    .unwrap();
    let mut out = Vec::new();
    crate::query::kohi::answer_kohi(&live.load().index, &q, d(TODAY), &mut out);
    String::from_utf8(out).unwrap()
}

/// Pipelined `ELIG.KOHI` commands, answered together: each recipient number is normalized
/// into the string the previous query left (a longer one, then a shorter one), and each
/// answer is the single query's.
#[test]
fn resp_public_expense_queries_in_one_read() {
    let (_dir, shared) = shared(None);
    let bulk = |recipient: &str| {
        let a = kohi_answer(recipient);
        assert!(a.contains(r#""validity":1,"#) || recipient == "A-9", "{a}");
        format!("${}\r\n{a}\r\n", a.len())
    };
    let input = format!(
        "ELIG.KOHI {LOCAL_PAYER} B-2222 1980-01-23\r\nELIG.KOHI {LOCAL_PAYER} A-1 1980-01-23\r\n\
         ELIG.KOHI {LOCAL_PAYER} Ｂ－２２２２ 1980-01-23\r\nELIG.KOHI {LOCAL_PAYER} A-9 1980-01-23\r\n\
         ELIG.KOHI {LOCAL_PAYER} A-1 1980-01-23\r\n"
    );
    let expected = [
        bulk("B-2222"),
        bulk("A-1"),
        bulk("B-2222"),
        bulk("A-9"),
        bulk("A-1"),
    ]
    .concat();
    check_with(
        || RespSession::new(1),
        &shared,
        input.as_bytes(),
        &expected,
        false,
    );
}

#[test]
fn resp_sessions() {
    let (_dir, shared) = shared(None);
    let check = |input: &[u8], expected: &str, closes: bool| {
        check_with(|| RespSession::new(1), &shared, input, expected, closes)
    };
    let a = answer(None);
    let bulk = format!("${}\r\n{a}\r\n", a.len());
    check(b"PING\r\n", "+PONG\r\n", false);
    check(
        b"*1\r\n$4\r\nping\r\n*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n",
        "+PONG\r\n$2\r\nhi\r\n",
        false,
    );
    check(
        b"*6\r\n$9\r\nELIG.CARD\r\n$8\r\n33120015\r\n$2\r\n12\r\n$4\r\n3456\r\n$0\r\n\r\n$10\r\n1980-01-23\r\n",
        &bulk,
        false,
    );
    check(b"elig.card 33120015 12 3456 \"\" 1980-01-23\r\nelig.card 33120015 12 3456 \"\" 1980-01-23\r\n", &bulk.repeat(2), false);
    let dated = answer(Some("2014-01-01"));
    check(
        b"ELIG.CARD 33120015 12 3456 00 S55.1.23 2014-01-01 LIMIT\r\n",
        &format!("${}\r\n{dated}\r\n", dated.len()),
        false,
    );
    check(
        b"ELIG.CARD 33120015 12 3456 \"\" 1980-02-30\r\nPING\r\n",
        "-ERR birthdate: no such day: \"1980-02-30\"\r\n+PONG\r\n",
        false,
    );
    check(
        b"ELIG.CARD 33120015 12 3456 \"\" 1980-01-23 2026-01-01 NOPE\r\n",
        "-ERR syntax error: expected LIMIT after the date\r\n",
        false,
    );
    check(
        b"ELIG.PERSON 123456789019\r\n",
        "-ERR individual_number: bad check digit: ********9019\r\n",
        false,
    );
    // Regression: the arguments swapped, an individual number in the date came back in clear.
    check(
        format!("ELIG.PERSON {} 123456789018\r\n", member_number()).as_bytes(),
        "-ERR date: not a date (expected YYYY-MM-DD, YYYYMMDD, S45.1.23 or 3450123): \"********9018\"\r\n",
        false,
    );
    check(
        b"ELIG.PERSON\r\n",
        "-ERR wrong number of arguments for 'elig.person' command (usage: ELIG.PERSON individual_number [date] [LIMIT])\r\n",
        false,
    );
    // Regression (operator audit): an individual number sent as the command came back in
    // clear in "unknown command".
    check(
        b"123456789018 2026-11-24\r\n",
        "-ERR unknown command '********9018'\r\n",
        false,
    );
    check(b"*1\r\n$4\r\nQUIT\r\nPING\r\n", "+OK\r\n", true);
    check(
        b"PING\r\n*1\r\n:1\r\n",
        "+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n",
        true,
    );
    check(
        b"AUTH a b\r\nSELECT 1\r\nCLIENT SETINFO LIB-NAME x\r\nCOMMAND DOCS\r\nCONFIG GET save\r\nCONFIG GET x\r\n",
        "+OK\r\n-ERR DB index is out of range\r\n+OK\r\n*0\r\n*2\r\n$4\r\nsave\r\n$0\r\n\r\n*0\r\n",
        false,
    );
    check(b"\r\n\r\n*0\r\nPING\r\n", "+PONG\r\n", false);
}

/// Regression for query groups (`answer_group`): a long pipeline mixing card and person
/// queries with malformed ones and other commands, crossing several groups of 16, gets the
/// replies of the commands one at a time (the byte-at-a-time delivery of `check_with` answers
/// each command alone), in order.
#[test]
fn resp_groups_keep_the_order_of_replies() {
    let (_dir, shared) = shared(None);
    let card = answer(None);
    let card = format!("${}\r\n{card}\r\n", card.len());
    let number = member_number();
    let person = {
        let q = crate::query::PersonQuery::parse(&crate::query::PersonFields {
            individual_number: Some(&number),
            date: None,
            limit_consent: false,
        })
        .unwrap();
        let mut out = Vec::new();
        crate::query::answer::answer_person(&shared.live.load().index, &q, d(TODAY), &mut out);
        let out = String::from_utf8(out).unwrap();
        format!("${}\r\n{out}\r\n", out.len())
    };
    let commands: [(String, String); 6] = [
        (
            "ELIG.CARD 33120015 12 3456 \"\" 1980-01-23\r\n".into(),
            card.clone(),
        ),
        (format!("ELIG.PERSON {number}\r\n"), person.clone()),
        (
            "ELIG.CARD 33120015 12 3456 \"\" 1980-02-30\r\n".into(),
            "-ERR birthdate: no such day: \"1980-02-30\"\r\n".into(),
        ),
        (
            "ELIG.PERSON 123456789019\r\n".into(),
            "-ERR individual_number: bad check digit: ********9019\r\n".into(),
        ),
        (
            "ELIG.CARD 33120015 12\r\n".into(),
            "-ERR wrong number of arguments for 'elig.card' command (usage: ELIG.CARD insurer_number symbol number branch birthdate [date] [LIMIT])\r\n".into(),
        ),
        ("PING\r\n".into(), "+PONG\r\n".into()),
    ];
    // Mostly valid queries, in runs longer than a group, with the others sprinkled in.
    let order = [
        0, 1, 0, 0, 1, 0, 2, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 5, 0, 0, 4,
    ]
    .iter()
    .chain([0, 1].iter().cycle().take(40));
    let (mut input, mut expected) = (String::new(), String::new());
    for &i in order {
        input.push_str(&commands[i].0);
        expected.push_str(&commands[i].1);
    }
    check_with(
        || RespSession::new(1),
        &shared,
        input.as_bytes(),
        &expected,
        false,
    );
}

/// Server state under `--auth` with one client of role query: its institution code and token.
fn one_client() -> (tempfile::TempDir, Shared, InstitutionCode, String) {
    let code = InstitutionCode::parse("0110113719").unwrap();
    let (token, line) = new_entry(code, Role::Query).unwrap();
    let (dir, shared) = shared(Some(AuthTable::parse(&line).unwrap()));
    (dir, shared, code, token)
}

#[test]
fn resp_authentication() {
    let (_dir, shared, code, token) = one_client();
    let check = |input: &str, expected: &str| {
        check_with(
            || RespSession::new(7),
            &shared,
            input.as_bytes(),
            expected,
            false,
        )
    };
    check("PING\r\n", "-NOAUTH Authentication required.\r\n");
    check(
        "ELIG.PERSON 123456789018\r\n",
        "-NOAUTH Authentication required.\r\n",
    );
    check(
        &format!("AUTH {code} nope\r\nPING\r\n"),
        "-WRONGPASS invalid institution code or token\r\n-NOAUTH Authentication required.\r\n",
    );
    check(
        &format!("AUTH {code} {token}\r\nPING\r\n"),
        "+OK\r\n+PONG\r\n",
    );
    // A query before AUTH in the same read is refused, one after it answered.
    let query = "ELIG.PERSON 123456789019\r\n";
    check(
        &format!("{query}AUTH {code} {token}\r\n{query}"),
        "-NOAUTH Authentication required.\r\n+OK\r\n-ERR individual_number: bad check digit: ********9019\r\n",
    );
    check(
        &format!("AUTH {code}:{token}\r\nPING\r\n"),
        "+OK\r\n+PONG\r\n",
    );
    check(
        &format!("HELLO 2 AUTH {code} {token}\r\nPING\r\n"),
        "*16\r\n$6\r\nserver\r\n$7\r\nshikaku\r\n$7\r\nversion\r\n$5\r\n0.1.0\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n$10\r\ngeneration\r\n$6\r\ng-unit\r\n+PONG\r\n",
    );
}

fn http_response(status: &str, body: &str, close: bool) -> String {
    format!(
        "HTTP/1.1 {status}\r\nServer: shikaku\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n{body}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
}

#[test]
fn http_sessions() {
    let (_dir, shared) = shared(None);
    let check = |input: &[u8], expected: &str, closes: bool| {
        check_with(HttpSession::default, &shared, input, expected, closes)
    };
    let health = http_response("200 OK", r#"{"status":"ok","generation":"g-unit"}"#, false);
    check(
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &health,
        false,
    );
    check(
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &health.repeat(2),
        false,
    );
    let body =
        br#"{"insurer_number":"33120015","symbol":"12","number":"3456","birthdate":"1980-01-23"}"#;
    let mut req = format!(
        "POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    check(&req, &http_response("200 OK", &answer(None), false), false);
    // The same body chunked (RFC 9112 7.1), in two chunks with an extension and a trailer,
    // then a pipelined request: answered alike, however the bytes arrive.
    let (a, b) = body.split_at(20);
    let mut chunked =
        b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n".to_vec();
    chunked.extend_from_slice(format!("{:x};ext=1\r\n", a.len()).as_bytes());
    chunked.extend_from_slice(a);
    chunked.extend_from_slice(format!("\r\n{:X}\r\n", b.len()).as_bytes());
    chunked.extend_from_slice(b);
    chunked.extend_from_slice(
        b"\r\n0\r\nX-Trailer: 1\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    check(
        &chunked,
        &(http_response("200 OK", &answer(None), false) + &health),
        false,
    );
    check(
        b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        &http_response(
            "501 Not Implemented",
            r#"{"error":"Transfer-Encoding other than chunked is not supported; send the body with a Content-Length or chunked"}"#,
            true,
        ),
        true,
    );
    check(
        b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        &http_response(
            "400 Bad Request",
            r#"{"error":"both Content-Length and Transfer-Encoding: send the body with one of them"}"#,
            true,
        ),
        true,
    );
    check(
        b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
        &http_response(
            "400 Bad Request",
            r#"{"error":"malformed chunk size line"}"#,
            true,
        ),
        true,
    );
    check(
        b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        &(http_response("400 Bad Request", r#"{"error":"insurer_number: is required","field":"insurer_number"}"#, false)
            + &http_response("200 OK", r#"{"status":"ok","generation":"g-unit"}"#, true)),
        true,
    );
    check(
        b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &http_response(
            "404 Not Found",
            r#"{"error":"no such endpoint; see GET /healthz, /metrics, /v1/generation, POST /v1/card, /v1/person, /v1/kohi, /v1/batch, /v1/claims, /admin/reload"}"#,
            false,
        ),
        false,
    );
    check(
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1x\r\n\r\n",
        &http_response(
            "400 Bad Request",
            r#"{"error":"malformed Content-Length"}"#,
            true,
        ),
        true,
    );
    check(
        b"GET /healthz HTTP/1.0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &http_response("200 OK", r#"{"status":"ok","generation":"g-unit"}"#, true),
        true,
    );
    check(
        b"POST /v1/person?individual_number=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        &http_response(
            "400 Bad Request",
            r#"{"error":"an individual number must never be sent in a URL; send it in the JSON body of POST /v1/person"}"#,
            false,
        ),
        false,
    );
}

/// [`check_with`] for an HTTP session.
fn check_http(shared: &Shared, input: &str, expected: &str, closes: bool) {
    check_with(
        HttpSession::default,
        shared,
        input.as_bytes(),
        expected,
        closes,
    )
}

const NO_HOST: &str =
    "no Host header: an HTTP/1.1 request must send exactly one (RFC 9112 section 3.2)";
const TWO_AUTHORIZATIONS: &str = "more than one Authorization header: send exactly one";

/// A refusal of a request head: its status, its error, and the connection closed.
fn refused(status: &str, error: &str) -> String {
    http_response(status, &format!(r#"{{"error":"{error}"}}"#), true)
}

/// The bytes of a chunked `POST /v1/card` whose body is `chunks`.
fn chunked_card(chunks: &str) -> Vec<u8> {
    format!(
        "POST /v1/card HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}"
    )
    .into_bytes()
}

/// Issue 27: the framing is read as strictly as a proxy in front may read it, so no request
/// hides in what the proxy took for something else (request smuggling). Every line ends in
/// CRLF: a bare LF or CR, in the head, a chunk size line or a trailer, is refused.
#[test]
fn http_lines_end_in_crlf() {
    let (_dir, shared) = shared(None);
    let check = |input: &[u8], expected: &str| {
        check_with(HttpSession::default, &shared, input, expected, true)
    };
    let bare = refused(
        "400 Bad Request",
        "a bare CR or LF in a chunk size line or trailer; end every line with CRLF",
    );
    // Read as size 3 with an extension running to the CRLF after `HTTP/1.1`: a proxy that
    // ends the line at the LF sees a request for /metrics inside the body.
    check(
        &chunked_card("3;x\nGET /metrics HTTP/1.1\r\nabc\r\n0\r\n\r\n"),
        &bare,
    );
    check(&chunked_card("3\nabc\r\n0\r\n\r\n"), &bare);
    check(&chunked_card("3;x\ry\r\nabc\r\n0\r\n\r\n"), &bare);
    check(&chunked_card("3\r\r\nabc\r\n0\r\n\r\n"), &bare);
    check(&chunked_card("0\r\nX: a\rb\r\n\r\n"), &bare);
    check(&chunked_card("0\r\nX: a\n\r\n"), &bare);
    check(&chunked_card("0\r\n\n"), &bare);
    let size_line = refused("400 Bad Request", "malformed chunk size line");
    check(&chunked_card("3;x\0y\r\nabc\r\n0\r\n\r\n"), &size_line);
    check(&chunked_card("3 x\r\nabc\r\n0\r\n\r\n"), &size_line);
    check(&chunked_card(";x\r\n"), &size_line);
    let trailer = refused("400 Bad Request", "malformed trailer line");
    check(&chunked_card("0\r\nbroken\r\n\r\n"), &trailer);
    check(&chunked_card("0\r\n folded: x\r\n\r\n"), &trailer);
    check(&chunked_card("0\r\nX: a\0b\r\n\r\n"), &trailer);
    let head = refused(
        "400 Bad Request",
        "a line of the request head ends in a bare LF; end every line with CRLF",
    );
    check(b"GET /healthz HTTP/1.1\nHost: localhost\n\n", &head);
    check(
        b"GET /healthz HTTP/1.1\r\nHost: localhost\nX: y\r\n\r\n",
        &head,
    );
    check(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\n", &head);
}

/// Issue 27: exactly one `Host` (RFC 9112 3.2), one `Authorization`, no expectation but
/// `100-continue`; without `--auth`, only loopback names (a DNS rebinding guard).
#[test]
fn http_hosts_and_single_headers() {
    let (_dir, shared) = shared(None);
    let check =
        |input: &str, expected: &str, closes: bool| check_http(&shared, input, expected, closes);
    let health = http_response("200 OK", r#"{"status":"ok","generation":"g-unit"}"#, false);
    for host in [
        "localhost",
        "LocalHost:7380",
        "app.localhost",
        "a.b.LOCALHOST:80",
        "127.0.0.1",
        "127.1.2.3:80",
        "[::1]",
        "[::1]:7380",
        "[::ffff:127.0.0.1]:7380",
    ] {
        check(
            &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            &health,
            false,
        );
    }
    let elsewhere = refused("421 Misdirected Request", "without --auth this server answers only requests addressed to a loopback name (localhost, *.localhost, 127.0.0.1, [::1]); send one in Host, or run the server with --auth");
    for host in [
        "evil.example",
        "evil.example:7380",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "evillocalhost",
        ".localhost",
        "a..localhost",
        "localhost.",
        "0.0.0.0",
        "10.0.0.7",
        "[::2]",
        "",
    ] {
        check(
            &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            &elsewhere,
            true,
        );
    }
    let bad_host = refused(
        "400 Bad Request",
        "malformed Host header: send host or host:port (a name, an IPv4 address or [IPv6])",
    );
    for host in [
        "user@localhost",
        "localhost:x",
        "localhost:123456",
        "[::1",
        "[zz]",
        "[::1]x",
        "local host",
    ] {
        check(
            &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            &bad_host,
            true,
        );
    }
    check(
        "GET /healthz HTTP/1.1\r\n\r\n",
        &refused("400 Bad Request", NO_HOST),
        true,
    );
    check(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nhost: localhost\r\n\r\n",
        &refused(
            "400 Bad Request",
            "more than one Host header: send exactly one",
        ),
        true,
    );
    // HTTP/1.0 has no Host to require.
    check(
        "GET /healthz HTTP/1.0\r\n\r\n",
        &http_response("200 OK", r#"{"status":"ok","generation":"g-unit"}"#, true),
        true,
    );
    check(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
        &refused("400 Bad Request", TWO_AUTHORIZATIONS),
        true,
    );
    // Absolute form (RFC 9112 3.2.2): its authority, not Host, names the host asked for.
    check(
        "GET http://localhost:7380/healthz HTTP/1.1\r\nHost: localhost:7380\r\n\r\n",
        &health,
        false,
    );
    check(
        "GET HTTP://127.0.0.1/healthz?x=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        &health,
        false,
    );
    check(
        "GET http://evil.example/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &elsewhere,
        true,
    );
    let bad_target = refused(
        "400 Bad Request",
        "malformed absolute-form target: send http://host[:port]/path, or /path with a Host header",
    );
    for target in [
        "http://user@localhost/healthz",
        "http:///healthz",
        "http://localhost:x/",
    ] {
        check(
            &format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            &bad_target,
            true,
        );
    }
    check(
        "POST /v1/card HTTP/1.1\r\nHost: localhost\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}",
        &refused(
            "417 Expectation Failed",
            "unsupported Expect: only 100-continue is supported; send no other expectation",
        ),
        true,
    );
    check(
        "POST /v1/card HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue, x\r\nContent-Length: 2\r\n\r\n{}",
        &refused(
            "417 Expectation Failed",
            "unsupported Expect: only 100-continue is supported; send no other expectation",
        ),
        true,
    );
}

/// Under `--auth` the credentials decide, whatever name the request was sent to; the head's
/// rules hold as without.
#[test]
fn http_hosts_under_auth() {
    let (_dir, shared, code, token) = one_client();
    let check =
        |input: &str, expected: &str, closes: bool| check_http(&shared, input, expected, closes);
    check(
        "GET /healthz HTTP/1.1\r\nHost: shikaku.example.jp\r\n\r\n",
        &http_response("200 OK", r#"{"status":"ok","generation":"g-unit"}"#, false),
        false,
    );
    check(
        &format!("GET /v1/generation HTTP/1.1\r\nHost: shikaku.example.jp\r\nAuthorization: Bearer {code}:{token}\r\nAuthorization: Bearer {code}:x\r\n\r\n"),
        &refused("400 Bad Request", TWO_AUTHORIZATIONS),
        true,
    );
    check(
        "GET /healthz HTTP/1.1\r\n\r\n",
        &refused("400 Bad Request", NO_HOST),
        true,
    );
}

#[test]
fn http_expect_continue() {
    let (_dir, shared) = shared(None);
    let head = b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let (out, _) = feed(HttpSession::default(), &shared, &[head, b"{", b"}"]);
    assert!(
        out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 "),
        "{out}"
    );
    assert_eq!(out.matches("100 Continue").count(), 1);
    // RFC 9110 10.1.1: an HTTP/1.0 client does not wait for it, and is sent none.
    let head = b"POST /v1/card HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let (out, _) = feed(HttpSession::default(), &shared, &[head, b"{", b"}"]);
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
}

#[test]
fn publish_moves_views() {
    let (_dir, current) = live();
    let mut view = current.view();
    assert_eq!(view.refresh(&current).epoch, 0);
    let (dir2, _other) = live();
    let index = MappedIndex::open_file(&dir2.path().join("index.shk"), PersonKey::demo()).unwrap();
    assert_eq!(current.publish(index).unwrap(), 1);
    assert_eq!(view.refresh(&current).epoch, 1);
    assert_eq!(current.epoch(), 1);
}

/// A start waits for a port its previous run (a process killed mid-accept, whose rings the
/// kernel tears down after it exits) still holds, rather than failing at once; a replica
/// restarted by its supervisor in the fleet test failed so.
#[test]
fn a_start_waits_for_a_port_being_released() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    let claimed = super::claim_port(addr).expect("claimed once released");
    assert_eq!(claimed.local_addr().unwrap(), addr);
    release.join().unwrap();
}
