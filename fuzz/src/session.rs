//! RESP and HTTP sessions fed arbitrary bytes in arbitrary reads.
//!
//! Property: however the bytes are split into reads, a session writes the same replies and
//! closes (or not) at the same point as when they arrive in one read. (HTTP's interim
//! `100 Continue` is the one legitimate difference: it is sent only when a read ends
//! between a request's head and its body.) HTTP replies must also be whole: each a status
//! line, headers and exactly the `Content-Length` it announces.

use super::fixture;
use super::input::{assert_no_clear_number, cuts, Cuts};
use shikaku::server::auth::{hash_token, AuthTable};
use shikaku::server::http::HttpSession;
use shikaku::server::live::Live;
use shikaku::server::metrics::CoreMetrics;
use shikaku::server::resp::RespSession;
use shikaku::server::session::{Ctx, Refusal, Session, Shared};
use std::sync::Arc;

/// The institution code and token of the one client the authenticating fixture admits.
pub const INSTITUTION: &str = "0110113719";
pub const TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Options bit: serve with `--auth` (the one client above, role admin).
const WITH_AUTH: u8 = 0x08;

fn auth_table() -> AuthTable {
    let hash: String = hash_token(TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    AuthTable::parse(&format!("{INSTITUTION} admin {hash}\n")).expect("fixture auth line")
}

thread_local! {
    /// The fixture, built once per process.
    static FIXTURE: Arc<Live> = fixture::live();
}

/// Fresh server state around the fixture: each run starts from zero counters (`/metrics`
/// answers with them) and no reload requested.
fn shared(with_auth: bool) -> Shared {
    FIXTURE.with(|live| Shared {
        live: live.clone(),
        auth: with_auth.then(auth_table),
        cores: vec![Arc::new(CoreMetrics::default())],
        reload: Default::default(),
        draining: Default::default(),
        budget: Default::default(),
    })
}

/// What a connection wrote, and whether it closed.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    out: Vec<u8>,
    closed: bool,
}

/// Feeds `chunks` to `session` as the server's connection loop does: append a read, answer
/// (again while the session says there is more), drop what was consumed; a buffer at the
/// session's limit gets its overflow error and the connection closes.
fn feed<S: Session>(mut session: S, shared: &Shared, chunks: &[&[u8]]) -> Transcript {
    let generation = shared.live.load();
    let ctx = Ctx {
        generation: &generation,
        today: fixture::date(fixture::TODAY),
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
            assert!(step.consumed <= buf.len(), "consumed past the input");
            buf.drain(..step.consumed);
            if step.close {
                return Transcript { out, closed: true };
            }
            if !step.more {
                break;
            }
        }
        if buf.len() >= session.max_buffer() {
            session.refuse(Refusal::TooLarge, &mut out);
            return Transcript { out, closed: true };
        }
    }
    Transcript { out, closed: false }
}

fn check_splits<S: Session>(
    new: impl Fn() -> S,
    c: &Cuts<'_>,
    normalize: fn(Vec<u8>) -> Vec<u8>,
) -> Vec<u8> {
    let with_auth = c.flags & WITH_AUTH != 0;
    let whole = feed(new(), &shared(with_auth), &[c.body]);
    let split = feed(new(), &shared(with_auth), &c.chunks());
    let whole = Transcript {
        out: normalize(whole.out),
        closed: whole.closed,
    };
    let split = Transcript {
        out: normalize(split.out),
        closed: split.closed,
    };
    assert!(
        whole == split,
        "reads split at {:?} change the replies:\nwhole: {:?}\nsplit: {:?}",
        c.cuts,
        String::from_utf8_lossy(&whole.out),
        String::from_utf8_lossy(&split.out),
    );
    // No reply quotes an individual number: errors mask what they quote, and an answer
    // carries no individual number at all.
    assert_no_clear_number(&String::from_utf8_lossy(&whole.out), "a reply");
    whole.out
}

/// RESP frames through a session.
pub fn resp(data: &[u8]) {
    resp_replies(data);
}

/// [`resp`], returning the replies.
pub fn resp_replies(data: &[u8]) -> Vec<u8> {
    check_splits(|| RespSession::new(1), &cuts(data), |out| out)
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

fn without_continues(out: Vec<u8>) -> Vec<u8> {
    let mut kept = Vec::with_capacity(out.len());
    let mut rest = &out[..];
    while !rest.is_empty() {
        if rest.starts_with(CONTINUE) {
            rest = &rest[CONTINUE.len()..];
            continue;
        }
        let len = response_len(rest);
        kept.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
    }
    kept
}

/// The length of the response at the start of `out`; panics unless it is a whole one.
fn response_len(out: &[u8]) -> usize {
    let text = String::from_utf8_lossy(out);
    assert!(
        out.starts_with(b"HTTP/1.1 "),
        "a reply that is not an HTTP/1.1 response: {text:?}"
    );
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("a response head without its end: {text:?}"))
        + 4;
    let head = std::str::from_utf8(&out[..head_end])
        .unwrap_or_else(|_| panic!("a response head that is not UTF-8: {text:?}"));
    let length: usize = head
        .split("\r\n")
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().expect("Content-Length is a number"))
        })
        .unwrap_or_else(|| panic!("a response without Content-Length: {text:?}"));
    assert!(
        out.len() >= head_end + length,
        "a response cut short of its Content-Length: {text:?}"
    );
    head_end + length
}

