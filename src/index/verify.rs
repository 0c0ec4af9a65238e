//! Verifying a generation: every checksum recomputed, and the structure that only a pass over
//! a whole section or segment can check (record codes and string bounds, card directory and
//! FST values, person buckets and references). `open` has checked every bound; this checks
//! what the bytes say, so a crafted file with right checksums is refused, not answered from.
//! The main file and each segment verify on their own, so `shikaku query` can check only what
//! a query reads.

use super::open::{malformed, within};
use super::phases::{timed, Phase};
use super::{Index, Segment};
use crate::format::*;
use rayon::prelude::*;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Mutex;

/// A file's identity on its filesystem: device and inode. A segment file is shared between
/// generations by hard link and never written after it was created (ARCHITECTURE.md), so the
/// same identity is the same bytes; a file downloaded or built anew is another inode, even
/// under the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Most segment files a [`VerifiedSegments`] remembers: a year of nightly builds changes a
/// few tens of thousands; past it, it forgets them all and verifies afresh.
const VERIFIED_SEGMENTS_MAX: usize = 1 << 20;

/// The segment files (and main files) a process has verified whole (checksum and
/// structure), so that a generation sharing them by hard link verifies only what is new: a
/// nightly swap with 1% of the insurers changed checks 1% of the segments and its main file;
/// a change generation, which shares its parent's main file, checks its layers and delta
/// segments only.
#[derive(Debug, Default)]
pub struct VerifiedSegments {
    files: Mutex<HashSet<FileId>>,
}

impl VerifiedSegments {
    fn knows(&self, file: FileId) -> bool {
        self.files.lock().is_ok_and(|f| f.contains(&file))
    }

    fn add(&self, new: impl IntoIterator<Item = FileId>) {
        if let Ok(mut files) = self.files.lock() {
            if files.len() > VERIFIED_SEGMENTS_MAX {
                files.clear();
            }
            files.extend(new);
        }
    }
}

/// What a verification did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verify {
    /// The main file was known verified (the same file, verified before by this process):
    /// only the layers stacked on it were checked.
    pub main_known: bool,
    /// Segment files checked here.
    pub segments_verified: usize,
    /// Segment files known verified (the same file, verified before by this process).
    pub segments_known: usize,
    /// Bytes checked: the main file and the segments verified.
    pub bytes_verified: u64,
}

impl<B: AsRef<[u8]>> Index<B> {
    /// Every checksummed byte range of the main file with its expected xxh3 (each section),
    /// so a caller can verify by streaming the file instead of faulting in the mapping. The
    /// ranges are the ones `open` checked to lie inside the file.
    pub fn checksummed_ranges(&self) -> Vec<(String, Range<usize>, u64)> {
        self.sections
            .iter()
            .map(|s| {
                (
                    format!("{} section", s.kind.name()),
                    s.range.clone(),
                    s.xxh3,
                )
            })
            .collect()
    }

    /// Insurer `i`'s segment file: its name within `SEGMENTS_DIR`, the range of its body and
    /// the body's expected xxh3.
    pub fn segment_check(&self, i: usize) -> (&str, Range<usize>, u64) {
        let seg = &self.segments[i];
        (
            &seg.file_name,
            seg.body.clone(),
            self.insurers[i].entry.segment_xxh3,
        )
    }

    /// Recomputes every section and segment checksum and checks the structure of each. Run
    /// before serving a new generation.
    pub fn verify(&self) -> Result<(), FormatError> {
        self.verify_main()?;
        (0..self.segments.len()).try_for_each(|i| self.verify_segment(i))
    }

    /// [`Index::verify`], but a segment file `known` holds (the same file, by device and
    /// inode) is taken as verified; the rest are verified on the rayon pool beside the main
    /// file, and `known` learns them once all passed. An index held in memory has no file
    /// identities: every segment is verified.
    pub fn verify_new(&self, known: &VerifiedSegments) -> Result<Verify, FormatError>
    where
        B: Sync,
    {
        let fresh = self.segments_not_known(known);
        let main_known = self.main_known(known);
        let (main, segments) = rayon::join(
            || match main_known {
                // The base's main file was verified here before: only the layers are new.
                true => self.verify_layers(),
                false => self.verify_main(),
            },
            || fresh.par_iter().try_for_each(|&i| self.verify_segment(i)),
        );
        main?;
        segments?;
        Ok(self.learn_verified(&fresh, main_known, known))
    }

    /// The deep structural checks of [`Index::verify`] without its checksums, every file on
    /// the rayon pool: for a builder that has just checked every checksum by reading the
    /// files it wrote, before it signs them.
    pub fn verify_structure(&self) -> Result<(), FormatError>
    where
        B: Sync,
    {
        let (main, segments) = rayon::join(
            || self.check_main_structure(),
            || {
                (0..self.segments.len())
                    .into_par_iter()
                    .try_for_each(|i| self.check_segment_structure(i))
            },
        );
        main.and(segments)
    }

