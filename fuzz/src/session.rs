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
    check_splits(
        HttpSession::default,
        &c,
        if head {
            strip_continues
        } else {
            without_continues
        },
    )
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
