//! A truncated, bit-flipped or wrong-version index (main file or segment file) gives a typed
//! error, never a panic, and never a different answer.

use shikaku::domain::*;
use shikaku::format::{FormatError, HEADER_BYTES};
use shikaku::index::{Index, IndexFiles};
use shikaku::query::{write_answer, CardQuery, Lookup, PersonQuery};

/// The fixtures' three cards (two persons, one of them on two cards).
fn sample_index() -> IndexFiles<Vec<u8>> {
    shikaku::testing::three_cards("12")
}

/// Every answer the sample index gives, as JSON lines.
fn answers<B: AsRef<[u8]>>(index: &Index<B>) -> String {
    let d = |s: &str| Date::parse(s).unwrap();
    let mut out = Vec::new();
    for number in ["3456", "3457", "3458", "9999"] {
        let q = CardQuery {
            insurer: InsurerNumber::parse("33120015").unwrap(),
            symbol: "12".into(),
            number: number.into(),
            branch: None,
            birthdate: d("1980-01-23"),
            date: Some(d("2026-11-24")),
            limit_consent: false,
        };
        write_answer(
            &mut out,
            &index.card(&q, d("2026-11-24")),
            d("2026-11-24"),
            "g",
            false,
        );
        out.push(b'\n');
    }
    for p in [12345678901, 22345678901, 32345678901] {
        let q = PersonQuery {
            individual_number: IndividualNumber::from_first11(p),
            date: None,
            limit_consent: false,
        };
        write_answer(
            &mut out,
            &index.person(&q, d("2026-11-24")),
            d("2026-11-24"),
            "g",
            false,
        );
        out.push(b'\n');
    }
    String::from_utf8(out).unwrap()
}

fn open_and_verify(files: IndexFiles<Vec<u8>>) -> Result<Index<Vec<u8>>, FormatError> {
    let index = Index::open(files, PersonKey::demo())?;
    index.verify()?;
    Ok(index)
}

/// The sample generation with file `which` (0: the main file, then the segment files)
/// changed by `f`.
fn changed(
    files: &IndexFiles<Vec<u8>>,
    which: usize,
    f: impl FnOnce(&mut Vec<u8>),
) -> IndexFiles<Vec<u8>> {
    let mut out = files.clone();
    match which {
        0 => f(&mut out.main),
        i => f(&mut out.segments[i - 1]),
    }
    out
}

fn file(files: &IndexFiles<Vec<u8>>, which: usize) -> &[u8] {
    match which {
        0 => &files.main,
        i => &files.segments[i - 1],
    }
}

#[test]
fn truncated_index_is_refused() {
    let files = sample_index();
    for which in 0..=files.segments.len() {
        let len_full = file(&files, which).len();
        for len in (0..len_full).step_by(7).chain([len_full - 1]) {
            let cut = changed(&files, which, |b| b.truncate(len));
            assert!(
                open_and_verify(cut).is_err(),
                "file {which} truncated to {len} bytes was accepted"
            );
        }
    }
    let mut longer = files.clone();
    longer.main.push(0);
    assert!(matches!(
        open_and_verify(longer),
        Err(FormatError::Length { .. })
    ));
    let mut longer = files.clone();
    longer.segments[0].push(0);
    assert!(open_and_verify(longer).is_err());
}

#[test]
fn missing_segment_is_refused() {
    let mut files = sample_index();
    files.segments.pop();
    assert!(matches!(
        open_and_verify(files),
        Err(FormatError::MissingSegment { .. })
    ));
}

#[test]
fn every_bit_flip_is_refused_or_harmless() {
    let files = sample_index();
    let expected = answers(&open_and_verify(files.clone()).unwrap());
    for which in 0..=files.segments.len() {
        for at in 0..file(&files, which).len() {
            for bit in [0, 3, 7] {
                let flipped = changed(&files, which, |b| b[at] ^= 1 << bit);
                if let Ok(index) = open_and_verify(flipped) {
                    // A segment file has no byte outside its checks: its header is checked
                    // field by field at open (reserved bytes zero), its body by checksum.
                    assert_eq!(
                        which, 0,
                        "flip in segment file {which} at byte {at} bit {bit} went unnoticed"
                    );
                    // Only padding and reserved bytes of the main file outside every
                    // checksum may flip unnoticed.
                    assert_eq!(
                        answers(&index),
                        expected,
                        "flip in file {which} at byte {at} bit {bit} changed an answer"
                    );
                }
            }
        }
    }
}

/// `shikaku query` answers from an index it has not verified: corrupt text must still come
/// out as UTF-8 (regression guard for answers that copy text without validating it).
#[test]
fn unverified_corrupt_text_still_answers_utf8() {
    let files = sample_index();
    for at in 0..files.segments[0].len() {
        let broken = changed(&files, 1, |b| b[at] = 0xFF);
        if let Ok(index) = Index::open(broken, PersonKey::demo()) {
            // `answers` parses its output as UTF-8 and panics otherwise.
            answers(&index);
        }
    }
}

#[test]
fn wrong_version_names_the_fix() {
    let mut files = sample_index();
    files.main[8] = 9;
    let err = open_and_verify(files).err().unwrap();
    assert!(matches!(
        err,
        FormatError::UnsupportedVersion {
            found: 9,
            expected: 5
        }
    ));
    assert!(err.to_string().contains("rebuild"), "{err}");
    // A generation of version 4, before public-expense certificates, names the command.
    let mut files = sample_index();
    files.main[8] = 4;
    let err = open_and_verify(files).err().unwrap();
    assert!(err.to_string().contains("shikaku build --full"), "{err}");
    let mut files = sample_index();
    files.segments[0][8] = 2;
    assert!(matches!(
        open_and_verify(files).err().unwrap(),
        FormatError::UnsupportedVersion {
            found: 2,
            expected: 4
        }
    ));
}

#[test]
fn wrong_person_key_is_refused() {
    let err = Index::open(sample_index(), PersonKey::from_bytes([1; 32]))
        .err()
        .unwrap();
    assert!(
        matches!(err, FormatError::PersonKeyMismatch { .. }),
        "{err}"
    );
}

#[test]
fn no_individual_number_in_clear() {
    let files = sample_index();
    for bytes in std::iter::once(&files.main).chain(&files.segments) {
        for p in [12345678901u64, 22345678901] {
            let n = IndividualNumber::from_first11(p);
            let digits = n.expose_digits();
            assert!(
                !bytes.windows(12).any(|w| w == digits),
                "individual number in clear"
            );
            assert!(
                !bytes.windows(11).any(|w| w == &digits[..11]),
                "individual number prefix in clear"
            );
        }
    }
    assert!(files.main.len() > HEADER_BYTES);
}