    /// [`Index::verify_structure`] of the main file and the segments at `positions` only:
    /// for a builder whose other segments are hard links to files a build checked before.
    pub fn verify_structure_of(&self, positions: &[usize]) -> Result<(), FormatError>
    where
        B: Sync,
    {
        let (main, segments) = rayon::join(
            || self.check_main_structure(),
            || {
                positions
                    .par_iter()
                    .try_for_each(|&i| self.check_segment_structure(i))
            },
        );
        main.and(segments)
    }

    /// Positions of the segments whose files `known` does not hold.
    pub(super) fn segments_not_known(&self, known: &VerifiedSegments) -> Vec<usize> {
        (0..self.segments.len())
            .filter(|&i| self.segment_files.get(i).is_none_or(|&f| !known.knows(f)))
            .collect()
    }

    /// Whether `known` holds the main file (the same file, by device and inode).
    pub(super) fn main_known(&self, known: &VerifiedSegments) -> bool {
        self.main_file.is_some_and(|f| known.knows(f))
    }

    /// Once the main file (unless `main_known`) and segments `fresh` passed: `known` learns
    /// their files, and what was checked is counted.
    pub(super) fn learn_verified(
        &self,
        fresh: &[usize],
        main_known: bool,
        known: &VerifiedSegments,
    ) -> Verify {
        for seg in &self.segments {
            // Found UTF-8 by a check of this file, now or when this process verified it
            // before, or by the builder's deep check of the bytes it signed.
            seg.heap_utf8.get_or_init(|| true);
        }
        known.add(
            fresh
                .iter()
                .filter_map(|&i| self.segment_files.get(i).copied())
                .chain(self.main_file),
        );
        let main_bytes = match main_known {
            true => 0,
            false => self.main.as_ref().len() as u64,
        };
        let bytes_verified = main_bytes
            + fresh
                .iter()
                .map(|&i| self.segments[i].bytes.as_ref().len() as u64)
                .sum::<u64>();
        Verify {
            main_known,
            segments_verified: fresh.len(),
            segments_known: self.segments.len() - fresh.len(),
            bytes_verified,
        }
    }

    /// The main file: every section's checksum, the person buckets in order, every person's
    /// references and every reference's record in bounds; then the layers stacked on it.
    pub fn verify_main(&self) -> Result<(), FormatError> {
        self.verify_main_checksums()?;
        self.check_main_structure()
    }

    /// Every section's checksum, the person buckets in order and the persons in hash order,
    /// each person's refs inside the refs section: what a main file and a layer file share.
    pub(super) fn verify_person_table(&self) -> Result<(), FormatError> {
        self.verify_main_checksums()?;
        timed(Phase::PersonOrder, || self.check_person_order())
    }

    fn verify_main_checksums(&self) -> Result<(), FormatError> {
        let b = self.main.as_ref();
        timed(Phase::MainChecksums, || {
            for (what, r, expected) in self.checksummed_ranges() {
                if xxh3(&b[r]) != expected {
                    return Err(FormatError::Checksum { what });
                }
            }
            Ok(())
        })
    }

    fn check_main_structure(&self) -> Result<(), FormatError> {
        timed(Phase::PersonOrder, || self.check_person_order())?;
        timed(Phase::PersonRefs, || self.check_person_refs())?;
        timed(Phase::Kohi, || self.verify_kohi())?;
        // The layers are small: their checksums and structure together.
        self.verify_layers()
    }

    /// The person buckets in order, the persons in hash order, every person's refs in bounds.
    fn check_person_order(&self) -> Result<(), FormatError> {
        let b = self.main.as_ref();
        let starts: Vec<u32> = b[self.person_buckets.clone()]
            .chunks_exact(4)
            .map(|c| u32_at(c, 0))
            .collect();
        if starts.first() != Some(&0)
            || starts.last().map(|&s| u64::from(s)) != Some(self.header.person_count)
            || !starts.windows(2).all(|w| w[0] <= w[1])
        {
            return Err(malformed("the person bucket directory is not in order"));
        }
        let refs = (self.person_refs.len() / PERSON_REF_BYTES) as u64;
        let mut previous: Option<PersonEntry> = None;
        for (i, p) in self.person_table().enumerate() {
            if u64::from(p.refs_start) + u64::from(p.refs_count) > refs {
                return Err(malformed(format!(
                    "person {i}: refs {}+{} point past the {refs} person refs",
                    p.refs_start, p.refs_count
                )));
            }
            if previous.is_some_and(|q| q.hash.0 >= p.hash.0) {
                return Err(malformed(format!(
                    "person {i}: the persons are not in hash order"
                )));
            }
            previous = Some(p);
        }
        Ok(())
    }

