//! The slice of RESP the load generator needs: encoding commands once, up front, and a
//! restartable parser that classifies replies without allocating.
//!
//! The parser is stateless: given the unconsumed bytes of a connection it either returns one
//! complete reply and its length or says "incomplete". Re-parsing a partial header after the
//! next read costs a few bytes; keeping no state means no state can go wrong across reads.

use crate::domain::text::write_decimal;
use thiserror::Error;

/// Longest bulk string or simple line accepted. An answer JSON is under 1 KiB and a person
/// answer with several records a few KiB; anything near this limit is a broken server.
pub const MAX_REPLY_BYTES: usize = 16 << 20;
/// Longest length/integer header line (`$16777216\r\n` fits with room to spare).
const MAX_HEADER_BYTES: usize = 32;
/// Deepest array nesting accepted (no command we send gets an array back at all).
const MAX_DEPTH: usize = 4;
/// Most elements accepted in one array.
const MAX_ARRAY_LEN: i64 = 1 << 20;

/// One reply, as far as counting right and wrong answers needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A bulk string holding an answer JSON (`{"validity":N,...`) with this validity, 1–5.
    Answer(u8),
    /// A bulk string that is not an answer JSON.
    OtherBulk,
    /// `$-1` (RESP2) or `_` (RESP3): Redis' "no such key".
    Nil,
    /// `-ERR ...`, `-NOAUTH ...`: the message is the reply's bytes between `-` and CRLF.
    Error,
    /// `+OK`, `+PONG`.
    Simple,
    Integer,
    Array,
}

/// A reply stream that is not RESP: the connection cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RespError {
    #[error("unknown RESP type byte 0x{0:02x}")]
    BadType(u8),
    #[error("malformed RESP length or integer")]
    BadNumber,
    #[error("RESP reply larger than {MAX_REPLY_BYTES} bytes")]
    TooLarge,
    #[error("RESP arrays nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("bulk string not terminated by CRLF")]
    BadTerminator,
}

/// Parses one reply from the front of `buf`: `Ok(None)` when more bytes are needed, else the
/// reply and how many bytes it took.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    parse_at(buf, 0)
}

fn parse_at(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, RespError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    match kind {
        b'+' | b'-' => {
            let Some(end) = find_crlf(buf, MAX_REPLY_BYTES)? else {
                return Ok(None);
            };
            let reply = if kind == b'+' {
                Reply::Simple
            } else {
                Reply::Error
            };
            Ok(Some((reply, end + 2)))
        }
        b':' => Ok(header(buf)?.map(|(_, len)| (Reply::Integer, len))),
        b'_' => Ok(header_line(buf)?.map(|end| (Reply::Nil, end + 2))),
        b'$' => parse_bulk(buf),
        b'*' => parse_array(buf, depth),
        other => Err(RespError::BadType(other)),
    }
}

fn parse_bulk(buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
    let Some((n, head)) = header(buf)? else {
        return Ok(None);
    };
    if n == -1 {
        return Ok(Some((Reply::Nil, head)));
    }
    let n = usize::try_from(n).map_err(|_| RespError::BadNumber)?;
    if n > MAX_REPLY_BYTES {
        return Err(RespError::TooLarge);
    }
    let total = head + n + 2;
    if buf.len() < total {
        return Ok(None);
    }
    if &buf[head + n..total] != b"\r\n" {
        return Err(RespError::BadTerminator);
    }
    let payload = &buf[head..head + n];
    let reply = answer_validity(payload).map_or(Reply::OtherBulk, Reply::Answer);
    Ok(Some((reply, total)))
}

