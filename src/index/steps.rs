//! The lookup steps: a card's records (insurer slot, card directory or FST) and a person's
//! (keyed hash, bucket, entry, references), each step apart so a group of queries can
//! prefetch the memory of its next step while the others run.

use super::prefetch::{prefetch, prefetch_lines, prefetch_value, PREFETCH_RECORDS};
use super::{Index, RecordView};
use crate::domain::{Date, IndividualNumber, InsurerNumber, PersonHash};
use crate::format::{self, *};

impl<B: AsRef<[u8]>> Index<B> {
    /// Every person entry, in hash order (for an incremental build).
    pub fn person_table(&self) -> impl Iterator<Item = PersonEntry> + '_ {
        self.main.as_ref()[self.persons.clone()]
            .chunks_exact(PERSON_ENTRY_BYTES)
            .map(PersonEntry::decode)
    }

    /// A person's refs as (insurer position, record) pairs.
    pub fn person_refs(&self, p: &PersonEntry) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.refs_of(p)
            .chunks_exact(PERSON_REF_BYTES)
            .map(|c| decode_person_ref(u64_at(c, 0)))
    }

    fn insurer_index(&self, n: &InsurerNumber) -> Option<usize> {
        self.insurer_slots.get(n.to_key())
    }

    /// Insurer `n`'s position in the insurer table (and so its segment's), if it is there.
    pub fn insurer_position(&self, n: &InsurerNumber) -> Option<usize> {
        self.insurer_index(n)
    }

    /// The first step of a card lookup, which touches no index memory but the insurer table:
    /// the card's segment and key (and its hash in the layers, when a layer touched the
    /// insurer). `None` when no such card can exist.
    pub(super) fn card_probe(
        &self,
        insurer: &InsurerNumber,
        symbol: &str,
        number: &str,
    ) -> Option<CardProbe> {
        let insurer = self.insurer_index(insurer)?;
        let mut key = [0u8; MAX_CARD_KEY_BYTES];
        let len = card_key(symbol, number, &mut key)?;
        let layer_hash = self.layer_card_hash(insurer, &key[..len]);
        Some(CardProbe {
            insurer,
            key,
            len,
            layer_hash,
        })
    }

    /// Starts loading the memory [`Self::probed_records`] will read first (the layers' slot
    /// of the card, when a layer touched its insurer, and the card's directory slot), so a
    /// batch can overlap the cache misses of its queries.
    pub(super) fn prefetch_probe(&self, probe: &CardProbe) {
        self.prefetch_layer_card(probe.layer_hash);
        if let Some(dir) = self.directory_of(probe) {
            let slots = dir.len() / DIRECTORY_SLOT_BYTES;
            let home = directory_home(probe.key(), slots);
            prefetch(&dir[home * DIRECTORY_SLOT_BYTES..]);
        }
    }

    /// The card's directory, when its key is short enough to be in it.
    fn directory_of(&self, probe: &CardProbe) -> Option<&[u8]> {
        let seg = &self.segments[probe.insurer];
        (probe.len <= DIRECTORY_KEY_MAX && !seg.directory.is_empty())
            .then(|| &seg.bytes.as_ref()[seg.directory.clone()])
    }

    /// The second step: the records a probe names (none for `None`). A card a layer holds is
    /// found there (one array read more for an insurer no layer touched); else in the base.
    pub(super) fn probed_records(&self, probe: Option<&CardProbe>) -> CardRecords<'_, B> {
        let found = probe.and_then(|p| {
            if let Some(layered) = self.layered_card(p.insurer, p.key(), p.layer_hash) {
                return layered.map(|l| (l.segment as usize, (l.start, l.count)));
            }
            let found = match self.directory_of(p) {
                Some(dir) => directory_get(dir, p.key()),
                None => self.segments[p.insurer]
                    .fst()
                    .ok()
                    .and_then(|fst| fst_get(&fst, p.key()))
                    .map(decode_card_value),
            };
            found.map(|f| (p.insurer, f))
        });
        match found {
            Some((i, (start, count))) => CardRecords {
                index: self,
                insurer: i,
                next: start as usize,
                end: start as usize + count as usize,
            },
            None => CardRecords::none(self),
        }
    }

    /// The first step of a person lookup: the keyed hash of an individual number (no index
    /// memory is read; an audit line names a person so).
    pub fn person_hash(&self, n: &IndividualNumber) -> PersonHash {
        self.key.hash(n)
    }

    /// Starts loading the person's bucket of the bucket directory (and their slot in the
    /// layers, when there are layers).
    pub(super) fn prefetch_person_bucket(&self, hash: &PersonHash) {
        self.prefetch_layered_person(&hash.0);
        let starts = &self.main.as_ref()[self.person_buckets.clone()];
        if let Some(at) = format::person_bucket_offset(starts, &hash.0) {
            prefetch(&starts[at..]);
        }
    }

    /// Starts loading the person's entry in the person table. Reads the bucket directory:
    /// call it once [`Self::prefetch_person_bucket`] has had time to bring it in.
    pub(super) fn prefetch_person_entry(&self, hash: &PersonHash) {
        let table = &self.main.as_ref()[self.persons.clone()];
        let starts = &self.main.as_ref()[self.person_buckets.clone()];
        if let Some((start, _)) = format::person_bucket_range(table, starts, &hash.0) {
            prefetch(&table[start * PERSON_ENTRY_BYTES..]);
        }
    }

    /// Starts loading a person's record references.
    pub(super) fn prefetch_person_refs(&self, p: &PersonEntry) {
        // The base's refs or, for a person a layer holds, the layers' (`refs_of`).
        prefetch(self.refs_of(p));
    }

    /// Starts loading a person's records (at most [`PREFETCH_RECORDS`]) and their insurers'
    /// table rows. Reads the person's references: call it once
    /// [`Self::prefetch_person_refs`] has had time to bring them in.
    pub(super) fn prefetch_person_records(&self, p: &PersonEntry) {
        for (ins, rec) in self.person_refs(p).take(PREFETCH_RECORDS) {
            if let Some(seg) = self.segments.get(ins as usize) {
                let at = seg.records.start + rec as usize * RECORD_BYTES;
                prefetch(
                    seg.bytes
                        .as_ref()
                        .get(at..seg.records.end)
                        .unwrap_or_default(),
                );
                prefetch_value(&self.insurers[ins as usize]);
            }
        }
    }

    /// Starts loading the text of a person's records (at most [`PREFETCH_RECORDS`]), which a
    /// person query's answer shows. Reads the records: call it once
    /// [`Self::prefetch_person_records`] has had time to bring them in.
    pub(super) fn prefetch_person_text(&self, p: &PersonEntry) {
        for r in self.person_records(p).take(PREFETCH_RECORDS) {
            r.prefetch_text();
        }
    }

    /// Finds a person by hash (see [`format::find_person`]).
    pub(super) fn person_entry(&self, hash: &PersonHash) -> Option<PersonEntry> {
        if let Some(p) = self.layered_person(&hash.0) {
            return Some(p);
        }
        self.base_person_entry(hash)
    }

    /// [`Self::person_entry`] in the base alone.
    fn base_person_entry(&self, hash: &PersonHash) -> Option<PersonEntry> {
        let table = &self.main.as_ref()[self.persons.clone()];
        let starts = &self.main.as_ref()[self.person_buckets.clone()];
        let i = format::find_person(table, starts, &hash.0)?;
        Some(PersonEntry::decode(
            &table[i * PERSON_ENTRY_BYTES..(i + 1) * PERSON_ENTRY_BYTES],
        ))
    }

    /// A person's records in insurer, then record order.
    pub fn person_records<'a>(
        &'a self,
        p: &PersonEntry,
    ) -> impl Iterator<Item = RecordView<'a>> + 'a {
        self.person_refs(p).filter_map(move |(ins, rec)| {
            self.insurers.get(ins as usize)?;
            self.view(ins as usize, rec as usize)
        })
    }

    /// The base insurer `i`'s card keys with their records (first, count), in key order,
    /// from its segment alone (a change build takes the layers' from
    /// [`Self::layered_cards`]).
    pub fn segment_cards(&self, i: usize) -> Result<Vec<(Vec<u8>, u32, u16)>, FormatError> {
        let seg = &self.segments[i];
        let mut cards = Vec::new();
        super::verify::walk_fst(&seg.fst()?, self.insurers[i].entry.key_count, |k, v| {
            let (start, count) = decode_card_value(v);
            cards.push((k.to_vec(), start, count));
            true
        })?;
        cards.sort_unstable();
        Ok(cards)
    }

    /// The records of insurer `i` (by table position), in segment order.
    pub fn insurer_records(&self, i: usize) -> impl Iterator<Item = RecordView<'_>> + '_ {
        let n = self
            .insurers
            .get(i)
            .map_or(0, |ins| ins.entry.record_count as usize);
        (0..n).filter_map(move |r| self.view(i, r))
    }

    /// Every record of every base insurer (for tools and the guard; a layer's records are
    /// not among them).
    pub fn all_records(&self) -> impl Iterator<Item = RecordView<'_>> + '_ {
        (0..self.base_insurers()).flat_map(move |i| {
            (0..self.insurers[i].entry.record_count as usize).filter_map(move |r| self.view(i, r))
        })
    }
}

