//! Loading a file and choosing its encoding (docs/delivery.md): valid UTF-8 (BOM optional) is used as is;
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
/// written or replaced would raise SIGBUS through a mapping, and shikaku maps only index files,
/// which are never written after they are published (`index::map_file`). Only one file per worker is held at a time.
pub(crate) struct Source(Vec<u8>);

impl Source {
    /// Reads a regular file whole. Anything else is refused before a byte is read: a named
    /// pipe would block the build forever (holding `DATA/LOCK`, so the next night's build
    /// fails too), a device could stream without end. The file is opened non-blocking so that
    /// even opening a FIFO returns at once, and its type is taken from the opened descriptor,
    /// so a file swapped for a pipe between a check and the open is still caught.
    pub(crate) fn open(path: &Path) -> Result<Source, SnapshotError> {
        Source::open_at_most(path, u64::MAX)
    }

    /// [`Source::open`], refusing a file of more than `max_bytes` (by its size when opened,
    /// and by what is read, should it grow meanwhile) before it is read.
    fn open_at_most(path: &Path, max_bytes: u64) -> Result<Source, SnapshotError> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        // Checked before the open too: opening a socket fails with an I/O error, which would
        // read as the system's fault rather than the delivery's.
        let before = std::fs::metadata(path).map_err(|e| SnapshotError::io(path, e))?;
        refuse_irregular(path, &before)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| SnapshotError::io(path, e))?;
        let meta = file.metadata().map_err(|e| SnapshotError::io(path, e))?;
        refuse_irregular(path, &meta)?;
        let too_large = |bytes| SnapshotError::TooLarge {
            path: path.to_owned(),
            bytes,
            max_bytes,
        };
        if meta.len() > max_bytes {
            return Err(too_large(meta.len()));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| SnapshotError::io(path, e))?;
        if bytes.len() as u64 > max_bytes {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(Source(bytes))
    }

    /// [`Source::open`], refusing a file whose real path (every symbolic link resolved) lies
    /// outside `root`: a link out of the delivery could make a build read any file the
    /// build's user can.
    pub(crate) fn open_within(path: &Path, root: &Path) -> Result<Source, SnapshotError> {
        Source::open_within_at_most(path, root, u64::MAX)
    }

    /// [`Source::open_within`] and [`Source::open_at_most`] together.
    pub(crate) fn open_within_at_most(
        path: &Path,
        root: &Path,
        max_bytes: u64,
    ) -> Result<Source, SnapshotError> {
        check_within(path, root)?;
        Source::open_at_most(path, max_bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

fn refuse_irregular(path: &Path, meta: &std::fs::Metadata) -> Result<(), SnapshotError> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "of an unknown file type"
    };
    Err(SnapshotError::NotRegularFile {
        path: path.to_owned(),
        kind,
    })
}

/// Refuses a `path` whose real path lies outside `root`'s. A path that cannot be resolved
/// (a dangling link) is left for the open to report.
pub(crate) fn check_within(path: &Path, root: &Path) -> Result<(), SnapshotError> {
    let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize()) else {
        return Ok(());
    };
    if real.starts_with(&real_root) {
        return Ok(());
    }
    Err(SnapshotError::OutsideSnapshots {
        path: path.to_owned(),
        target: real,
    })
}

/// A decoded file: UTF-8 text to parse, borrowed from the mapping whenever the file already
/// is UTF-8. Text, not bytes: a reader that needs `str` then does not validate again what
/// this validated or decoded (that was 8% of checking a claims file).
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub encoding: Encoding,
}

/// Why a file has no single encoding; lines are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Undecodable {
    #[error(
        "is neither UTF-8 nor CP932 (Shift_JIS); first byte invalid as UTF-8 is on line {utf8_line}, as CP932 on line {cp932_line}"
    )]
    Neither { utf8_line: u64, cp932_line: u64 },
    /// Valid UTF-8 Japanese on one line, bytes invalid as UTF-8 on another: text pasted from
    /// another program. Even where the whole decodes as CP932, its UTF-8 lines would be
    /// indexed as mojibake.
    #[error(
        "mixes encodings: line {utf8_line} is UTF-8 but line {other_line} is not; save the whole file in one encoding"
    )]
    Mixed { utf8_line: u64, other_line: u64 },
}

/// Chooses the encoding of one whole file.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded<'_>, Undecodable> {
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let e = match std::str::from_utf8(body) {
        Ok(text) => {
            return Ok(Decoded {
                text: Cow::Borrowed(text),
                encoding: Encoding::Utf8,
            })
        }
        Err(e) => e,
    };
    let line = line_of(body, e.valid_up_to());
    if let Some(utf8_line) = first_utf8_multibyte_line(body) {
        return Err(Undecodable::Mixed {
            utf8_line,
            other_line: line,
        });
    }
    let text = encoding_rs::SHIFT_JIS
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or_else(|| Undecodable::Neither {
            utf8_line: line,
            cp932_line: first_invalid_cp932_line(bytes),
        })?;
    Ok(Decoded {
        text: Cow::Owned(text.into_owned()),
        encoding: Encoding::Cp932,
    })
}