    /// Every person ref names a record of its insurer.
    fn check_person_refs(&self) -> Result<(), FormatError> {
        let b = self.main.as_ref();
        for (i, r) in b[self.person_refs.clone()]
            .chunks_exact(8)
            .map(|c| u64_at(c, 0))
            .enumerate()
        {
            let (ins, rec) = decode_person_ref(r);
            let ok = self.insurers[..self.base_insurers()]
                .get(ins as usize)
                .is_some_and(|i| rec < i.entry.record_count);
            if !ok {
                return Err(malformed(format!(
                    "person ref {i} points at no record (insurer {ins}, record {rec})"
                )));
            }
        }
        Ok(())
    }

    /// Segment file `i`: its body's checksum, then every record (codes, strings inside the
    /// heap on character boundaries), every directory slot and every FST value pointing at
    /// records of the segment.
    pub fn verify_segment(&self, i: usize) -> Result<(), FormatError> {
        let (name, body, expected) = self.segment_check(i);
        let sum = timed(Phase::SegmentChecksums, || {
            xxh3(&self.segments[i].bytes.as_ref()[body])
        });
        if sum != expected {
            return Err(FormatError::Checksum {
                what: format!("segment file {SEGMENTS_DIR}/{name}"),
            });
        }
        self.check_segment_structure(i)
    }

    fn check_segment_structure(&self, i: usize) -> Result<(), FormatError> {
        let seg = &self.segments[i];
        check_segment(seg, &self.insurers[i].entry)
            .map_err(|e| within(&format!("{SEGMENTS_DIR}/{}", seg.file_name), e))?;
        // Known now, before serving, rather than on a segment's first answer.
        seg.heap_utf8.get_or_init(|| true);
        Ok(())
    }
}

fn check_segment<B: AsRef<[u8]>>(seg: &Segment<B>, e: &InsurerEntry) -> Result<(), FormatError> {
    timed(Phase::SegmentRecords, || check_records(seg))?;
    let records = u64::from(e.record_count);
    let in_records = |start: u64, count: u64| count > 0 && start + count <= records;
    timed(Phase::SegmentDirectory, || check_directory(seg, records))?;
    timed(Phase::SegmentFst, || {
        check_fst(&seg.fst()?, e.key_count, |v| {
            let (start, count) = decode_card_value(v);
            in_records(u64::from(start), u64::from(count))
        })
    })
}

/// Every record's codes, and its strings inside the heap on character boundaries.
fn check_records<B: AsRef<[u8]>>(seg: &Segment<B>) -> Result<(), FormatError> {
    let b = seg.bytes.as_ref();
    let heap = heap_str(&b[seg.heap.clone()])?;
    for (r, rec) in b[seg.records.clone()]
        .chunks_exact(RECORD_BYTES)
        .enumerate()
    {
        let at = |m: String| malformed(format!("record {r}: {m}"));
        let entry = RecordEntry::decode(rec).map_err(|err| within(&format!("record {r}"), err))?;
        let mut end = entry.heap_offset as usize;
        for len in [
            usize::from(entry.symbol_bytes),
            usize::from(entry.number_bytes),
            usize::from(entry.name_bytes),
            usize::from(entry.kana_bytes),
        ] {
            if !heap.is_char_boundary(end) {
                return Err(at(format!(
                    "heap offset {end} is not in the string heap or not on a character"
                )));
            }
            end += len;
        }
        if !heap.is_char_boundary(end) {
            return Err(at(format!(
                "strings end at {end}, past the string heap or inside a character"
            )));
        }
    }
    Ok(())
}

/// The string heap as text. The SIMD validator accepts exactly what `std::str::from_utf8`
/// does (the UTF-8 of RFC 3629) at several times its speed, a fifth of the deep check's time
/// before; the standard one is asked again only to say where a bad heap goes wrong.
fn heap_str(heap: &[u8]) -> Result<&str, FormatError> {
    simdutf8::basic::from_utf8(heap).map_err(|_| {
        let at = std::str::from_utf8(heap).map_or_else(|e| e.valid_up_to(), |s| s.len());
        malformed(format!("string heap is not UTF-8 at byte {at}"))
    })
}

/// Every used card directory slot: a key of a card key's length, records of the segment.
fn check_directory<B: AsRef<[u8]>>(seg: &Segment<B>, records: u64) -> Result<(), FormatError> {
    let in_records = |start: u64, count: u64| count > 0 && start + count <= records;
    let dir = &seg.bytes.as_ref()[seg.directory.clone()];
    for (s, slot) in dir.chunks_exact(DIRECTORY_SLOT_BYTES).enumerate() {
        let len = usize::from(slot[0]);
        if len == 0 {
            continue;
        }
        let (start, count) = directory_slot_value(slot);
        if len > DIRECTORY_KEY_MAX || !in_records(u64::from(start), u64::from(count)) {
            return Err(malformed(format!(
                "card directory slot {s}: key of {len} bytes, records {start}+{count} of {records}"
            )));
        }
    }
    Ok(())
}

