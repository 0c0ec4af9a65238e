//! What the store and each replica keep: the live generation, the previous one (so a rollback
//! never waits for a download), and every generation newer than the live one (published,
//! not yet promoted). The rest go, and with them the segment, layer and main files no kept
//! generation names.

use super::manifest::Manifest;
use super::pointer::Pointer;
use super::publish::stored_generations;
use super::remote::Remote;
use super::{keys, unix_now_ms, FleetError};
use std::collections::HashSet;

/// A segment, layer or main file younger than this is never deleted: a publish running now
/// may have just uploaded it, and its manifest is not in the store yet.
pub const SEGMENT_GRACE_MS: u64 = 60 * 60 * 1000;

/// Whether generation `id` is kept while `pointer` is as it is.
pub fn kept(pointer: &Pointer, id: &str) -> bool {
    id == pointer.live || pointer.previous.as_deref() == Some(id) || id > pointer.live.as_str()
}

/// What a store gc removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub generations: Vec<String>,
    pub segments: usize,
}

/// Deletes from the store what `pointer` no longer needs. A generation goes manifest first,
/// so no replica starts downloading one that is half deleted.
pub fn gc_store(remote: &Remote, pointer: &Pointer) -> Result<Removed, FleetError> {
    let mut removed = Removed::default();
    let stored = stored_generations(remote)?;
    let mut referenced = HashSet::new();
    for id in &stored {
        if !kept(pointer, id) {
            continue;
        }
        let key = keys::manifest(id);
        let Some(got) = remote.get(&key)? else {
            continue;
        };
        let m = Manifest::parse(&got.bytes, &key, id)?;
        referenced.extend(m.shared().map(|f| keys::shared(&f.path)));
        referenced.extend(m.main_file().map(|f| keys::main_file(&f.xxh3)));
    }
    for id in stored.iter().filter(|id| !kept(pointer, id)) {
        remote.delete(&keys::manifest(id))?;
        for listed in remote.list(&format!("{}/{id}", keys::GENERATIONS))?.objects {
            remote.delete(&listed.key)?;
        }
        removed.generations.push(id.clone());
    }
    let now = unix_now_ms();
    // Segment, layer and main files no kept generation names (counted together as segments).
    for prefix in keys::CONTENT {
        for listed in remote.list(prefix)?.objects {
            if referenced.contains(&listed.key)
                || now.saturating_sub(listed.modified_ms) < SEGMENT_GRACE_MS
            {
                continue;
            }
            remote.delete(&listed.key)?;
            removed.segments += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_generations() {
        let p = Pointer {
            format: 1,
            live: "g3".into(),
            previous: Some("g2".into()),
            pinned: false,
            changed_at_ms: 0,
            rolled_back_from: None,
        };
        let got: Vec<bool> = ["g1", "g2", "g3", "g4"]
            .iter()
            .map(|g| kept(&p, g))
            .collect();
        assert_eq!(got, [false, true, true, true]);
    }
}
