//! The cards and persons the change layers hold, for lookups: open-addressing tables (linear
//! probing, at most half full), cards keyed by (base insurer, card key) under xxh3, persons
//! by their keyed hash, whose first bytes are uniform already. A lookup hashes a card key
//! once, at its first step, asks for the slot's cache line, and reads it at the next step
//! (`staged.rs`): a card or person some layer touched costs the same steps as one none did.
//! The standard library's maps cost a SipHash per card lookup and a miss no step could
//! prefetch.

use super::layers::CardLoc;
use super::prefetch::prefetch_value;
use crate::format::PersonEntry;

/// One slot: `hash` 0 is empty; `loc.count` 0 is a card a layer removed (a tombstone).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    hash: u64,
    insurer: u32,
    key_start: u32,
    segment: u32,
    start: u32,
    key_len: u16,
    count: u16,
}

/// The layers' cards, newest layer winning.
#[derive(Default, Clone)]
pub(crate) struct LayerCards {
    /// A power of two long, at most half full, so linear probes stay short.
    slots: Vec<Slot>,
    used: usize,
    /// Every key's bytes, once.
    keys: Vec<u8>,
    /// By base insurer: its keys (start, length) in `keys`, in the order first held; empty
    /// for an insurer no layer touched.
    by_insurer: Vec<Vec<(u32, u16)>>,
    /// A bit per base insurer, set when a layer holds a card of it: what every card lookup
    /// reads first, a few hundred bytes that stay in cache (`by_insurer` is 24 per insurer).
    touched: Vec<u64>,
}

/// The hash a card of base insurer `insurer` is filed under (never 0, the empty slot's).
pub(crate) fn card_hash(insurer: usize, key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, insurer as u64).max(1)
}

impl LayerCards {
    pub(crate) fn new(base_insurers: usize) -> LayerCards {
        LayerCards {
            by_insurer: vec![Vec::new(); base_insurers],
            touched: vec![0; base_insurers.div_ceil(64)],
            ..LayerCards::default()
        }
    }

    /// Whether a layer holds any card of base insurer `insurer`.
    pub(crate) fn touch(&self, insurer: usize) -> bool {
        self.touched
            .get(insurer / 64)
            .is_some_and(|w| w & (1 << (insurer % 64)) != 0)
    }

    /// Files the card (`None`: removed), replacing what a lower layer said of it.
    pub(crate) fn insert(&mut self, insurer: usize, key: &[u8], loc: Option<CardLoc>) {
        if (self.used + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let hash = card_hash(insurer, key);
        let loc = loc.unwrap_or(CardLoc {
            segment: 0,
            start: 0,
            count: 0,
        });
        let at = self.find_slot(hash, insurer, key);
        let slot = &mut self.slots[at];
        if slot.hash == 0 {
            let key_start = self.keys.len() as u32;
            self.keys.extend_from_slice(key);
            let key_len = key.len() as u16;
            self.by_insurer[insurer].push((key_start, key_len));
            self.touched[insurer / 64] |= 1 << (insurer % 64);
            *slot = Slot {
                hash,
                insurer: insurer as u32,
                key_start,
                key_len,
                ..Slot::default()
            };
            self.used += 1;
        }
        (slot.segment, slot.start, slot.count) = (loc.segment, loc.start, loc.count);
    }

    /// Starts loading the slot a card of `hash` is looked for in first.
    pub(crate) fn prefetch(&self, hash: u64) {
        if let Some(slot) = self.slots.get(self.home(hash)) {
            prefetch_value(slot);
        }
    }

    /// What the layers say of the card: `None` when no layer holds it (the base answers),
    /// `Some(None)` when a layer removed it. `hash` is [`card_hash`]'s.
    pub(crate) fn get(&self, hash: u64, insurer: usize, key: &[u8]) -> Option<Option<CardLoc>> {
        if self.slots.is_empty() {
            return None;
        }
        let slot = &self.slots[self.find_slot(hash, insurer, key)];
        (slot.hash != 0).then(|| {
            (slot.count > 0).then_some(CardLoc {
                segment: slot.segment,
                start: slot.start,
                count: slot.count,
            })
        })
    }

    /// Base insurer `insurer`'s cards in the layers, each with what the layers say of it.
    pub(crate) fn of_insurer(
        &self,
        insurer: usize,
    ) -> impl Iterator<Item = (&[u8], Option<CardLoc>)> + '_ {
        self.by_insurer
            .get(insurer)
            .into_iter()
            .flatten()
            .map(move |&(start, len)| {
                let key = &self.keys[start as usize..start as usize + len as usize];
                let loc = self.get(card_hash(insurer, key), insurer, key).flatten();
                (key, loc)
            })
    }

    fn home(&self, hash: u64) -> usize {
        hash as usize & (self.slots.len().wrapping_sub(1))
    }

