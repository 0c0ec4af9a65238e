//! Finding an insurer by number: open addressing over the table's keys.

/// Insurer key → insurer table position, by open addressing over the key's 8 bytes as a
/// `u64` in a power-of-two table at most half full. Hand-written for the query path: it
/// replaced a binary search of the 3,400 sorted keys, whose twelve dependent, unpredictable
/// steps were about 5% of a card query's work; std's `HashMap` hashes with SipHash, slower
/// than the one multiply here. Keys are never 0 (digits or blanks), so 0 marks a free slot.
#[derive(Clone)]
pub(super) struct InsurerSlots {
    shift: u32,
    slots: Vec<(u64, u32)>,
}

impl InsurerSlots {
    pub(super) fn new(keys: &[[u8; 8]]) -> InsurerSlots {
        let len = (keys.len() * 2).next_power_of_two().max(16);
        let mut table = InsurerSlots {
            shift: 64 - len.trailing_zeros(),
            slots: vec![(0, 0); len],
        };
        for (position, key) in keys.iter().enumerate() {
            let k = u64::from_le_bytes(*key);
            assert_ne!(k, 0, "an insurer key is digits or blanks");
            let mut i = table.home(k);
            while table.slots[i].0 != 0 {
                i = (i + 1) & (len - 1);
            }
            table.slots[i] = (k, position as u32);
        }
        // Pair assertion: every key finds its own position.
        debug_assert!(keys
            .iter()
            .enumerate()
            .all(|(p, k)| table.get(*k) == Some(p)));
        table
    }

    fn home(&self, k: u64) -> usize {
        // Fibonacci hashing: the product's high bits.
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    pub(super) fn get(&self, key: [u8; 8]) -> Option<usize> {
        let k = u64::from_le_bytes(key);
        let mask = self.slots.len() - 1;
        let mut i = self.home(k);
        loop {
            match self.slots[i] {
                (0, _) => return None,
                (slot, position) if slot == k => return Some(position as usize),
                _ => i = (i + 1) & mask,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InsurerSlots;
    use proptest::prelude::*;

    proptest! {
        /// The slots answer as a binary search of the sorted keys does (the model they
        /// replaced), for keys in the table and keys not in it.
        #[test]
        fn insurer_slots_agree_with_binary_search(
            numbers in prop::collection::btree_set(0u32..100_000_000, 0..600),
            probes in prop::collection::vec(0u32..100_000_000, 0..200),
        ) {
            let key = |n: u32| {
                let mut k = [b' '; 8];
                k.copy_from_slice(format!("{n:08}").as_bytes());
                k
            };
            let keys: Vec<[u8; 8]> = numbers.iter().map(|&n| key(n)).collect();
            let slots = InsurerSlots::new(&keys);
            for n in numbers.iter().copied().chain(probes) {
                prop_assert_eq!(slots.get(key(n)), keys.binary_search(&key(n)).ok());
            }
        }
    }
}
