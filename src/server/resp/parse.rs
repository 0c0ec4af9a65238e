//! The RESP frame parser: one command (a `*N` array of `$N` bulk strings, or an inline
//! line) at the start of a buffer, its arguments recorded as ranges.
//!
//! Hand-written rather than a crate: it is the first step of every request, it only has to
//! split `*N` arrays of `$N` bulk strings (and inline lines), and written here it records
//! argument ranges into a reused buffer without copying or allocating.

use crate::server::limits::{RESP_MAX_ARGS, RESP_MAX_BULK_BYTES, RESP_MAX_INLINE_BYTES};
use std::ops::Range;

/// A frame that cannot be parsed: the connection is answered `-ERR Protocol error: …` and
/// closed, since where the next frame starts is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError(pub String);

impl ProtoError {
    fn new(msg: impl Into<String>) -> ProtoError {
        ProtoError(msg.into())
    }
}

/// Parses one command at the start of `buf`. On success, returns the bytes it spans and
/// leaves its arguments' ranges in `args` (empty for an empty inline line or `*0`, which are
/// skipped); `Ok(None)` means the command is not complete yet.
pub fn parse_command(
    buf: &[u8],
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtoError> {
    args.clear();
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, args),
        Some(_) => parse_inline(buf, args),
    }
}

/// Reads a `\r\n`-terminated integer starting at `start`; returns it and the offset after
/// the line.
fn read_int(buf: &[u8], start: usize, what: &str) -> Result<Option<(i64, usize)>, ProtoError> {
    // Every length in a query frame has one or two digits (`*7`, `$8`, `$10`): take those
    // without the general scan below, which gives the same result for them.
    match buf.get(start..start + 4) {
        Some(&[d, b'\r', b'\n', _]) if d.is_ascii_digit() => {
            return Ok(Some((i64::from(d - b'0'), start + 3)));
        }
        Some(&[d, e, b'\r', b'\n']) if d.is_ascii_digit() && e.is_ascii_digit() => {
            return Ok(Some((
                i64::from(d - b'0') * 10 + i64::from(e - b'0'),
                start + 4,
            )));
        }
        _ => {}
    }
    const MAX_LINE: usize = 21;
    let window = &buf[start..buf.len().min(start + MAX_LINE)];
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        if window.len() == MAX_LINE {
            return Err(ProtoError::new(format!("invalid {what} length")));
        }
        return Ok(None);
    };
    if window[cr] == b'\n' {
        return Err(ProtoError::new(format!("invalid {what} length")));
    }
    let Some(&lf) = buf.get(start + cr + 1) else {
        return Ok(None);
    };
    if lf != b'\n' {
        return Err(ProtoError::new(format!("invalid {what} length")));
    }
    let text = &window[..cr];
    let (neg, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtoError::new(format!("invalid {what} length")));
    }
    let n = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Ok(Some((if neg { -n } else { n }, start + cr + 2)))
}

fn parse_multibulk(buf: &[u8], args: &mut Vec<Range<usize>>) -> Result<Option<usize>, ProtoError> {
    let Some((n, mut pos)) = read_int(buf, 1, "multibulk")? else {
        return Ok(None);
    };
    if n <= 0 {
        return Ok(Some(pos));
    }
    if n as usize > RESP_MAX_ARGS {
        // The count is not quoted: it is the client's bytes, and may be an individual number.
        return Err(ProtoError::new(format!(
            "too many arguments (at most {RESP_MAX_ARGS})"
        )));
    }
    for _ in 0..n {
        let Some(&tag) = buf.get(pos) else {
            return Ok(None);
        };
        if tag != b'$' {
            return Err(ProtoError::new(format!(
                "expected '$', got '{}'",
                printable(tag)
            )));
        }
        let Some((len, start)) = read_int(buf, pos + 1, "bulk")? else {
            return Ok(None);
        };
        if len < 0 {
            return Err(ProtoError::new("invalid bulk length"));
        }
        if len as usize > RESP_MAX_BULK_BYTES {
            return Err(ProtoError::new(format!(
                "bulk length exceeds the limit of {RESP_MAX_BULK_BYTES} bytes"
            )));
        }
        let end = start + len as usize;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtoError::new("bulk string not terminated by CRLF"));
        }
        args.push(start..end);
        pos = end + 2;
    }
    Ok(Some(pos))
}

pub(super) fn printable(b: u8) -> char {
    if b.is_ascii_graphic() {
        b as char
    } else {
        '?'
    }
}