    /// The slot holding the card, or the empty slot where it would go.
    fn find_slot(&self, hash: u64, insurer: usize, key: &[u8]) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.home(hash);
        loop {
            let s = &self.slots[at];
            if s.hash == 0
                || (s.hash == hash && s.insurer as usize == insurer && self.key_of(s) == key)
            {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    fn key_of(&self, s: &Slot) -> &[u8] {
        &self.keys[s.key_start as usize..s.key_start as usize + s.key_len as usize]
    }

    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); len]);
        for s in old.into_iter().filter(|s| s.hash != 0) {
            let mask = self.slots.len() - 1;
            let mut at = self.home(s.hash);
            while self.slots[at].hash != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = s;
        }
    }
}

/// The layers' persons: keyed hash → entry, newest layer winning.
#[derive(Default, Clone)]
pub(crate) struct LayerPersons {
    /// A power of two long, at most half full.
    slots: Vec<Option<PersonEntry>>,
    used: usize,
}

impl LayerPersons {
    /// Files the person's entry, replacing what a lower layer said of them.
    pub(crate) fn insert(&mut self, p: PersonEntry) {
        if (self.used + 1) * 2 > self.slots.len() {
            let len = (self.slots.len() * 2).max(64);
            let old = std::mem::replace(&mut self.slots, vec![None; len]);
            self.used = 0;
            for p in old.into_iter().flatten() {
                self.insert(p);
            }
        }
        let at = self.find_slot(&p.hash.0);
        self.used += usize::from(self.slots[at].is_none());
        self.slots[at] = Some(p);
    }

    /// Every person a layer holds, with the newest layer's entry (in no particular order).
    pub(crate) fn entries(&self) -> impl Iterator<Item = PersonEntry> + '_ {
        self.slots.iter().flatten().copied()
    }

    /// Starts loading the slot the person of `hash` is looked for in first.
    pub(crate) fn prefetch(&self, hash: &[u8; 16]) {
        if let Some(slot) = self.slots.get(self.home(hash)) {
            prefetch_value(slot);
        }
    }

    /// The layers' entry of the person of `hash`, when a layer holds them.
    pub(crate) fn get(&self, hash: &[u8; 16]) -> Option<PersonEntry> {
        if self.slots.is_empty() {
            return None;
        }
        self.slots[self.find_slot(hash)]
    }

    fn home(&self, hash: &[u8; 16]) -> usize {
        let prefix = u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"));
        prefix as usize & self.slots.len().wrapping_sub(1)
    }

    /// The slot holding the person, or the empty slot where they would go.
    fn find_slot(&self, hash: &[u8; 16]) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.home(hash);
        while let Some(p) = &self.slots[at] {
            if &p.hash.0 == hash {
                break;
            }
            at = (at + 1) & mask;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The table answers as a map of (insurer, key) would, over inserts that replace and
    /// remove cards across a growth or two, and says which insurers are touched.
    #[test]
    fn answers_as_a_map() {
        let mut table = LayerCards::new(5);
        let mut model: HashMap<(usize, Vec<u8>), Option<CardLoc>> = HashMap::new();
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(0x5851_f42d_4c95_7f2d)
                .wrapping_add(0x1405_7b7e_f767_814f);
            state >> 33
        };
        for i in 0..3000u32 {
            let insurer = (next() % 4) as usize;
            let key = (next() % 700).to_string().into_bytes();
            let loc = (next() % 5 != 0).then_some(CardLoc {
                segment: i,
                start: i * 2,
                count: (i % 7 + 1) as u16,
            });
            table.insert(insurer, &key, loc);
            model.insert((insurer, key), loc);
        }
        for insurer in 0..5 {
            for k in 0..800u32 {
                let key = k.to_string().into_bytes();
                let want = model.get(&(insurer, key.clone())).copied();
                assert_eq!(table.get(card_hash(insurer, &key), insurer, &key), want);
            }
            let mut listed: Vec<_> = table
                .of_insurer(insurer)
                .map(|(k, l)| (k.to_vec(), l))
                .collect();
            listed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let mut want: Vec<_> = model
                .iter()
                .filter(|((i, _), _)| *i == insurer)
                .map(|((_, k), l)| (k.clone(), *l))
                .collect();
            want.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(listed, want);
            assert_eq!(table.touch(insurer), insurer < 4);
        }
    }

    /// The person table answers as a map would across growths, the newest entry winning;
    /// hashes sharing their first bytes (the home slot) are told apart.
    #[test]
    fn persons_answer_as_a_map() {
        use crate::domain::PersonHash;
        let mut table = LayerPersons::default();
        let mut model = HashMap::new();
        let hash = |i: u32| {
            let mut h = [0u8; 16];
            h[..4].copy_from_slice(&(i % 97).to_le_bytes());
            h[8..12].copy_from_slice(&i.to_le_bytes());
            PersonHash(h)
        };
        for i in 0..2000u32 {
            let p = PersonEntry {
                hash: hash(i % 600),
                refs_start: i,
                refs_count: (i % 3) as u16,
                flags: 0,
            };
            table.insert(p);
            model.insert(p.hash.0, p);
        }
        for i in 0..700 {
            let h = hash(i).0;
            assert_eq!(table.get(&h), model.get(&h).copied());
        }
    }
}
