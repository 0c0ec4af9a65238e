//! The index reader over damaged files: arbitrary bytes, and the fixture's valid files with
//! structure-aware mutations whose checksums are recomputed (so the damage reaches the
//! structure checks instead of stopping at the first checksum).
//!
//! Property: opening and verifying either refuse the files with an error, or every record
//! can be read and every query is answered with well-formed JSON; nothing panics.
//!
//! Offsets below are FORMAT.md's, written out here rather than taken from shikaku's format
//! module, so the fix-up is an independent reading of the layout.

use super::fixture;
use shikaku::domain::{IndividualNumber, PersonKey};
use shikaku::index::{Index, IndexFiles};
use shikaku::query::answer::{answer_card, answer_person};
use shikaku::query::{CardFields, CardQuery, PersonFields, PersonQuery};

/// Separates the files in an `index_bytes` input: main file first, then segment files.
pub const FILE_SEPARATOR: &[u8] = b"\xFFSHKSEG\xFF";

const HEADER_BYTES: usize = 128;
const SECTION_ENTRY_BYTES: usize = 32;
const INSURER_ENTRY_BYTES: usize = 64;
const SEGMENT_HEADER_BYTES: usize = 32;
const INSURERS_KIND: u32 = 1;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    let Some(end) = at.checked_add(8) else {
        return;
    };
    if let Some(field) = b.get_mut(at..end) {
        field.copy_from_slice(&v.to_le_bytes());
    }
}

fn xxh3(b: &[u8]) -> u64 {
    shikaku::format::xxh3(b)
}

/// `offset..offset + len` when it lies within `b`.
fn within(b: &[u8], offset: u64, len: u64) -> Option<std::ops::Range<usize>> {
    let end = offset.checked_add(len)?;
    (end <= b.len() as u64).then_some(offset as usize..end as usize)
}

/// Where the section table is, as the (possibly damaged) header says.
fn section_table(main: &[u8]) -> Option<std::ops::Range<usize>> {
    let count = u64::from(u32_at(main, 88)?);
    within(main, u64_at(main, 96)?, count * SECTION_ENTRY_BYTES as u64)
}

/// Recomputes every checksum the files hold, from the inside out: each segment body's (in
/// its header and its insurer entry), each section's, the section table's, the header's;
/// and the main file's length in the header. Whatever a damaged field makes unreachable is
/// left as it is.
pub fn fix_checksums(files: &mut IndexFiles<Vec<u8>>) {
    let main = &mut files.main;
    let len = main.len() as u64;
    put_u64(main, 16, len);
    let insurers = section_table(main).and_then(|table| {
        main[table].chunks_exact(SECTION_ENTRY_BYTES).find_map(|e| {
            (u32_at(e, 0)? == INSURERS_KIND)
                .then(|| Some((u64_at(e, 8)?, u64_at(e, 16)?)))
                .flatten()
        })
    });
    for (i, seg) in files.segments.iter_mut().enumerate() {
        if seg.len() < SEGMENT_HEADER_BYTES {
            continue;
        }
        let body = xxh3(&seg[SEGMENT_HEADER_BYTES..]);
        put_u64(seg, 24, body);
        if let Some((offset, _)) = insurers {
            let entry = offset.saturating_add((i * INSURER_ENTRY_BYTES) as u64);
            put_u64(main, entry.saturating_add(48) as usize, body);
        }
    }
    if let Some(table) = section_table(main) {
        for e in table.step_by(SECTION_ENTRY_BYTES) {
            let (Some(offset), Some(len)) = (u64_at(main, e + 8), u64_at(main, e + 16)) else {
                continue;
            };
            if let Some(r) = within(main, offset, len) {
                let sum = xxh3(&main[r]);
                put_u64(main, e + 24, sum);
            }
        }
    }
    if let Some(table) = section_table(main) {
        let sum = xxh3(&main[table]);
        put_u64(main, 104, sum);
    }
    if main.len() >= HEADER_BYTES {
        let sum = xxh3(&main[..120]);
        put_u64(main, 120, sum);
    }
}

