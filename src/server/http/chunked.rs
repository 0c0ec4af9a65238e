//! Chunked request bodies: their framing read without copying the data.

use crate::server::limits::{HTTP_MAX_CHUNK_LINE_BYTES, HTTP_MAX_HEADER_BYTES};
use std::ops::Range;

/// A chunked body that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ChunkError {
    #[error("malformed chunk size line")]
    SizeLine,
    /// A CR or LF that does not end a line with CRLF: a proxy ending lines at a bare LF would
    /// frame the body otherwise (request smuggling).
    #[error("a bare CR or LF in a chunk size line or trailer; end every line with CRLF")]
    BareLineEnd,
    #[error("chunk size line longer than {HTTP_MAX_CHUNK_LINE_BYTES} bytes")]
    LongSizeLine,
    #[error("chunk data not followed by CRLF")]
    DataEnd,
    #[error("malformed trailer line")]
    Trailer,
    #[error("trailers exceed {HTTP_MAX_HEADER_BYTES} bytes")]
    LongTrailers,
    #[error("more than {0} chunks; send larger chunks or a Content-Length")]
    TooManyChunks(usize),
    /// The decoded body outgrew the endpoint's limit (the bytes so far).
    #[error("request body exceeds the limit")]
    TooLarge(usize),
}

impl ChunkError {
    pub(super) fn status(&self) -> u16 {
        match self {
            ChunkError::TooManyChunks(_) | ChunkError::TooLarge(_) => 413,
            ChunkError::LongTrailers => 431,
            _ => 400,
        }
    }
}