fn parse_array(buf: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, RespError> {
    if depth >= MAX_DEPTH {
        return Err(RespError::TooDeep);
    }
    let Some((n, mut at)) = header(buf)? else {
        return Ok(None);
    };
    if n == -1 {
        return Ok(Some((Reply::Nil, at)));
    }
    if !(0..=MAX_ARRAY_LEN).contains(&n) {
        return Err(RespError::BadNumber);
    }
    for _ in 0..n {
        match parse_at(&buf[at..], depth + 1)? {
            Some((_, len)) => at += len,
            None => return Ok(None),
        }
    }
    Ok(Some((Reply::Array, at)))
}

/// The validity digit of an answer JSON, which shikaku always writes first
/// (`{"validity":N,`); `None` for anything else.
pub fn answer_validity(payload: &[u8]) -> Option<u8> {
    const PREFIX: &[u8] = b"{\"validity\":";
    let rest = payload.strip_prefix(PREFIX)?;
    match rest {
        [d @ b'1'..=b'5', b',' | b'}', ..] => Some(d - b'0'),
        _ => None,
    }
}

/// A `:`/`$`/`*` header: its signed number and the length of the line with CRLF.
fn header(buf: &[u8]) -> Result<Option<(i64, usize)>, RespError> {
    let Some(end) = header_line(buf)? else {
        return Ok(None);
    };
    Ok(Some((parse_int(&buf[1..end])?, end + 2)))
}

/// Position of the CRLF ending a short header line.
fn header_line(buf: &[u8]) -> Result<Option<usize>, RespError> {
    find_crlf(buf, MAX_HEADER_BYTES)
}

/// Position of the first CRLF, looking at most `limit` bytes far; an over-long line is an
/// error rather than a reason to keep buffering.
fn find_crlf(buf: &[u8], limit: usize) -> Result<Option<usize>, RespError> {
    let window = &buf[..buf.len().min(limit + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(p) => Ok(Some(p)),
        None if buf.len() >= limit + 2 => Err(if limit == MAX_HEADER_BYTES {
            RespError::BadNumber
        } else {
            RespError::TooLarge
        }),
        None => Ok(None),
    }
}

fn parse_int(digits: &[u8]) -> Result<i64, RespError> {
    let (neg, digits) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(RespError::BadNumber);
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(RespError::BadNumber);
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Ok(if neg { -n } else { n })
}

/// Appends one command as a RESP array of bulk strings (what every Redis client sends).
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    write_decimal(out, args.len() as u64);
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        write_decimal(out, a.len() as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses every complete reply at the front of `buf`.
    fn parse_all(buf: &[u8]) -> Result<(Vec<Reply>, usize), RespError> {
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((r, n)) = parse_reply(&buf[at..])? {
            out.push(r);
            at += n;
        }
        Ok((out, at))
    }

    /// `bytes` must parse to `expected` in one piece, and also when it arrives in two reads
    /// split at every byte: the first read may give only a prefix of the replies, never a
    /// wrong one, and the rest must follow after the second.
    fn check(bytes: &[u8], expected: &[Reply]) {
        assert_eq!(
            parse_all(bytes),
            Ok((expected.to_vec(), bytes.len())),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        for split in 0..bytes.len() {
            let (first, used) = parse_all(&bytes[..split]).expect("prefix is valid RESP");
            assert!(expected.starts_with(&first), "split {split}: {first:?}");
            let (rest, used2) = parse_all(&bytes[used..]).unwrap();
            assert_eq!(used + used2, bytes.len(), "split {split}");
            assert_eq!([first, rest].concat(), expected, "split {split}");
        }
    }

    fn check_err(bytes: &[u8], expected: RespError) {
        assert_eq!(parse_all(bytes).map(|_| ()), Err(expected), "{bytes:?}");
    }

    #[test]
    fn replies() {
        use Reply::*;
        check(b"", &[]);
        check(b"$14\r\n{\"validity\":1}\r\n", &[Answer(1)]);
        check(
            b"$42\r\n{\"validity\":4,\"validity_name\":\"not_found\"}\r\n",
            &[Answer(4)],
        );
        check(b"$14\r\n{\"validity\":7}\r\n", &[OtherBulk]);
        check(b"$15\r\n{\"validity\":12}\r\n", &[OtherBulk]);
        check(b"$0\r\n\r\n", &[OtherBulk]);
        check(b"$-1\r\n", &[Nil]);
        check(b"_\r\n", &[Nil]);
        check(b"-ERR insurer_number: bad check digit\r\n", &[Error]);
        check(b"-NOAUTH authentication required\r\n", &[Error]);
        check(b"+OK\r\n+PONG\r\n", &[Simple, Simple]);
        check(b":42\r\n:-1\r\n", &[Integer, Integer]);
        check(b"*2\r\n$1\r\na\r\n:1\r\n", &[Array]);
        check(b"*0\r\n*-1\r\n", &[Array, Nil]);
        check(b"*1\r\n*1\r\n+x\r\n", &[Array]);
        // Pipelined answers, as the load loop sees them.
        check(
            b"$14\r\n{\"validity\":2}\r\n-ERR x\r\n$-1\r\n$14\r\n{\"validity\":5}\r\n",
            &[Answer(2), Error, Nil, Answer(5)],
        );
        // A bulk holding CRLF inside is read by its length, not its lines.
        check(b"$4\r\n\r\n\r\n\r\n", &[OtherBulk]);
    }

    #[test]
    fn broken_streams() {
        check_err(b"?\r\n", RespError::BadType(b'?'));
        check_err(b"$x\r\n", RespError::BadNumber);
        check_err(b"$\r\n", RespError::BadNumber);
        check_err(b"$3\r\nabcXY", RespError::BadTerminator);
        check_err(b"$99999999999\r\n", RespError::TooLarge);
        check_err(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n", RespError::TooDeep);
        // A header that never ends is an error once it exceeds the limit.
        check_err(&[b'$'; 40], RespError::BadNumber);
    }

    #[test]
    fn validity_prefix() {
        assert_eq!(answer_validity(b"{\"validity\":3,\"x\":1}"), Some(3));
        assert_eq!(answer_validity(b"{\"validity\":0,"), None);
        assert_eq!(answer_validity(b"{\"validity\":1"), None);
        assert_eq!(answer_validity(b"{\"error\":\"x\"}"), None);
    }

    #[test]
    fn encoding() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"GET", b"", "記号".as_bytes()]);
        assert_eq!(
            out,
            "*3\r\n$3\r\nGET\r\n$0\r\n\r\n$6\r\n記号\r\n".as_bytes()
        );
        let mut n = Vec::new();
        write_decimal(&mut n, 0);
        write_decimal(&mut n, 1234567890);
        write_decimal(&mut n, u64::MAX);
        assert_eq!(n, b"0123456789018446744073709551615");
    }
}