/// Opens `files`; if they open and verify, reads every record and answers the fixture's
/// queries (and some near them), checking each answer is JSON.
fn exercise(files: IndexFiles<Vec<u8>>) {
    let Ok(index) = Index::open(files, PersonKey::demo()) else {
        return;
    };
    if index.verify().is_err() {
        return;
    }
    let today = fixture::date(fixture::TODAY);
    for r in index.all_records() {
        let _ = (
            r.entry(),
            r.person(),
            r.line(),
            r.covers(today),
            r.insurer(),
        );
    }
    for p in index.person_table().collect::<Vec<_>>() {
        let _ = index.person_refs(&p).count();
    }
    let mut out = Vec::new();
    let cards = [
        ("33120015", "12", "3456", "1980-01-23"),
        ("33120015", "12", "3456", "2010-06-30"),
        ("06139992", "記号A", "102", "2010-06-30"),
        ("06139992", "", "7", "1950-02-28"),
        ("06139992", "9", "99999999999999999999", "1950-02-28"),
    ];
    for (insurer, symbol, number, birthdate) in cards {
        let q = CardQuery::parse(&CardFields {
            insurer_number: Some(insurer),
            symbol: Some(symbol),
            number: Some(number),
            branch: None,
            birthdate: Some(birthdate),
            date: None,
            limit_consent: true,
        })
        .expect("fixture query");
        out.clear();
        answer_card(&index, &q, today, &mut out);
        assert_json(&out);
    }
    for first11 in fixture::MEMBERS.iter().chain(&[45678901234]) {
        let n = IndividualNumber::from_first11(*first11);
        let digits = std::str::from_utf8(n.expose_digits()).expect("digits");
        let q = PersonQuery::parse(&PersonFields {
            individual_number: Some(digits),
            date: Some("2019-01-01"),
            limit_consent: true,
        })
        .expect("fixture query");
        out.clear();
        answer_person(&index, &q, today, &mut out);
        assert_json(&out);
    }
}

fn assert_json(out: &[u8]) {
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(out) {
        panic!(
            "an answer that is not JSON ({e}): {:?}",
            String::from_utf8_lossy(out)
        );
    }
}

/// The fst crate may panic on bytes it did not write; the reader catches those panics
/// (`index::steps`, `fst_get`) and reads the key as not found. libFuzzer's panic hook would
/// abort on them all the same, so a panic raised inside fst is passed over here: it still
/// unwinds to the reader's catch, and one the reader does not catch still ends the run as a
/// finding (libfuzzer-sys aborts on a panic out of the target).
fn pass_over_fst_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_fst = info.location().is_some_and(|l| l.file().contains("/fst-"));
            if !in_fst {
                previous(info)
            }
        }));
    });
}

/// Arbitrary bytes as a main file and segment files (split at [`FILE_SEPARATOR`]). Options
/// byte first: bit 0 set, the checksums are recomputed before opening.
pub fn bytes(data: &[u8]) {
    pass_over_fst_panics();
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut parts = split(data, FILE_SEPARATOR).into_iter().map(<[u8]>::to_vec);
    let main = parts.next().unwrap_or_default();
    let mut files = IndexFiles {
        main,
        segments: parts.collect(),
    };
    if flags & 1 != 0 {
        fix_checksums(&mut files);
    }
    exercise(files);
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
        parts.push(&rest[..at]);
        rest = &rest[at + sep.len()..];
    }
    parts.push(rest);
    parts
}

thread_local! {
    static FIXTURE: IndexFiles<Vec<u8>> = fixture::files().expect("fixture builds");
}

