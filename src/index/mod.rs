//! The index reader: generic over its bytes (`AsRef<[u8]>`), so tests read a `Vec` and
//! production an mmap. A pure reader: it knows where records are and what they hold, not what
//! they mean for a query (that is `query::lookup`). `open` checks the structure and `verify`
//! every checksum (`open.rs`); the staged lookup (`staged.rs`) alone knows the order of the
//! lookup steps that find a card's or a person's records or a payer's certificates
//! (`steps.rs`, `kohi.rs`, the layers' `layers.rs` and `layer_tables.rs`), with cache
//! prefetches between them (`prefetch.rs`); `RecordView` reads a
//! record in place (`record.rs`); `InsurerSlots` finds an insurer (`slots.rs`).

mod checksums;
mod kohi;
mod layer_tables;
mod layers;
mod mmap;
mod open;
mod phases;
mod prefetch;
mod record;
mod slots;
mod staged;
mod steps;
mod verify;

pub use checksums::{ExpectedFiles, FileHash};
pub use kohi::{CertificateView, PayerInfo};
pub use layers::CardPlace;
pub use mmap::{map_file, set_residence, MappedIndex, OpenError, Residence};
pub use phases::{phase_times, Phase};
pub use record::RecordView;
pub use staged::{run_group, Found, Staged, Step, Target};
pub use steps::CardRecords;
pub use verify::{FileId, VerifiedSegments, Verify};

use crate::domain::{Date, PersonKey};
use crate::format::*;
use slots::InsurerSlots;
use std::ops::Range;

/// A section of the main file as `open` checked it: known kind, bounds inside the file.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    kind: SectionKind,
    range: Range<usize>,
    xxh3: u64,
}

/// One insurer's segment file, its parts as byte ranges computed once at open.
///
/// Laid out for the card lookup, which reads a segment of a random insurer per query: the
/// bytes' handle and the directory's range share the first cache line (the directory probe
/// reads nothing else here), the records' and heap's ranges follow. The bytes are held here,
/// not behind an `Arc` shared with an `fst::Map`: that was one more cache miss per query
/// (the `Arc`'s allocation), and a map over the FST range costs nothing to make when a long
/// key needs it ([`Segment::fst`]).
#[repr(C, align(64))]
#[derive(Clone)]
pub(crate) struct Segment<B> {
    bytes: B,
    directory: Range<usize>,
    records: Range<usize>,
    heap: Range<usize>,
    /// Whether the whole string heap is UTF-8, set by the verification that checked it: then
    /// each text cut from it on character boundaries is UTF-8 too, and answers copy it
    /// without validating every name again (that was a tenth of the server's time per
    /// answer). Unset, each text is validated when read.
    heap_utf8: std::sync::OnceLock<bool>,
    body: Range<usize>,
    fst: Range<usize>,
    file_name: String,
}

impl<B: AsRef<[u8]>> Segment<B> {
    /// The card keys too long for the directory, as an FST over the segment's bytes: `open`
    /// and `verify` check that it reads, a lookup makes it when a long key needs it.
    fn fst(&self) -> Result<fst::Map<&[u8]>, FormatError> {
        fst::Map::new(&self.bytes.as_ref()[self.fst.clone()])
            .map_err(|err| FormatError::Malformed(format!("card keys: {err}")))
    }
}

/// An insurer as the reader keeps it.
#[derive(Debug, Clone)]
pub struct InsurerInfo {
    pub entry: InsurerEntry,
    pub name: String,
    number_str: String,
}

impl InsurerInfo {
    pub fn number_str(&self) -> &str {
        &self.number_str
    }
}

/// The bytes of a generation: its main file and its segment files in insurer-table order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFiles<B> {
    pub main: B,
    pub segments: Vec<B>,
}

impl<B: AsRef<[u8]>> IndexFiles<B> {
    /// Bytes of all files together.
    pub fn total_bytes(&self) -> usize {
        self.main.as_ref().len()
            + self
                .segments
                .iter()
                .map(|s| s.as_ref().len())
                .sum::<usize>()
    }
}

