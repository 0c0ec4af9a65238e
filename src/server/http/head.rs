//! The request head: the request line and the headers the server acts on, read from what
//! `httparse` parsed, each refused with its status when it cannot be served.

/// What the request line and headers say.
pub(super) struct Head<'a> {
    pub(super) method: &'a str,
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

pub(super) fn read_head<'a>(
    req: &httparse::Request<'_, 'a>,
) -> Result<Head<'a>, (u16, &'static str)> {
    let mut head = Head {
        method: req.method.unwrap_or(""),
        target: req.path.unwrap_or("/"),
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
    for h in req.headers.iter() {
        let name = h.name;
        let v = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or((400, "malformed Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err((400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked`, alone and once: a list of codings (gzip, chunked) would need
            // decoding we do not do.
            if head.chunked || !v.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err((
                    501,
                    "Transfer-Encoding other than chunked is not supported; send the body with a Content-Length or chunked",
                ));
            }
            head.chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            head.close |= contains_token(v, b"close");
            head.keep_alive |= contains_token(v, b"keep-alive");
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(v);
        } else if name.eq_ignore_ascii_case("content-type") {
            head.csv = starts_with_ignore_case(v, b"text/csv");
        } else if name.eq_ignore_ascii_case("accept") {
            head.accept_json = contains_token(v, b"application/json");
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = contains_token(v, b"100-continue");
        }
    }
    if head.chunked && length.is_some() {
        return Err((
            400,
            "both Content-Length and Transfer-Encoding: send the body with one of them",
        ));
    }
    if head.chunked && head.http10 {
        return Err((400, "Transfer-Encoding in an HTTP/1.0 request"));
    }
    head.content_length = length.unwrap_or(0);
    Ok(head)
}

fn contains_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn starts_with_ignore_case(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}