/// Where a mutation's offset counts from: the structures of the valid fixture's files.
fn anchors(files: &IndexFiles<Vec<u8>>, file: usize) -> Vec<usize> {
    if file == 0 {
        let main = &files.main;
        let mut a = vec![0];
        if let Some(table) = section_table(main) {
            a.push(table.start);
            for e in table.step_by(SECTION_ENTRY_BYTES) {
                a.extend(u64_at(main, e + 8).map(|o| o as usize));
            }
        }
        a
    } else {
        // Segment: header, records, then the FST, heap and directory from the insurer entry.
        let mut a = vec![0, SEGMENT_HEADER_BYTES];
        let main = &files.main;
        let entry = section_table(main).and_then(|table| {
            main[table]
                .chunks_exact(SECTION_ENTRY_BYTES)
                .find_map(|e| (u32_at(e, 0)? == INSURERS_KIND).then(|| u64_at(e, 8))?)
        });
        if let Some(offset) = entry {
            let e = (offset as usize).saturating_add((file - 1) * INSURER_ENTRY_BYTES);
            // The entry's own fields may be damaged: sizes as u64, so no sum overflows.
            let pad8 = |n: u64| n.div_ceil(8) * 8;
            if let (Some(fst), Some(records), Some(heap)) = (
                u32_at(main, e.saturating_add(32)),
                u32_at(main, e.saturating_add(36)),
                u32_at(main, e.saturating_add(40)),
            ) {
                let (fst, records, heap) = (u64::from(fst), u64::from(records), u64::from(heap));
                let fst_at = SEGMENT_HEADER_BYTES as u64 + pad8(records * 48);
                for at in [fst_at, fst_at + pad8(fst), fst_at + pad8(fst) + pad8(heap)] {
                    a.extend(usize::try_from(at).ok());
                }
            }
        }
        a
    }
}

/// One mutation, 13 bytes: file (main, then segments), anchor, offset from the anchor
/// (u16), operation (bits 0-1: width 1, 2, 4 or 8 bytes; bits 2-3: set, add, xor, or a
/// boundary value; bit 4: first append 32 zero bytes to the file, room for one more
/// section-table entry), value (u64).
const MUTATION_BYTES: usize = 13;

fn mutate_one(files: &mut IndexFiles<Vec<u8>>, anchors_of: &[Vec<usize>], m: &[u8]) {
    let file = usize::from(m[0]) % anchors_of.len();
    let anchors = &anchors_of[file];
    let at =
        anchors[usize::from(m[1]) % anchors.len()] + usize::from(u16::from_le_bytes([m[2], m[3]]));
    let width = 1usize << (m[4] & 3);
    let value = u64::from_le_bytes(m[5..13].try_into().expect("8 bytes"));
    let bytes = if file == 0 {
        &mut files.main
    } else {
        &mut files.segments[file - 1]
    };
    if m[4] & 0x10 != 0 {
        bytes.resize(bytes.len() + SECTION_ENTRY_BYTES, 0);
    }
    let len = bytes.len() as u64;
    let Some(field) = bytes.get_mut(at..at.saturating_add(width)) else {
        return;
    };
    let mut current = [0u8; 8];
    current[..width].copy_from_slice(field);
    let current = u64::from_le_bytes(current);
    let new = match (m[4] >> 2) & 3 {
        0 => value,
        1 => current.wrapping_add(value),
        2 => current ^ value,
        _ => [0, u64::MAX, len, len + 1, len / 2, u64::from(u32::MAX)][value as usize % 6],
    };
    field.copy_from_slice(&new.to_le_bytes()[..width]);
}

/// The fixture's files with the mutations `data` describes ([`MUTATION_BYTES`] each).
/// Options byte first: bit 0 set, the checksums are left as they are (so the checksum
/// checks themselves are exercised); otherwise they are recomputed.
pub fn mutate(data: &[u8]) {
    pass_over_fst_panics();
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut files = FIXTURE.with(|f| IndexFiles {
        main: f.main.clone(),
        segments: f.segments.clone(),
    });
    let anchors_of: Vec<Vec<usize>> = (0..=files.segments.len())
        .map(|i| anchors(&files, i))
        .collect();
    for m in data.chunks_exact(MUTATION_BYTES) {
        mutate_one(&mut files, &anchors_of, m);
    }
    if flags & 1 == 0 {
        fix_checksums(&mut files);
    }
    exercise(files);
}
