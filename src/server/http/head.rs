//! The request head: the request line and the headers the server acts on, read from what
//! `httparse` parsed, each refused with its status when it cannot be served.
//!
//! Refused heads close the connection: a proxy in front may have framed the bytes otherwise,
//! so nothing after them can be trusted to start a request. The rules are as strict as the
//! proxies that may stand in front (RFC 9112): lines end in CRLF, one `Host` (required in
//! HTTP/1.1), one `Authorization`, no expectation but `100-continue`.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What the request line and headers say.
pub(super) struct Head<'a> {
    pub(super) method: &'a str,
    /// The target in origin form (`/path?query`): an absolute-form target
    /// (`http://host/path`) has its scheme and authority taken off.
    pub(super) target: &'a str,
    pub(super) http10: bool,
    pub(super) content_length: usize,
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) chunked: bool,
    pub(super) expect_continue: bool,
    pub(super) authorization: Option<&'a [u8]>,
    pub(super) csv: bool,
    /// `Accept: application/json` (for `/v1/claims`, whose answer is CSV otherwise).
    pub(super) accept_json: bool,
}

/// Which names a request may address the server by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hosts {
    /// Any name (under `--auth`: the credentials decide).
    Any,
    /// Loopback names only (without `--auth`, where the server listens on loopback only): a
    /// page in a browser on the host, its name rebound by DNS to 127.0.0.1, still sends its
    /// own name in `Host`, and is refused.
    Loopback,
}

/// A request head the server will not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum HeadError {
    #[error("malformed Content-Length")]
    ContentLength,
    #[error("conflicting Content-Length headers")]
    ConflictingLengths,
    #[error("Transfer-Encoding other than chunked is not supported; send the body with a Content-Length or chunked")]
    TransferCoding,
    #[error("both Content-Length and Transfer-Encoding: send the body with one of them")]
    LengthAndChunked,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    ChunkedHttp10,
    #[error("a line of the request head ends in a bare LF; end every line with CRLF")]
    BareLf,
    #[error("no Host header: an HTTP/1.1 request must send exactly one (RFC 9112 section 3.2)")]
    NoHost,
    #[error("more than one Host header: send exactly one")]
    ManyHosts,
    #[error("malformed Host header: send host or host:port (a name, an IPv4 address or [IPv6])")]
    BadHost,
    #[error(
        "malformed absolute-form target: send http://host[:port]/path, or /path with a Host header"
    )]
    BadAbsoluteTarget,
    #[error("more than one Authorization header: send exactly one")]
    ManyAuthorizations,
    #[error("unsupported Expect: only 100-continue is supported; send no other expectation")]
    Expectation,
    #[error("without --auth this server answers only requests addressed to a loopback name (localhost, *.localhost, 127.0.0.1, [::1]); send one in Host, or run the server with --auth")]
    NotLoopback,
}

impl HeadError {
    pub(super) fn status(self) -> u16 {
        match self {
            HeadError::TransferCoding => 501,
            HeadError::Expectation => 417,
            // RFC 9110 15.5.20: the server is not willing to answer for the name asked for;
            // not 403, which would say the client lacks a permission it could be given.
            HeadError::NotLoopback => 421,
            _ => 400,
        }
    }
}