/// An opened index over `B`. A clone shares `B`'s bytes (a `Bytes` is a handle) and copies
/// the tables built at open: what a child generation's open starts from (`open_file_after`).
#[derive(Clone)]
pub struct Index<B> {
    main: B,
    header: Header,
    /// In the order of `SectionKind::ALL`.
    sections: Vec<Section>,
    insurer_slots: InsurerSlots,
    insurers: Vec<InsurerInfo>,
    segments: Vec<Segment<B>>,
    persons: Range<usize>,
    person_refs: Range<usize>,
    person_buckets: Range<usize>,
    kohi: kohi::KohiSections,
    key: PersonKey,
    /// Each segment's file (device and inode), when opened from files: what a process that
    /// verified it knows it by ([`VerifiedSegments`]). Empty for an index held in memory.
    segment_files: Vec<FileId>,
    /// The main file's (device and inode), when opened from a file: a change generation
    /// shares its parent's by hard link, and a process that verified it does not again.
    main_file: Option<FileId>,
    /// The main file's path, when opened from files: its directory holds the segment files
    /// and a signed manifest (`crate::signing`).
    path: Option<std::path::PathBuf>,
    /// The change layers stacked on this base, when there are any (`layers.rs`). `insurers`
    /// and `segments` then go on past the base's with the layers' delta segments, in the
    /// global segment numbering person refs use.
    layers: Option<Box<layers::Layers<B>>>,
    /// How many of the layers this open read and folded: all of them, or only those past
    /// the parent it started from (`open_file_after`).
    layers_read: usize,
}

/// Which file of a generation an [`Index`] was opened from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Main,
    Layer,
}

impl FileKind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            FileKind::Main => &MAGIC,
            FileKind::Layer => &LAYER_MAGIC,
        }
    }

    fn sections(self) -> &'static [SectionKind] {
        match self {
            FileKind::Main => SectionKind::ALL,
            FileKind::Layer => &SectionKind::LAYER,
        }
    }
}

impl<B: AsRef<[u8]>> Index<B> {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The directory the index was opened from; `None` for an index held in memory.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.path.as_deref().and_then(std::path::Path::parent)
    }

    /// The generation's id: its top layer's when it has layers (a change generation is
    /// served under its own id), else its main file's.
    pub fn generation(&self) -> &str {
        match &self.layers {
            Some(l) => l.top_generation(),
            None => &self.header.generation_id,
        }
    }

    /// The base's insurers, in table order (a layer's delta segments are not among them).
    pub fn insurers(&self) -> &[InsurerInfo] {
        &self.insurers[..self.base_insurers()]
    }

    /// How many insurers (and segments) the base has: global segment numbers below it are
    /// the base's, the rest the layers' delta segments.
    pub(crate) fn base_insurers(&self) -> usize {
        self.header.insurer_count as usize
    }

    /// Bytes of the whole generation: the main file, every segment file and layer file.
    pub fn total_bytes(&self) -> u64 {
        self.header.file_bytes
            + self.layers.as_ref().map_or(0, |l| l.file_bytes())
            + self
                .insurers
                .iter()
                .map(|i| i.entry.segment_end())
                .sum::<u64>()
    }

    /// The date "covered today" was counted for.
    pub fn built_on(&self) -> Date {
        self.header.built_on
    }

    /// Record `rec` of insurer `i` (by table position), if there is one.
    pub fn record_view(&self, i: usize, rec: usize) -> Option<RecordView<'_>> {
        self.view(i, rec)
    }

    /// Records of insurer `i`, `start..start+count`, as views.
    fn view(&self, i: usize, rec: usize) -> Option<RecordView<'_>> {
        let seg = &self.segments[i];
        let b = seg.bytes.as_ref();
        let at = seg.records.start + rec * RECORD_BYTES;
        if at + RECORD_BYTES > seg.records.end {
            return None;
        }
        let heap = &b[seg.heap.clone()];
        Some(RecordView {
            insurer: &self.insurers[i],
            rec: &b[at..at + RECORD_BYTES],
            heap,
            // Known only once a verification checked the whole heap (a server verifies every
            // segment before serving). Not checked here on first use: a builder reading a
            // few records of each of thousands of segments (a change generation's persons)
            // would validate gigabytes of heaps for them; unknown, each text is validated
            // on its own.
            heap_utf8: seg.heap_utf8.get().copied().unwrap_or(false),
        })
    }
}