/// The line of the first byte that is not CP932 (a file cut inside a character: its last
/// line), for a file known not to decode.
fn first_invalid_cp932_line(bytes: &[u8]) -> u64 {
    let mut decoder = encoding_rs::SHIFT_JIS.new_decoder_without_bom_handling();
    let mut out = [0u8; 4096];
    let mut at = 0;
    loop {
        let (result, read, _) =
            decoder.decode_to_utf8_without_replacement(&bytes[at..], &mut out, true);
        match result {
            encoding_rs::DecoderResult::InputEmpty => return line_of(bytes, bytes.len()),
            encoding_rs::DecoderResult::OutputFull => at += read,
            encoding_rs::DecoderResult::Malformed(bad, after) => {
                let end = at + read;
                return line_of(bytes, end - usize::from(bad) - usize::from(after));
            }
        }
    }
}

/// The first line holding a valid UTF-8 sequence of three bytes or more (Japanese text in
/// UTF-8) that is valid UTF-8 as a whole. CP932 text almost never is: its kana and common
/// kanji begin with bytes 0x81-0x9F, which cannot begin a UTF-8 sequence.
fn first_utf8_multibyte_line(body: &[u8]) -> Option<u64> {
    // Hand-written for speed: every byte of every CP932 file passes here (a claims file of a
    // month, a snapshot file a night), and a byte-at-a-time split and scan was a quarter of
    // reading one. Lines are found with memchr, and bytes of 0xE0 or above eight at a time.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    for (i, end) in ends.enumerate() {
        let line = &body[start..end];
        if has_byte_from_e0(line) && std::str::from_utf8(line).is_ok() {
            return Some(i as u64 + 1);
        }
        start = end + 1;
    }
    None
}

/// Whether a byte of `bytes` is 0xE0 or above (bits 7, 6 and 5 all set: the first byte of a
/// UTF-8 sequence of three bytes or more), eight bytes at a time. Shifting a word left by 1
/// and 2 brings bits 6 and 5 of each byte under its bit 7; what crosses from the byte below
/// lands in bits 0 and 1, which the mask leaves out.
fn has_byte_from_e0(bytes: &[u8]) -> bool {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("chunks of 8"));
        if x & (x << 1) & (x << 2) & HIGH_BITS != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b >= 0xE0)
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
    #[test]
    fn bytes_from_e0_are_found_in_any_position_as_a_byte_loop_finds_them() {
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut line = vec![0xDFu8; len];
                    line[at] = b;
                    let naive = line.iter().any(|&x| x >= 0xE0);
                    assert_eq!(super::has_byte_from_e0(&line), naive, "{line:?}");
                }
            }
        }
        assert!(!super::has_byte_from_e0(&[0x7F; 40]));
        assert!(!super::has_byte_from_e0(&[
            0xDF,
            0xC0,
            0xA0,
            0x60,
            0xE0 >> 1,
            0xBF,
            0x9F,
            0xDF
        ]));
    }

    #[test]
    fn the_first_utf8_line_is_found_by_number() {
        let utf8 = "カナ".as_bytes();
        let mut body = b"a,b\r\n\xb6\xc5\n".to_vec();
        body.extend_from_slice(utf8);
        body.extend_from_slice(b"\nend");
        assert_eq!(super::first_utf8_multibyte_line(&body), Some(3));
        assert_eq!(super::first_utf8_multibyte_line(b"a\nb\n"), None);
        assert_eq!(super::first_utf8_multibyte_line(utf8), Some(1));
    }

    use super::*;

    #[test]
    fn encodings() {
        let d = decode(b"\xEF\xBB\xBFa,b\n").unwrap();
        assert_eq!((&*d.text, d.encoding), ("a,b\n", Encoding::Utf8));
        let d = decode("名前\n".as_bytes()).unwrap();
        assert_eq!(d.encoding, Encoding::Utf8);
        // 山田 in CP932.
        let d = decode(b"\x8eR\x93c\n").unwrap();
        assert_eq!((&*d.text, d.encoding), ("山田\n", Encoding::Cp932));
        // 0x80 is not UTF-8 (line 2) and 0xFF is not CP932.
        assert_eq!(
            decode(b"a\n\x80\xff\n").unwrap_err(),
            Undecodable::Neither {
                utf8_line: 2,
                cp932_line: 2
            }
        );
        // CP932 cut inside a character on line 3: the cut is named, not line 1 (where
        // the first byte invalid as UTF-8 is).
        assert_eq!(
            decode(b"\x8eR\n\x93c\n\x8e").unwrap_err(),
            Undecodable::Neither {
                utf8_line: 1,
                cp932_line: 3
            }
        );
    }

    /// Regression: a UTF-8 file with one line pasted in CP932 decoded whole as CP932, every
    /// UTF-8 name turned to mojibake.
    #[test]
    fn a_file_mixing_utf8_and_cp932_is_refused() {
        let mut mixed = "h\n山田\n".as_bytes().to_vec();
        mixed.extend_from_slice(b"\x8eR\x93c\n");
        assert_eq!(
            decode(&mixed).unwrap_err(),
            Undecodable::Mixed {
                utf8_line: 2,
                other_line: 3
            }
        );
        // CP932 kana and kanji with half-width kana and ASCII lines stay CP932.
        let d = decode(b"h,a\n\x83\x84\x83}\x83_,\xb1\xb2\n\x8eR\x93c,x\n").unwrap();
        assert_eq!(
            (&*d.text, d.encoding),
            ("h,a\nヤマダ,ｱｲ\n山田,x\n", Encoding::Cp932)
        );
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