/// HTTP requests through a session.
pub fn http(data: &[u8]) {
    http_replies(data);
}

/// [`http`], returning the replies (without `100 Continue`).
pub fn http_replies(data: &[u8]) -> Vec<u8> {
    let c = cuts(data);
    // A reply to HEAD announces a Content-Length and sends no body, so replies can be walked
    // by their lengths only when no request may be a HEAD.
    let head = c.body.windows(4).any(|w| w == b"HEAD");
    let replies = check_splits(
        HttpSession::default,
        &c,
        if head {
            strip_continues
        } else {
            without_continues
        },
    );
    // An HTTP/1.1 request without Host is refused (RFC 9112 3.2): with no `Host` anywhere
    // and no HTTP/1.0 request, nothing is answered 2xx.
    let contains = |needle: &[u8]| {
        c.body
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    if !head && !contains(b"host") && !contains(b"HTTP/1.0") {
        let answered = statuses(&replies);
        assert!(
            !answered.iter().any(|s| (200..300).contains(s)),
            "a request without Host answered: {answered:?} for {:?}",
            String::from_utf8_lossy(c.body)
        );
    }
    replies
}

/// The replies without any `100 Continue` in them, not checked for wholeness.
fn strip_continues(out: Vec<u8>) -> Vec<u8> {
    let mut kept = Vec::with_capacity(out.len());
    let mut rest = &out[..];
    while !rest.is_empty() {
        if rest.starts_with(CONTINUE) {
            rest = &rest[CONTINUE.len()..];
        } else {
            kept.push(rest[0]);
            rest = &rest[1..];
        }
    }
    kept
}

/// The `Authorization` line of the one client the authenticating fixture admits (role admin);
/// without `--auth` it is not looked at.
fn credential_line() -> Vec<u8> {
    format!("Authorization: Bearer {INSTITUTION}:{TOKEN}").into_bytes()
}

/// A request as the lines of its framing (each sent with CRLF: the request line, the
/// headers, the empty line, and for a chunked body its size lines, data and trailers) and
/// the bytes after them (a `Content-Length` body).
struct Framed {
    lines: Vec<Vec<u8>>,
    tail: Vec<u8>,
}

const CARD_BODY: &[u8] =
    br#"{"insurer_number":"33120015","symbol":"12","number":"3456","birthdate":"1980-01-23"}"#;

/// Well-formed requests the fixture answers with a 2xx, with or without `--auth`.
fn framed(which: u8) -> Framed {
    let head = |first: &str, more: &[&str]| -> Vec<Vec<u8>> {
        let mut lines = vec![first.as_bytes().to_vec(), b"Host: localhost:7380".to_vec()];
        lines.push(credential_line());
        lines.extend(more.iter().map(|l| l.as_bytes().to_vec()));
        lines
    };
    match which % 4 {
        0 => Framed {
            lines: [head("GET /healthz HTTP/1.1", &[]), vec![Vec::new()]].concat(),
            tail: Vec::new(),
        },
        1 => {
            let length = format!("Content-Length: {}", CARD_BODY.len());
            Framed {
                lines: [head("POST /v1/card HTTP/1.1", &[&length]), vec![Vec::new()]].concat(),
                tail: CARD_BODY.to_vec(),
            }
        }
        2 => {
            let (a, b) = CARD_BODY.split_at(30);
            let mut lines = head("POST /v1/card HTTP/1.1", &["Transfer-Encoding: chunked"]);
            lines.extend([
                Vec::new(),
                format!("{:x};ext=\"a b\"", a.len()).into_bytes(),
                a.to_vec(),
                format!("{:X}", b.len()).into_bytes(),
                b.to_vec(),
                b"0".to_vec(),
                b"X-Trailer: 1".to_vec(),
                Vec::new(),
            ]);
            Framed {
                lines,
                tail: Vec::new(),
            }
        }
        _ => Framed {
            lines: [
                head("GET http://127.0.0.1:7380/v1/generation HTTP/1.1", &[]),
                vec![Vec::new()],
            ]
            .concat(),
            tail: Vec::new(),
        },
    }
}

impl Framed {
    fn render(&self, bare_lf_at: Option<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            out.extend_from_slice(line);
            out.extend_from_slice(if bare_lf_at == Some(i) {
                b"\n"
            } else {
                b"\r\n"
            });
        }
        out.extend_from_slice(&self.tail);
        out
    }

    /// The index of the first line starting with `prefix` (case-insensitive).
    fn line(&self, prefix: &[u8]) -> usize {
        self.lines
            .iter()
            .position(|l| l.len() >= prefix.len() && l[..prefix.len()].eq_ignore_ascii_case(prefix))
            .expect("a line the fixture's requests have")
    }
}