/// Walks every path of the FST, node by node, with the limits a valid one keeps (no key
/// longer than [`MAX_CARD_KEY_BYTES`], `keys` keys): a corrupt FST cannot loop or run out of
/// memory, and the `fst` crate, which may panic on bytes it did not write (its docs say so),
/// does it here, caught, rather than in a lookup. Every node and transition a lookup can
/// reach is decoded on the way, and every value (`ok`) checked.
fn check_fst<D: AsRef<[u8]>>(
    map: &fst::Map<D>,
    keys: u32,
    ok: impl Fn(u64) -> bool,
) -> Result<(), FormatError> {
    walk_fst(map, keys, |_, v| ok(v))
}

/// [`check_fst`]'s walk, giving `visit` each key with its value (in no particular order);
/// a value `visit` refuses is an error.
pub(super) fn walk_fst<D: AsRef<[u8]>>(
    map: &fst::Map<D>,
    keys: u32,
    mut visit: impl FnMut(&[u8], u64) -> bool,
) -> Result<(), FormatError> {
    let mut walk = || -> Result<(), String> {
        let fst = map.as_fst();
        let visits_max = (u64::from(keys) + 1) * (MAX_CARD_KEY_BYTES as u64 + 1);
        let (mut visits, mut finals) = (0u64, 0u64);
        let mut path: Vec<u8> = Vec::with_capacity(MAX_CARD_KEY_BYTES);
        let mut stack = vec![(fst.root().addr(), 0usize, 0u64, 0u8)];
        // Nodes whose inputs were checked: a node shared by many paths (the FST is minimal,
        // so suffixes are shared) is reached once per path, and what `find_input` finds in it
        // depends on its bytes only, so once per node finds every fault that once per path
        // did, in the same order. A bit per byte of the FST.
        let mut checked = vec![0u64; fst.as_bytes().len() / 64 + 1];
        while let Some((addr, depth, out, inp)) = stack.pop() {
            visits += 1;
            if visits > visits_max {
                return Err("more nodes than the card keys can have".into());
            }
            path.truncate(depth.saturating_sub(1));
            if depth > 0 {
                path.push(inp);
            }
            let node = fst.node(addr);
            let first = match checked.get_mut(addr / 64) {
                Some(word) => {
                    let bit = 1u64 << (addr % 64);
                    let new = *word & bit == 0;
                    *word |= bit;
                    new
                }
                None => true,
            };
            if first {
                // The lookup of an absent byte reads a node's input index at its ends.
                let _ = (node.find_input(0), node.find_input(u8::MAX));
            }
            if node.is_final() {
                finals += 1;
                let value = out
                    .checked_add(node.final_output().value())
                    .ok_or("a value overflows")?;
                if finals > u64::from(keys) || !visit(&path, value) {
                    return Err(format!("key {finals}: value {value:#x} names no records"));
                }
            }
            for (t, trans) in node.transitions().enumerate() {
                if depth >= MAX_CARD_KEY_BYTES || (first && node.find_input(trans.inp) != Some(t)) {
                    return Err("a key longer than a card key, or a transition not found".into());
                }
                let out = out
                    .checked_add(trans.out.value())
                    .ok_or("a value overflows")?;
                stack.push((trans.addr, depth + 1, out, trans.inp));
            }
        }
        if finals != u64::from(keys) {
            return Err(format!("{finals} keys, the insurer table says {keys}"));
        }
        Ok(())
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut walk)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(m)) => Err(malformed(format!("card keys (FST): {m}"))),
        Err(_) => Err(malformed("card keys (FST): the fst crate cannot read them")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The SIMD validator against the standard library's, on bytes and on text with a
        /// byte changed (the inputs near valid UTF-8 that tell two validators apart).
        #[test]
        fn heap_validation_is_the_standard_one(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            text in "\\PC{0,60}",
            at in any::<usize>(),
            byte in any::<u8>(),
        ) {
            let mut changed = text.into_bytes();
            if !changed.is_empty() {
                let i = at % changed.len();
                changed[i] = byte;
            }
            for b in [&bytes, &changed] {
                let std = std::str::from_utf8(b);
                let got = heap_str(b);
                prop_assert_eq!(got.is_ok(), std.is_ok());
                if let Err(e) = std {
                    let at = format!("at byte {}", e.valid_up_to());
                    prop_assert!(got.unwrap_err().to_string().contains(&at));
                }
            }
        }
    }
}
