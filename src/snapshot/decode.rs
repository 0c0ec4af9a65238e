//! Loading a file and choosing its encoding (SPEC 3): valid UTF-8 (BOM optional) is used as is;
//! otherwise the file must decode as CP932 without a single replacement; otherwise it is
//! rejected whole.

use super::error::SnapshotError;
use std::borrow::Cow;
use std::path::Path;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Utf8,
    /// CP932 (Windows-31J, the Shift_JIS that Japanese Windows writes).
    Cp932,
}

impl Encoding {
    /// As `report.json` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf8",
            Encoding::Cp932 => "cp932",
        }
    }
}

/// The bytes of one file, read whole. Read rather than mapped: a delivery still being
/// written or replaced would raise SIGBUS through a mapping, and shikaku keeps `unsafe` to the
/// one index mapping (`index::map_file`). Only one file per worker is held at a time.
pub(crate) struct Source(Vec<u8>);

impl Source {
    pub(crate) fn open(path: &Path) -> Result<Source, SnapshotError> {
        std::fs::read(path)
            .map(Source)
            .map_err(|e| SnapshotError::io(path, e))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A decoded file: UTF-8 bytes to parse, borrowed from the mapping whenever the file already
/// is UTF-8.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub text: Cow<'a, [u8]>,
    pub encoding: Encoding,
}

/// Chooses the encoding of one whole file. On failure returns the 1-based line of the first
/// byte that is not valid UTF-8, for the error message.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded<'_>, u64> {
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    match std::str::from_utf8(body) {
        Ok(_) => Ok(Decoded {
            text: Cow::Borrowed(body),
            encoding: Encoding::Utf8,
        }),
        Err(e) => {
            let bad_line = line_of(body, e.valid_up_to());
            encoding_rs::SHIFT_JIS
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|s| Decoded {
                    text: Cow::Owned(s.into_owned().into_bytes()),
                    encoding: Encoding::Cp932,
                })
                .ok_or(bad_line)
        }
    }
}

/// 1-based line holding byte `offset`.
pub(crate) fn line_of(bytes: &[u8], offset: usize) -> u64 {
    let end = offset.min(bytes.len());
    1 + bytes[..end].iter().filter(|&&b| b == b'\n').count() as u64
}

/// Data rows of a file that could not be parsed as CSV (an undecodable one): non-blank
/// newline-delimited lines, minus the first non-blank line (the header). Blank lines are
/// skipped as the CSV reader skips them. A quoted field spanning lines counts once per line,
/// which is the best that can be said of a file whose text is unknown.
pub fn count_data_lines(bytes: &[u8]) -> u64 {
    let lines = bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.iter().all(|&b| b == b'\r'))
        .count() as u64;
    lines.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let d = decode(b"\xEF\xBB\xBFa,b\n").unwrap();
        assert_eq!((&*d.text, d.encoding), (&b"a,b\n"[..], Encoding::Utf8));
        let d = decode("名前\n".as_bytes()).unwrap();
        assert_eq!(d.encoding, Encoding::Utf8);
        // 山田 in CP932.
        let d = decode(b"\x8eR\x93c\n").unwrap();
        assert_eq!(
            (std::str::from_utf8(&d.text).unwrap(), d.encoding),
            ("山田\n", Encoding::Cp932)
        );
        // 0x80 is not UTF-8 (line 2) and 0xFF is not CP932.
        assert_eq!(decode(b"a\n\x80\xff\n").unwrap_err(), 2);
    }

    #[test]
    fn data_line_counts() {
        let check = |text: &[u8], n: u64| assert_eq!(count_data_lines(text), n, "{text:?}");
        check(b"", 0);
        check(b"h\n", 0);
        check(b"h", 0);
        check(b"h\na\nb", 2);
        check(b"h\r\na\r\n\r\nb\r\n", 2);
        check(b"\nh\n\na\n", 1);
    }
}