/// Iterator over one card's records.
pub struct CardRecords<'a, B> {
    index: &'a Index<B>,
    insurer: usize,
    next: usize,
    end: usize,
}

impl<B> CardRecords<'_, B> {
    /// Where the card's records are: (global segment, first record, end); `None` when
    /// there are none (no such card, or a layer removed it).
    pub fn place(&self) -> Option<super::layers::CardPlace> {
        (self.next < self.end).then_some((self.insurer, self.next, self.end))
    }
}

/// Where a card's records would be: its insurer (by table position) and its key.
#[derive(Clone, Copy)]
pub(crate) struct CardProbe {
    insurer: usize,
    key: [u8; MAX_CARD_KEY_BYTES],
    len: usize,
    /// The card's hash in the layers' table, 0 when no layer touched the insurer.
    layer_hash: u64,
}

impl CardProbe {
    fn key(&self) -> &[u8] {
        &self.key[..self.len]
    }
}

impl<'a, B: AsRef<[u8]>> CardRecords<'a, B> {
    /// No records (a lookup that found no card, or looked for none).
    pub(super) fn none(index: &'a Index<B>) -> CardRecords<'a, B> {
        CardRecords {
            index,
            insurer: 0,
            next: 0,
            end: 0,
        }
    }

    /// Where the records are: (global segment, first record, end).
    pub fn location(&self) -> (usize, usize, usize) {
        (self.insurer, self.next, self.end)
    }

    /// Starts loading the card's records (at most [`PREFETCH_RECORDS`] of them).
    pub(super) fn prefetch(&self) {
        let Some(seg) = self.index.segments.get(self.insurer) else {
            return;
        };
        let n = (self.end - self.next).min(PREFETCH_RECORDS);
        let b = seg.bytes.as_ref();
        let start = seg.records.start + self.next * RECORD_BYTES;
        let end = (start + n * RECORD_BYTES).min(seg.records.end);
        prefetch_lines(b.get(start..end).unwrap_or_default());
        prefetch_value(&self.index.insurers[self.insurer]);
    }

    /// The person of the card's first record when that record does not cover `date`: the
    /// person a card query then looks up (is there a newer qualification elsewhere?), so a
    /// group can prefetch them. Reads the record, as [`Self::prefetch_text`] does.
    pub(super) fn lost_person(&self, date: Date) -> Option<PersonHash> {
        self.clone()
            .next()
            .filter(|first| !first.covers(date))
            .and_then(|first| first.person())
    }

    /// Starts loading the text of the card's first record. Reads that record: call it once
    /// [`Self::prefetch`] has had time to bring it in.
    pub(super) fn prefetch_text(&self) {
        if let Some(first) = self.clone().next() {
            first.prefetch_text();
        }
    }
}

impl<'a, B: AsRef<[u8]>> Iterator for CardRecords<'a, B> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        if self.next >= self.end {
            return None;
        }
        let v = self.index.view(self.insurer, self.next);
        self.next += 1;
        v
    }
}

impl<B> Clone for CardRecords<'_, B> {
    fn clone(&self) -> Self {
        CardRecords {
            index: self.index,
            insurer: self.insurer,
            next: self.next,
            end: self.end,
        }
    }
}

/// An FST lookup that cannot panic. The fst crate may panic on bytes it did not write (its
/// docs say so); `verify` walks every node a lookup can reach, but a reader that has not
/// verified (a tool, a test) must still get an answer, not a panic: a key it cannot read is
/// not found. On the happy path the guard costs a call, and only long keys take this path.
fn fst_get<D: AsRef<[u8]>>(map: &fst::Map<D>, key: &[u8]) -> Option<u64> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| map.get(key))).unwrap_or(None)
}