/// What a request with a defect must get: refused whole, or answered as without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Answered,
    Refused,
}

/// Issue 27: a request whose framing a strict proxy in front would read otherwise is refused
/// whole, and nothing after it is answered (a request smuggled behind it would be).
///
/// Input: the options byte (`WITH_AUTH`), then which request (of [`framed`]), which defect,
/// a position, and up to 7 cut points (a byte each, scaled to the request's length). The
/// defects: none; no `Host`; two; two `Authorization`; a line ending in a bare LF; a bare CR
/// in a line; a `Host` that is not loopback; an absolute-form target that is not;
/// an `Expect` other than `100-continue`. A pipelined `GET /v1/generation` follows the
/// request (not `/metrics`, whose counts depend on how the reads fall).
/// With no defect, and with a name that is not loopback under `--auth`, both are answered
/// (2xx); with any other defect, one refusal and the connection closed.
pub fn http_framing(data: &[u8]) {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let with_auth = at(0) & WITH_AUTH != 0;
    let mut request = framed(at(1));
    let position = usize::from(at(3));
    let line = position % request.lines.len();
    let mut bare_lf_at = None;
    let expected = match at(2) % 9 {
        0 => Expected::Answered,
        1 => {
            let host = request.line(b"host:");
            request.lines.remove(host);
            Expected::Refused
        }
        2 => {
            let host = request.line(b"host:");
            request.lines.insert(host, b"Host: localhost".to_vec());
            Expected::Refused
        }
        3 => {
            let auth = request.line(b"authorization:");
            request
                .lines
                .insert(auth + 1, b"Authorization: Bearer x:y".to_vec());
            Expected::Refused
        }
        4 => {
            bare_lf_at = Some(line);
            Expected::Refused
        }
        5 => {
            let l = &mut request.lines[line];
            l.insert(position % (l.len() + 1), b'\r');
            Expected::Refused
        }
        6 => {
            let host = request.line(b"host:");
            request.lines[host] = b"Host: shikaku.example.jp:7380".to_vec();
            // An absolute-form target's host stands for Host (RFC 9112 3.2.2).
            let absolute = request.lines[0].windows(7).any(|w| w == b"http://");
            if with_auth || absolute {
                Expected::Answered
            } else {
                Expected::Refused
            }
        }
        7 => {
            let first = String::from_utf8_lossy(&request.lines[0]).into_owned();
            let [method, target, version] = first.splitn(3, ' ').collect::<Vec<_>>()[..] else {
                panic!("the fixture's request line {first:?}");
            };
            let path = target
                .strip_prefix("http://")
                .map_or(target, |rest| &rest[rest.find('/').unwrap_or(rest.len())..]);
            request.lines[0] =
                format!("{method} http://rebound.example{path} {version}").into_bytes();
            if with_auth {
                Expected::Answered
            } else {
                Expected::Refused
            }
        }
        _ => {
            let auth = request.line(b"authorization:");
            request
                .lines
                .insert(auth, b"Expect: 100-continue, 200-ok".to_vec());
            Expected::Refused
        }
    };
    let mut bytes = request.render(bare_lf_at);
    bytes.extend_from_slice(b"GET /v1/generation HTTP/1.1\r\nHost: localhost\r\n");
    bytes.extend_from_slice(&credential_line());
    bytes.extend_from_slice(b"\r\n\r\n");
    let cuts = (4..11)
        .filter_map(|i| data.get(i))
        .map(|&b| usize::from(b) * bytes.len() / 255)
        .collect::<Vec<_>>();
    let mut cuts = cuts;
    cuts.sort_unstable();
    let c = Cuts {
        flags: at(0),
        cuts,
        body: &bytes,
    };
    let replies = check_splits(HttpSession::default, &c, without_continues);
    let statuses = statuses(&replies);
    let text = String::from_utf8_lossy(&bytes);
    match expected {
        Expected::Answered => assert!(
            statuses.len() == 2 && statuses.iter().all(|s| (200..300).contains(s)),
            "a well-formed request and the one after it are not both answered: {statuses:?} for {text:?}"
        ),
        Expected::Refused => assert!(
            matches!(statuses[..], [400 | 417 | 421]),
            "a request a strict proxy would frame otherwise is not refused alone: {statuses:?} for {text:?}"
        ),
    }
}

/// The status of each whole response in `out`.
fn statuses(mut out: &[u8]) -> Vec<u16> {
    let mut found = Vec::new();
    while !out.is_empty() {
        let status = std::str::from_utf8(&out[9..12.min(out.len())])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        found.push(status);
        out = &out[response_len(out)..];
    }
    found
}
