//! Change layers stacked on a base (FORMAT.md, "Layer files"). Each layer file is opened as a
//! small index of its own (`open_as`), checked against its base and the layers below it
//! (its link: base id and header checksum, parent, sequence, segment count), and folded into
//! in-memory tables (`layer_tables.rs`), newest layer winning: (insurer, card key) → where
//! the card's records are now (a delta segment, or nowhere: a tombstone), and person hash →
//! the person's entry, its refs copied here. Every ref and card value is checked against the segments at open, so a
//! lookup through a layer reads nothing out of bounds, verified or not.

use super::layer_tables::{card_hash, LayerCards, LayerPersons};
use super::open::{malformed, within};
use super::verify::walk_fst;
use super::{FileKind, Index};
use crate::domain::InsurerNumber;
use crate::format::*;

/// Where the layered view finds a card's records: a segment (by global number) and a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CardLoc {
    pub segment: u32,
    pub start: u32,
    pub count: u16,
}

/// Where a card's records are: (global segment, first record, end).
pub type CardPlace = (usize, usize, usize);

/// One layer file, opened (its segments moved into the base's numbering) with its link.
#[derive(Clone)]
struct LayerFile<B> {
    index: Index<B>,
    link: LayerLink,
    /// The file's name and identity, when opened from one (`open_file_after` compares them).
    file: Option<(String, super::FileId)>,
}

/// Every layer of a generation, folded for lookups.
#[derive(Clone)]
pub(crate) struct Layers<B> {
    files: Vec<LayerFile<B>>,
    /// (base insurer position, card key) → where the card's records are now, or removed.
    cards: LayerCards,
    persons: LayerPersons,
    /// The layered persons' refs, as u64 LE bytes; a layered entry's `refs_start` counts from
    /// `base_refs`, past the base's refs, so one entry type serves both.
    refs: Vec<u8>,
    base_refs: usize,
}

impl<B> Layers<B> {
    pub(crate) fn top_generation(&self) -> &str {
        self.files
            .last()
            .map_or("", |f| f.index.header.generation_id.as_str())
    }

    /// Each layer file's name and identity, in sequence order (`None` for one not opened
    /// from a file).
    pub(crate) fn file_ids(&self) -> impl Iterator<Item = Option<&(String, super::FileId)>> {
        self.files.iter().map(|f| f.file.as_ref())
    }

    /// Records the top layer's file.
    pub(crate) fn set_top_file(&mut self, name: String, id: super::FileId) {
        if let Some(top) = self.files.last_mut() {
            top.file = Some((name, id));
        }
    }

    pub(crate) fn file_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.index.header.file_bytes).sum()
    }
}

impl<B: Clone> Index<B> {
    /// This generation's base alone, its layers left out: a copy of the base's tables (the
    /// files' bytes shared), what a generation on the same base that is not this one's child
    /// opens from (`open_file_after`).
    pub fn base_only(&self) -> Index<B> {
        let base = self.header.insurer_count as usize;
        Index {
            main: self.main.clone(),
            header: self.header.clone(),
            sections: self.sections.clone(),
            insurer_slots: self.insurer_slots.clone(),
            insurers: self.insurers[..base].to_vec(),
            segments: self.segments[..base].to_vec(),
            persons: self.persons.clone(),
            person_refs: self.person_refs.clone(),
            person_buckets: self.person_buckets.clone(),
            kohi: self.kohi.clone(),
            key: self.key.clone(),
            segment_files: self.segment_files[..base.min(self.segment_files.len())].to_vec(),
            main_file: self.main_file,
            path: self.path.clone(),
            layers: None,
            layers_read: 0,
        }
    }
}

