//! The checksums-only verification of a signed generation: each file's bytes hashed once, in
//! chunks that feed both the whole file's xxh3 (against the signed manifest) and the index's
//! own checksums over its parts (sections, segment body), while the chunk is in cache. The
//! structure is not checked again: the builder deep-checked these very bytes before it
//! signed them (`signing/trust.rs` decides when this is enough).

use super::open::malformed;
use super::phases::{timed, Phase};
use super::{Index, VerifiedSegments, Verify};
use crate::format::*;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ops::Range;
use xxhash_rust::xxh3::Xxh3;

/// Bytes hashed at a time: small enough to stay in the L2 cache for the second hasher.
const CHUNK_BYTES: usize = 256 << 10;

/// A file's size and the xxh3 of all its bytes, as a signed manifest gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHash {
    pub bytes: u64,
    pub xxh3: u64,
}

/// What a signed manifest says the generation's files are: the main file, and each segment
/// file by its name within `SEGMENTS_DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedFiles {
    pub main: FileHash,
    pub segments: HashMap<String, FileHash>,
}

impl<B: AsRef<[u8]> + Sync> Index<B> {
    /// Checks that every file is byte for byte what `expected` says (size and xxh3 of the
    /// whole file) and that every section and segment body checksum holds, one pass over
    /// each file; a segment file `known` holds is taken as verified. The files must be
    /// exactly the manifest's segments: one more or one fewer is refused.
    pub fn verify_checksums(
        &self,
        expected: &ExpectedFiles,
        known: &VerifiedSegments,
    ) -> Result<Verify, FormatError> {
        if expected.segments.len() != self.segments.len() {
            return Err(malformed(format!(
                "the signed manifest names {} segment files, the index {}",
                expected.segments.len(),
                self.segments.len()
            )));
        }
        // Every segment file named with its size, those known verified here too.
        let wanted = |i: usize| {
            let seg = &self.segments[i];
            expected
                .segments
                .get(&seg.file_name)
                .filter(|want| want.bytes == seg.bytes.as_ref().len() as u64)
                .ok_or_else(|| {
                    malformed(format!(
                        "segment file {SEGMENTS_DIR}/{} is not in the signed manifest at its size",
                        seg.file_name
                    ))
                })
        };
        (0..self.segments.len()).try_for_each(|i| wanted(i).map(drop))?;
        let fresh = self.segments_not_known(known);
        let main_known = self.main_known(known);
        let (main, segments) = rayon::join(
            // The layers (small) are checked whole; the base's main file unless this process
            // verified that very file before.
            || match main_known {
                true => self.verify_layers(),
                false => self
                    .check_main_hashes(expected.main)
                    .and(self.verify_layers()),
            },
            || {
                fresh.par_iter().try_for_each(|&i| {
                    let seg = &self.segments[i];
                    let want = wanted(i)?;
                    let what = format!("segment file {SEGMENTS_DIR}/{}", seg.file_name);
                    let body = (seg.body.clone(), self.insurers[i].entry.segment_xxh3);
                    timed(Phase::SignedChecksums, || {
                        check_file(seg.bytes.as_ref(), *want, &what, &[(what.clone(), body)])
                    })
                })
            },
        );
        main?;
        segments?;
        Ok(self.learn_verified(&fresh, main_known, known))
    }

    fn check_main_hashes(&self, want: FileHash) -> Result<(), FormatError> {
        let parts: Vec<(String, (Range<usize>, u64))> = self
            .checksummed_ranges()
            .into_iter()
            .map(|(what, r, x)| (what, (r, x)))
            .collect();
        timed(Phase::SignedChecksums, || {
            check_file(self.main.as_ref(), want, "main file", &parts)
        })
    }
}

/// Hashes `bytes` once: the whole against `want`, each part `(what, (range, xxh3))` against
/// its own checksum.
fn check_file(
    bytes: &[u8],
    want: FileHash,
    what: &str,
    parts: &[(String, (Range<usize>, u64))],
) -> Result<(), FormatError> {
    if bytes.len() as u64 != want.bytes {
        return Err(FormatError::Checksum {
            what: format!(
                "{what} ({} bytes, the signed manifest says {})",
                bytes.len(),
                want.bytes
            ),
        });
    }
    let mut whole = Xxh3::new();
    let mut hashers: Vec<Xxh3> = parts.iter().map(|_| Xxh3::new()).collect();
    for start in (0..bytes.len()).step_by(CHUNK_BYTES) {
        let chunk = start..(start + CHUNK_BYTES).min(bytes.len());
        whole.update(&bytes[chunk.clone()]);
        for (h, (_, (r, _))) in hashers.iter_mut().zip(parts) {
            let (s, e) = (r.start.max(chunk.start), r.end.min(chunk.end));
            if s < e {
                h.update(&bytes[s..e]);
            }
        }
    }
    if whole.digest() != want.xxh3 {
        return Err(FormatError::Checksum {
            what: format!("{what} (its xxh3 is not the signed manifest's)"),
        });
    }
    for (h, (part, (_, expected))) in hashers.iter().zip(parts) {
        if h.digest() != *expected {
            return Err(FormatError::Checksum { what: part.clone() });
        }
    }
    Ok(())
}