/// Reads the framing of a chunked body (RFC 9112 7.1) at the start of `buf`, trailers
/// included: `Ok(Some(bytes the encoding spans))` once it is complete, with the data ranges of
/// its chunks in `ranges`; `Ok(None)` while more is to come. Only the size lines are read, so
/// scanning again after each read of a large body costs little.
pub(super) fn scan_chunked(
    buf: &[u8],
    limit: usize,
    max_chunks: usize,
    ranges: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ChunkError> {
    ranges.clear();
    let mut at = 0;
    let mut body_bytes = 0usize;
    loop {
        // Only the longest line allowed is read, so which error a bad line gets does not
        // depend on how much of it has arrived (found by fuzzing: docs/fuzzing.md).
        let window = &buf[at..buf.len().min(at + HTTP_MAX_CHUNK_LINE_BYTES)];
        let (line, size) = match size_line(window)? {
            Some(found) => found,
            None if window.len() == HTTP_MAX_CHUNK_LINE_BYTES => {
                return Err(ChunkError::LongSizeLine)
            }
            None => return Ok(None),
        };
        at += line;
        if size == 0 {
            break;
        }
        if ranges.len() == max_chunks {
            return Err(ChunkError::TooManyChunks(max_chunks));
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        body_bytes = body_bytes.saturating_add(size);
        if body_bytes > limit {
            return Err(ChunkError::TooLarge(body_bytes));
        }
        let end = at + size;
        match buf.get(end..end + 2) {
            None => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err(ChunkError::DataEnd),
        }
        ranges.push(at..end);
        at = end + 2;
    }
    // Trailer fields, then an empty line.
    let trailers_start = at;
    loop {
        let rest = &buf[at..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if at - trailers_start + rest.len() > HTTP_MAX_HEADER_BYTES {
                return Err(ChunkError::LongTrailers);
            }
            return Ok(None);
        };
        trailer_line(&rest[..=nl])?;
        at += nl + 1;
        if at - trailers_start > HTTP_MAX_HEADER_BYTES {
            return Err(ChunkError::LongTrailers);
        }
        if nl == 1 {
            debug_assert_eq!(ranges.iter().map(|r| r.len()).sum::<usize>(), body_bytes);
            return Ok(Some(at));
        }
    }
}

/// A chunk size line at the start of `buf` (RFC 9112 7.1: `1*HEXDIG [chunk-ext] CRLF`):
/// `Some((its length, the size))`, `None` while it has not all arrived. Written here rather
/// than httparse's, which takes any byte in an extension, a bare LF among them. An error is
/// found at the first byte that cannot belong to the line, so it does not depend on how much
/// has arrived.
fn size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, ChunkError> {
    let digits = buf.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    // 16 hex digits fill a u64; more is refused even with leading zeros, as httparse did.
    if digits > 16 || (digits == 0 && !buf.is_empty()) {
        return Err(ChunkError::SizeLine);
    }
    let mut in_extension = false;
    for (i, &b) in buf.iter().enumerate().skip(digits) {
        match b {
            b'\r' => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => {
                    let hex =
                        std::str::from_utf8(&buf[..digits]).map_err(|_| ChunkError::SizeLine)?;
                    let size = u64::from_str_radix(hex, 16).map_err(|_| ChunkError::SizeLine)?;
                    return Ok(Some((i + 2, size)));
                }
                Some(_) => return Err(ChunkError::BareLineEnd),
            },
            b'\n' => return Err(ChunkError::BareLineEnd),
            b';' => in_extension = true,
            // White space may come before the extension's `;` (BWS) and inside it.
            b' ' | b'\t' => {}
            // Extension names and values are skipped; control bytes are refused.
            b'!'..=b'~' | 0x80.. if in_extension => {}
            _ => return Err(ChunkError::SizeLine),
        }
    }
    Ok(None)
}

/// Checks a trailer line (CRLF included): a field line, `name: value`, or the empty line
/// that ends them.
fn trailer_line(line: &[u8]) -> Result<(), ChunkError> {
    let Some(text) = line.strip_suffix(b"\r\n") else {
        return Err(ChunkError::BareLineEnd);
    };
    if text.contains(&b'\r') {
        return Err(ChunkError::BareLineEnd);
    }
    if text.is_empty() {
        return Ok(());
    }
    let Some(colon) = text.iter().position(|&b| b == b':') else {
        return Err(ChunkError::Trailer);
    };
    let (name, value) = (&text[..colon], &text[colon + 1..]);
    let token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let field_byte = |b: &u8| matches!(b, b'\t' | b' '..=b'~' | 0x80..);
    if name.is_empty() || !name.iter().all(token) || !value.iter().all(field_byte) {
        return Err(ChunkError::Trailer);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::limits::HTTP_MAX_CHUNKS;

    /// The body a chunked encoding carries and the bytes it spans, or how it fails.
    fn check_chunked(
        input: &[u8],
        limit: usize,
        expected: Result<Option<(&str, usize)>, ChunkError>,
    ) {
        let mut ranges = Vec::new();
        let got = scan_chunked(input, limit, HTTP_MAX_CHUNKS, &mut ranges).map(|done| {
            done.map(|span| {
                let body: Vec<u8> = ranges
                    .iter()
                    .flat_map(|r| input[r.clone()].to_vec())
                    .collect();
                (String::from_utf8(body).unwrap(), span)
            })
        });
        let expected = expected.map(|o| o.map(|(b, n)| (b.to_string(), n)));
        assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(input));
        // Every proper prefix of a complete encoding is incomplete, never an error.
        if let Ok(Some((_, span))) = &got {
            for cut in 0..*span {
                let r = scan_chunked(&input[..cut], limit, HTTP_MAX_CHUNKS, &mut ranges);
                assert_eq!(r, Ok(None), "cut at {cut}");
            }
        }
    }

    #[test]
    fn chunked_bodies() {
        use ChunkError::*;
        let big = 1 << 20;
        check_chunked(b"0\r\n\r\n", big, Ok(Some(("", 5))));
        check_chunked(b"3\r\nabc\r\n0\r\n\r\n", big, Ok(Some(("abc", 13))));
        check_chunked(
            b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\nGET",
            big,
            Ok(Some(("abc0123456789", 28))),
        );
        // Upper- and lower-case hex, extensions, trailers.
        check_chunked(
            b"a;name=v\r\n0123456789\r\n0\r\n\r\n",
            big,
            Ok(Some(("0123456789", 27))),
        );
        check_chunked(b"1\r\nx\r\n0\r\nX-Sum: 1\r\n\r\n", big, Ok(Some(("x", 21))));
        check_chunked(b"3\r\nab", big, Ok(None));
        check_chunked(b"", big, Ok(None));
        check_chunked(b"zz\r\n", big, Err(SizeLine));
        check_chunked(b"3\r\nabcX\r\n0\r\n\r\n", big, Err(DataEnd));
        check_chunked(b"0\r\nbroken\n\r\n", big, Err(BareLineEnd));
        // Issue 27: httparse read `3;x\nGET /metrics HTTP/1.1\r\n` as one size line of 3.
        check_chunked(
            b"3;x\nGET /metrics HTTP/1.1\r\nabc\r\n",
            big,
            Err(BareLineEnd),
        );
        check_chunked(b"3;x\rabc\r\n", big, Err(BareLineEnd));
        check_chunked(b"3\r", big, Ok(None));
        check_chunked(b"3;x\x01\r\n", big, Err(SizeLine));
        check_chunked(
            b"3 ;x=\"a b\"\r\nabc\r\n0\r\n\r\n",
            big,
            Ok(Some(("abc", 22))),
        );
        check_chunked(b"ffffffffffffffff\r\n", big, Err(TooLarge(usize::MAX)));
        check_chunked(b"0\r\nbroken\r\n\r\n", big, Err(Trailer));
        check_chunked(b"0\r\nX: a\rb\r\n\r\n", big, Err(BareLineEnd));
        check_chunked(
            b"0\r\nX-Sum:\r\nY: \xe3\x81\x82\r\n\r\n",
            big,
            Ok(Some(("", 21))),
        );
        check_chunked(
            format!("1;{}\r\n", "x".repeat(70)).as_bytes(),
            big,
            Err(LongSizeLine),
        );
        check_chunked(
            format!("1;{}", "x".repeat(80)).as_bytes(),
            big,
            Err(LongSizeLine),
        );
        check_chunked(b"fffffffffffffffffffff\r\n", big, Err(SizeLine));
        check_chunked(
            b"5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n",
            8,
            Err(TooLarge(10)),
        );
        let many = "1\r\nx\r\n".repeat(HTTP_MAX_CHUNKS + 1) + "0\r\n\r\n";
        check_chunked(many.as_bytes(), big, Err(TooManyChunks(HTTP_MAX_CHUNKS)));
        let trailers = format!("0\r\n{}", "X: y\r\n".repeat(HTTP_MAX_HEADER_BYTES / 6 + 1));
        check_chunked(trailers.as_bytes(), big, Err(LongTrailers));
    }
}