/// Reads the head `httparse` parsed from `raw` (the head's bytes, final empty line included),
/// accepting the names `hosts` allows.
pub(super) fn read_head<'a>(
    req: &httparse::Request<'_, 'a>,
    raw: &[u8],
    hosts: Hosts,
) -> Result<Head<'a>, HeadError> {
    // httparse ends lines at a bare LF too; a proxy in front may not, and would frame the
    // request otherwise.
    if has_bare_lf(raw) {
        return Err(HeadError::BareLf);
    }
    let (authority, target) = origin_form(req.path.unwrap_or("/"))?;
    let mut head = Head {
        method: req.method.unwrap_or(""),
        target,
        http10: req.version == Some(0),
        content_length: 0,
        close: false,
        keep_alive: false,
        chunked: false,
        expect_continue: false,
        authorization: None,
        csv: false,
        accept_json: false,
    };
    let mut length: Option<usize> = None;
    let mut host: Option<&[u8]> = None;
    for h in req.headers.iter() {
        let name = h.name;
        let v = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or(HeadError::ContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::ConflictingLengths);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked`, alone and once: a list of codings (gzip, chunked) would need
            // decoding we do not do.
            if head.chunked || !v.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(HeadError::TransferCoding);
            }
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("host") {
            if host.replace(v.trim_ascii()).is_some() {
                return Err(HeadError::ManyHosts);
            }
        } else if name.eq_ignore_ascii_case("connection") {
            head.close |= contains_token(v, b"close");
            head.keep_alive |= contains_token(v, b"keep-alive");
        } else if name.eq_ignore_ascii_case("authorization") {
            // Two would leave which one counts to each hop's choice.
            if head.authorization.replace(v).is_some() {
                return Err(HeadError::ManyAuthorizations);
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            head.csv = starts_with_ignore_case(v, b"text/csv");
        } else if name.eq_ignore_ascii_case("accept") {
            head.accept_json = contains_token(v, b"application/json");
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue |= expects_continue(v)?;
        }
    }
    if head.chunked && length.is_some() {
        return Err(HeadError::LengthAndChunked);
    }
    if head.chunked && head.http10 {
        return Err(HeadError::ChunkedHttp10);
    }
    // RFC 9110 10.1.1: an HTTP/1.0 client does not await `100 Continue`.
    head.expect_continue &= !head.http10;
    check_host(&head, host, authority, hosts)?;
    head.content_length = length.unwrap_or(0);
    Ok(head)
}

/// Checks the `Host` header `head` came with (required in HTTP/1.1, RFC 9112 3.2) and, when
/// `hosts` says so, that the request is addressed to a loopback name: the absolute-form
/// target's `authority` when there is one (RFC 9112 3.2.2), else `Host`.
fn check_host(
    head: &Head<'_>,
    host: Option<&[u8]>,
    authority: Option<&[u8]>,
    hosts: Hosts,
) -> Result<(), HeadError> {
    match host {
        Some(h) if split_port(h).is_none() => return Err(HeadError::BadHost),
        None if !head.http10 => return Err(HeadError::NoHost),
        _ => {}
    }
    if hosts == Hosts::Loopback && !authority.or(host).is_none_or(is_loopback_name) {
        return Err(HeadError::NotLoopback);
    }
    Ok(())
}

/// Whether a line of `raw` ends in LF without CR before it.
fn has_bare_lf(raw: &[u8]) -> bool {
    raw.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || raw[i - 1] != b'\r'))
}

/// `(authority, origin-form target)` of a request target: an absolute-form target
/// (`http://host:port/path?query`, RFC 9112 3.2.2) is split; any other is given as it is.
fn origin_form(target: &str) -> Result<(Option<&[u8]>, &str), HeadError> {
    let rest = ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    });
    let Some(rest) = rest else {
        return Ok((None, target));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // An empty host, or userinfo (`user@host`, which RFC 9110 4.2.4 deprecates): refused.
    match split_port(authority.as_bytes()) {
        Some((name, _)) if !name.is_empty() => {}
        _ => return Err(HeadError::BadAbsoluteTarget),
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok((Some(authority.as_bytes()), path))
}

/// `(host, port)` of `host[:port]` (RFC 9110 7.2: uri-host, an optional port of digits), or
/// `None` when it is not one. The host may be empty (RFC 9112 3.2 allows an empty Host).
fn split_port(authority: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, port) = if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|&b| b == b']')?;
        let literal = std::str::from_utf8(&authority[1..close]).ok()?;
        literal.parse::<Ipv6Addr>().ok()?;
        let after = &authority[close + 1..];
        match after.split_first() {
            None => (&authority[..=close], &after[..0]),
            Some((b':', port)) => (&authority[..=close], port),
            Some(_) => return None,
        }
    } else {
        match authority.iter().position(|&b| b == b':') {
            Some(colon) => (&authority[..colon], &authority[colon + 1..]),
            None => (authority, &authority[authority.len()..]),
        }
    };
    let reg_name = name.first() == Some(&b'[') || name.iter().all(|&b| is_reg_name_byte(b));
    (reg_name && port.len() <= 5 && port.iter().all(u8::is_ascii_digit)).then_some((name, port))
}

/// unreserved, pct-encoded and sub-delims of RFC 3986 3.2.2 (no `@`, so no userinfo).
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

/// Whether `authority` (`host[:port]`, already checked) names this host's loopback: `localhost`
/// and names under it (RFC 6761 6.3: resolved to loopback by browsers and the system's
/// resolver, and a top-level domain no DNS server delegates, so no one can rebind them),
/// 127.0.0.0/8, `[::1]` (or `[::ffff:127.x.x.x]`).
fn is_loopback_name(authority: &[u8]) -> bool {
    let Some((name, _)) = split_port(authority) else {
        return false;
    };
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return literal.parse::<Ipv6Addr>().is_ok_and(|a| {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        });
    }
    is_under_localhost(name.as_bytes()) || name.parse::<Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// `localhost` or a name under it, in any case.
fn is_under_localhost(name: &[u8]) -> bool {
    const LOCALHOST: &[u8] = b"localhost";
    let Some(start) = name.len().checked_sub(LOCALHOST.len()) else {
        return false;
    };
    let (sub, tld) = name.split_at(start);
    tld.eq_ignore_ascii_case(LOCALHOST)
        && match sub.split_last() {
            None => true,
            Some((b'.', label)) => !label.is_empty() && !label.ends_with(b"."),
            Some(_) => false,
        }
}

/// Whether an `Expect` value asks for `100 Continue`; any other expectation is refused (RFC
/// 9110 10.1.1 allows 417), rather than ignored while the client waits on it.
fn expects_continue(v: &[u8]) -> Result<bool, HeadError> {
    let mut found = false;
    for token in v.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if token.eq_ignore_ascii_case(b"100-continue") {
            found = true;
        } else if !token.is_empty() {
            return Err(HeadError::Expectation);
        }
    }
    Ok(found)
}

fn contains_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn starts_with_ignore_case(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}
