//! Chunked request bodies: their framing read without copying the data.

use crate::server::limits::{HTTP_MAX_CHUNK_LINE_BYTES, HTTP_MAX_HEADER_BYTES};
use std::ops::Range;

/// A chunked body that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ChunkError {
    #[error("malformed chunk size line")]
    SizeLine,
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
        let (line, size) = match httparse::parse_chunk_size(window) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) if window.len() == HTTP_MAX_CHUNK_LINE_BYTES => {
                return Err(ChunkError::LongSizeLine)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ChunkError::SizeLine),
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
        if nl == 0 || rest[nl - 1] != b'\r' {
            return Err(ChunkError::Trailer);
        }
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
        check_chunked(b"0\r\nbroken\n\r\n", big, Err(Trailer));
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