/// An inline command: words separated by spaces or tabs, a word in double quotes may be empty
/// or hold spaces (no escapes).
fn parse_inline(buf: &[u8], args: &mut Vec<Range<usize>>) -> Result<Option<usize>, ProtoError> {
    let window = &buf[..buf.len().min(RESP_MAX_INLINE_BYTES)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        if window.len() == RESP_MAX_INLINE_BYTES {
            return Err(ProtoError::new(format!(
                "inline command longer than {RESP_MAX_INLINE_BYTES} bytes"
            )));
        }
        return Ok(None);
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    let mut i = 0;
    while i < line_end {
        match buf[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                let close = buf[i + 1..line_end]
                    .iter()
                    .position(|&b| b == b'"')
                    .ok_or_else(|| ProtoError::new("unbalanced quotes in request"))?;
                let end = i + 1 + close;
                if end + 1 < line_end && !matches!(buf[end + 1], b' ' | b'\t') {
                    return Err(ProtoError::new("unbalanced quotes in request"));
                }
                push_arg(args, i + 1..end)?;
                i = end + 1;
            }
            _ => {
                let end = buf[i..line_end]
                    .iter()
                    .position(|&b| b == b' ' || b == b'\t')
                    .map_or(line_end, |p| i + p);
                push_arg(args, i..end)?;
                i = end;
            }
        }
    }
    Ok(Some(nl + 1))
}

fn push_arg(args: &mut Vec<Range<usize>>, r: Range<usize>) -> Result<(), ProtoError> {
    if args.len() == RESP_MAX_ARGS {
        return Err(ProtoError::new(format!(
            "too many arguments (at most {RESP_MAX_ARGS})"
        )));
    }
    args.push(r);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<(Vec<String>, usize)>, String>;

    fn parse(buf: &[u8]) -> Parsed {
        let mut args = Vec::new();
        parse_command(buf, &mut args)
            .map(|r| {
                r.map(|end| {
                    let words = args
                        .iter()
                        .map(|r| String::from_utf8_lossy(&buf[r.clone()]).into_owned())
                        .collect();
                    (words, end)
                })
            })
            .map_err(|e| e.0)
    }

    /// Parses `input` whole, and every prefix of it: a prefix of a complete command is
    /// incomplete; a prefix of a broken one is incomplete or the same error.
    fn check(input: &[u8], expected: Result<(&[&str], usize), &str>) {
        let expected: Parsed = expected
            .map(|(w, end)| Some((w.iter().map(|s| s.to_string()).collect(), end)))
            .map_err(str::to_owned);
        assert_eq!(
            parse(input),
            expected,
            "{:?}",
            String::from_utf8_lossy(input)
        );
        let end = match &expected {
            Ok(Some((_, end))) => *end,
            _ => input.len(),
        };
        for cut in 0..end {
            let got = parse(&input[..cut]);
            assert!(
                got == Ok(None) || (expected.is_err() && got == expected),
                "prefix {cut} of {:?}: {got:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn multibulk() {
        check(b"*1\r\n$4\r\nPING\r\n", Ok((&["PING"], 14)));
        check(
            b"*3\r\n$9\r\nELIG.CARD\r\n$0\r\n\r\n$3\r\n123\r\n*1\r\n",
            Ok((&["ELIG.CARD", "", "123"], 34)),
        );
        check(b"*0\r\n", Ok((&[], 4)));
        check(b"*-1\r\n", Ok((&[], 5)));
        check(b"*1\r\n$3\r\na\r\n\r\n", Ok((&["a\r\n"], 13)));
        check(b"*x\r\n", Err("invalid multibulk length"));
        check(b"*1\n", Err("invalid multibulk length"));
        check(
            b"*99999999999999999999999\r\n",
            Err("invalid multibulk length"),
        );
        check(b"*65\r\n", Err("too many arguments (at most 64)"));
        check(b"*1\r\n+PING\r\n", Err("expected '$', got '+'"));
        check(b"*1\r\n$-1\r\n", Err("invalid bulk length"));
        check(
            b"*1\r\n$4097\r\n",
            Err("bulk length exceeds the limit of 4096 bytes"),
        );
        check(
            b"*1\r\n$4\r\nPINGxx",
            Err("bulk string not terminated by CRLF"),
        );
        check(b"*1\r\n$\r\n", Err("invalid bulk length"));
    }

    #[test]
    fn inline() {
        check(b"PING\r\n", Ok((&["PING"], 6)));
        check(b"PING\n", Ok((&["PING"], 5)));
        check(b"\r\n", Ok((&[], 2)));
        check(
            b"ELIG.CARD  33120015 \"\" 3456\t\"\" 1980-01-23\r\nPING\r\n",
            Ok((&["ELIG.CARD", "33120015", "", "3456", "", "1980-01-23"], 43)),
        );
        check(b"ECHO \"a b\"\n", Ok((&["ECHO", "a b"], 11)));
        check(b"ECHO \"a b\n", Err("unbalanced quotes in request"));
        check(b"ECHO \"a\"b\n", Err("unbalanced quotes in request"));
        let long = vec![b'a'; RESP_MAX_INLINE_BYTES];
        check(&long, Err("inline command longer than 16384 bytes"));
        let many = format!("{}\n", vec!["x"; RESP_MAX_ARGS + 1].join(" "));
        check(many.as_bytes(), Err("too many arguments (at most 64)"));
    }
}