impl<B: AsRef<[u8]>> Index<B> {
    /// Stacks one layer file on this generation (its base and the layers below): `load`
    /// gives each of its delta segment files. A layer that is not the next one of this very
    /// base, or whose bytes break any rule, is a `FormatError` naming the layer.
    pub fn add_layer(
        &mut self,
        bytes: B,
        load: impl FnMut(&InsurerEntry) -> Result<B, FormatError>,
    ) -> Result<(), FormatError> {
        let mut layer = Index::open_as(bytes, self.key.clone(), load, FileKind::Layer)?;
        let place = format!("layer {}", layer.header.generation_id);
        let link = self.check_layer(&layer).map_err(|e| within(&place, e))?;
        let positions = layer
            .insurers
            .iter()
            .map(|i| self.base_position(&i.entry.number))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| within(&place, e))?;
        let tombstones = decode_tombstones(layer.section_bytes(SectionKind::Tombstones))
            .map_err(|e| within(&place, e))?;
        let tombstoned = tombstones
            .iter()
            .map(|(n, key)| Ok((self.base_position(n)?, key.clone())))
            .collect::<Result<Vec<_>, FormatError>>()
            .map_err(|e| within(&place, e))?;
        let mut cards = Vec::new();
        for (d, seg) in layer.segments.iter().enumerate() {
            let e = &layer.insurers[d].entry;
            let global = (self.segments.len() + d) as u32;
            let fst = seg.fst().map_err(|e| within(&place, e))?;
            walk_fst(&fst, e.key_count, |key, v| {
                let (start, count) = decode_card_value(v);
                let ok =
                    count > 0 && u64::from(start) + u64::from(count) <= u64::from(e.record_count);
                let loc = CardLoc {
                    segment: global,
                    start,
                    count,
                };
                cards.push((positions[d], key.into(), Some(loc)));
                ok
            })
            .map_err(|e| within(&place, within(&format!("delta segment {d}"), e)))?;
        }
        let record_counts: Vec<u32> = self
            .insurers
            .iter()
            .chain(&layer.insurers)
            .map(|i| i.entry.record_count)
            .collect();
        let base_refs = self.person_refs.len() / PERSON_REF_BYTES;
        let base_insurers = self.base_insurers();
        let layers = self.layers.get_or_insert_with(|| {
            Box::new(Layers {
                files: Vec::new(),
                cards: LayerCards::new(base_insurers),
                persons: LayerPersons::default(),
                refs: Vec::new(),
                base_refs,
            })
        });
        let mut persons = Vec::new();
        for (i, p) in layer.person_table().enumerate() {
            let refs = layer.person_refs_bytes(&p).ok_or_else(|| {
                within(
                    &place,
                    malformed(format!("person {i}: refs past the refs section")),
                )
            })?;
            for r in refs.chunks_exact(PERSON_REF_BYTES) {
                let (seg, rec) = decode_person_ref(u64_at(r, 0));
                if record_counts.get(seg as usize).is_none_or(|&n| rec >= n) {
                    return Err(within(
                        &place,
                        malformed(format!(
                            "person {i}: a ref names no record (segment {seg}, record {rec})"
                        )),
                    ));
                }
            }
            let start = layers.base_refs + layers.refs.len() / PERSON_REF_BYTES;
            let refs_start = u32::try_from(start)
                .map_err(|_| within(&place, malformed("more person refs than a u32 counts")))?;
            layers.refs.extend_from_slice(refs);
            persons.push(PersonEntry { refs_start, ..p });
        }
        // Every check passed: fold the layer in.
        for (pos, key, loc) in cards.into_iter().chain(
            tombstoned
                .into_iter()
                .map(|(p, k)| (p, k.into_boxed_slice(), None)),
        ) {
            layers.cards.insert(pos, &key, loc);
        }
        for p in persons {
            layers.persons.insert(p);
        }
        self.segments.append(&mut layer.segments);
        self.insurers.extend(layer.insurers.iter().cloned());
        self.segment_files.append(&mut layer.segment_files);
        layers.files.push(LayerFile {
            index: layer,
            link,
            file: None,
        });
        Ok(())
    }

    /// The layer's link, checked against this generation: the same base (id and header
    /// checksum), this generation as parent, the next sequence, the segments so far.
    fn check_layer(&self, layer: &Index<B>) -> Result<LayerLink, FormatError> {
        let link = LayerLink::decode(layer.section_bytes(SectionKind::LayerLink))?;
        let sequence = self.layers.as_ref().map_or(0, |l| l.files.len()) as u32 + 1;
        let base_xxh3 = u64_at(self.main.as_ref(), 120);
        let expected = LayerLink {
            base_generation: self.header.generation_id.clone(),
            base_header_xxh3: base_xxh3,
            parent_generation: self.generation().to_owned(),
            sequence,
            segments_before: self.segments.len() as u32,
        };
        if link != expected {
            return Err(malformed(format!(
                "its link ({link:?}) does not stack it on this generation ({expected:?})"
            )));
        }
        if layer.header.payer_count != 0 || layer.header.certificate_count != 0 {
            return Err(malformed("a layer holds no public-expense certificates"));
        }
        Ok(link)
    }

    fn base_position(&self, n: &InsurerNumber) -> Result<usize, FormatError> {
        self.insurer_slots
            .get(n.to_key())
            .ok_or_else(|| malformed(format!("insurer {} is not in the base", n.as_str())))
    }

    fn section_bytes(&self, kind: SectionKind) -> &[u8] {
        &self.main.as_ref()[self.sections[kind.position()].range.clone()]
    }

    /// A person's refs bytes in this file's refs section, if they lie inside it.
    fn person_refs_bytes(&self, p: &PersonEntry) -> Option<&[u8]> {
        let refs = &self.main.as_ref()[self.person_refs.clone()];
        let start = p.refs_start as usize * PERSON_REF_BYTES;
        refs.get(start..start + p.refs_count as usize * PERSON_REF_BYTES)
    }

    /// The refs bytes a person entry names: the base's refs section, or past it the
    /// layers' refs.
    pub(super) fn refs_of(&self, p: &PersonEntry) -> &[u8] {
        let (refs, start) = match &self.layers {
            Some(l) if p.refs_start as usize >= l.base_refs => {
                (&l.refs[..], p.refs_start as usize - l.base_refs)
            }
            _ => (
                &self.main.as_ref()[self.person_refs.clone()],
                p.refs_start as usize,
            ),
        };
        let start = start * PERSON_REF_BYTES;
        let end = (start + p.refs_count as usize * PERSON_REF_BYTES).min(refs.len());
        &refs[start.min(end)..end]
    }

    /// What the layers say of a card of base insurer `insurer`: `None` when no layer holds
    /// it (the base answers), `Some(None)` for a card a layer removed. `hash` is the card's
    /// [`card_hash`], made at the lookup's first step.
    pub(super) fn layered_card(
        &self,
        insurer: usize,
        key: &[u8],
        hash: u64,
    ) -> Option<Option<CardLoc>> {
        if hash == 0 {
            return None;
        }
        self.layers.as_ref()?.cards.get(hash, insurer, key)
    }

    /// The layers' hash of a card of base insurer `insurer` when a layer touched that
    /// insurer; else 0 (no layer holds the card, and the lookup need not hash its key).
    pub(super) fn layer_card_hash(&self, insurer: usize, key: &[u8]) -> u64 {
        match &self.layers {
            Some(l) if l.cards.touch(insurer) => card_hash(insurer, key),
            _ => 0,
        }
    }

    /// Starts loading the layers' slot of a card hashed [`Self::layer_card_hash`].
    pub(super) fn prefetch_layer_card(&self, hash: u64) {
        if let (Some(l), true) = (&self.layers, hash != 0) {
            l.cards.prefetch(hash);
        }
    }

    /// Starts loading the layers' slot of the person of `hash`, when there are layers.
    pub(super) fn prefetch_layered_person(&self, hash: &[u8; 16]) {
        if let Some(l) = &self.layers {
            l.persons.prefetch(hash);
        }
    }

    /// The layers' entry of a person, when a layer touched them.
    pub(super) fn layered_person(&self, hash: &[u8; 16]) -> Option<PersonEntry> {
        self.layers.as_ref()?.persons.get(hash)
    }

    /// The cards the layers hold for base insurer `insurer` (key, and where, or `None` for
    /// a tombstone).
    pub fn layered_cards(&self, insurer: usize) -> Vec<(Vec<u8>, Option<CardPlace>)> {
        let Some(layers) = &self.layers else {
            return Vec::new();
        };
        layers
            .cards
            .of_insurer(insurer)
            .map(|(k, loc)| {
                let at = loc.map(|l| {
                    let start = l.start as usize;
                    (l.segment as usize, start, start + l.count as usize)
                });
                (k.to_vec(), at)
            })
            .collect()
    }

    /// Every person the layers hold, with the newest layer's entry, sorted by hash: their
    /// refs ([`Self::person_refs`]) name records in the global numbering.
    pub fn layered_persons(&self) -> Vec<PersonEntry> {
        let mut out: Vec<PersonEntry> = self
            .layers
            .iter()
            .flat_map(|l| l.persons.entries())
            .collect();
        out.sort_unstable_by_key(|p| p.hash);
        out
    }

    /// The insurer of a segment by its global number (a base insurer's, or a delta
    /// segment's).
    pub fn segment_insurer(&self, segment: usize) -> Option<&super::InsurerInfo> {
        self.insurers.get(segment)
    }

    /// Segments in the global numbering: the base's and every layer's delta segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes of the layer files and their delta segments.
    pub fn layer_bytes(&self) -> u64 {
        self.layers.as_ref().map_or(0, |l| l.file_bytes())
            + self.insurers[self.base_insurers()..]
                .iter()
                .map(|i| i.entry.segment_end())
                .sum::<u64>()
    }

    /// The base main file's header checksum (bytes 120..128), which a layer's link names.
    pub fn base_header_xxh3(&self) -> u64 {
        u64_at(self.main.as_ref(), 120)
    }

    /// How many layers are stacked on the base.
    pub fn layer_count(&self) -> usize {
        self.layers.as_ref().map_or(0, |l| l.files.len())
    }

    /// How many layers its open read and folded (the rest came folded from a parent).
    pub fn layers_read(&self) -> usize {
        self.layers_read
    }

    /// The base's generation id (the main file's), whatever the layers.
    pub fn base_generation(&self) -> &str {
        &self.header.generation_id
    }

    /// Each layer file's (generation id, header checksum, bytes), bottom first: what names
    /// it (`layer_file_name`).
    pub fn layer_files(&self) -> Vec<(String, u32, u64, u64)> {
        self.layers
            .iter()
            .flat_map(|l| &l.files)
            .map(|f| {
                let h = &f.index.header;
                (
                    h.generation_id.clone(),
                    f.link.sequence,
                    u64_at(f.index.main.as_ref(), 120),
                    h.file_bytes,
                )
            })
            .collect()
    }

    /// Each layer file's checksums and person table (`verify`); its delta segments are
    /// verified with the base's segments, its refs and card values were checked at open.
    pub fn verify_layers(&self) -> Result<(), FormatError> {
        self.verify_layers_from(0)
    }

    /// [`Self::verify_layers`] for the layers past the first `below` (a build reads back the
    /// layer it wrote; those below were checked when they were written or opened to serve).
    pub fn verify_layers_from(&self, below: usize) -> Result<(), FormatError> {
        for f in self.layers.iter().flat_map(|l| l.files.iter().skip(below)) {
            let place = format!("layer {}", f.index.header.generation_id);
            f.index
                .verify_person_table()
                .map_err(|e| within(&place, e))?;
        }
        Ok(())
    }
}
