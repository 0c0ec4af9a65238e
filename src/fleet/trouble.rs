//! What keeps a replica from following the fleet, as types: each fault the follower can meet
//! in the store or on its own disk is a `Trouble`, named in `/healthz` (`fleet.troubles`), in
//! the log once when it begins and once when it ends, and counted in `/metrics`
//! (`shikaku_fleet_troubles{kind}` now, `shikaku_fleet_troubles_total{kind}` ever). Each check
//! of a tick says what it found, so a trouble ends on the tick after its cause is gone.

use crate::domain::text::mask_digit_runs;
use std::collections::BTreeMap;
use std::fmt;

/// The store request a `Trouble::StoreUnreadable` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRead {
    Pointer,
    Generations,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The store did not answer, or refused, a request the follower needs every tick.
    StoreUnreadable { read: StoreRead, why: String },
    /// `pointer.json` is there but is not a pointer.
    PointerInvalid { why: String },
    /// The pointer names a generation whose manifest is not in the store.
    PointerNamesMissing { id: String },
    /// A key under `generations/` the store client cannot name (a `..` or empty segment);
    /// stepped over.
    UnnamableKey { key: String },
    /// A generation's manifest is in the store but not every file it names: a publish that
    /// did not finish. Stepped over until the files are there.
    IncompleteGeneration { id: String, missing: Vec<String> },
    /// A download or verification of a generation failed (retried with backoff).
    DownloadFailed { id: String, why: String },
    /// A generation does not fit on the data directory's file system.
    DiskFull {
        id: String,
        needed_bytes: u64,
        free_bytes: u64,
    },
    /// The data directory itself failed (reading it, making a generation live).
    DataDir { why: String },
    /// The replica's state object could not be written.
    StateUnwritable { why: String },
}

/// A `Trouble`'s kind: its name in `/healthz` and the `kind` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TroubleKind {
    StoreUnreadable,
    PointerInvalid,
    PointerNamesMissing,
    UnnamableKey,
    IncompleteGeneration,
    DownloadFailed,
    DiskFull,
    DataDir,
    StateUnwritable,
}

impl TroubleKind {
    pub const ALL: [TroubleKind; 9] = [
        TroubleKind::StoreUnreadable,
        TroubleKind::PointerInvalid,
        TroubleKind::PointerNamesMissing,
        TroubleKind::UnnamableKey,
        TroubleKind::IncompleteGeneration,
        TroubleKind::DownloadFailed,
        TroubleKind::DiskFull,
        TroubleKind::DataDir,
        TroubleKind::StateUnwritable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TroubleKind::StoreUnreadable => "store_unreadable",
            TroubleKind::PointerInvalid => "pointer_invalid",
            TroubleKind::PointerNamesMissing => "pointer_names_missing",
            TroubleKind::UnnamableKey => "unnamable_key",
            TroubleKind::IncompleteGeneration => "incomplete_generation",
            TroubleKind::DownloadFailed => "download_failed",
            TroubleKind::DiskFull => "disk_full",
            TroubleKind::DataDir => "data_dir",
            TroubleKind::StateUnwritable => "state_unwritable",
        }
    }
}

impl Trouble {
    pub fn kind(&self) -> TroubleKind {
        match self {
            Trouble::StoreUnreadable { .. } => TroubleKind::StoreUnreadable,
            Trouble::PointerInvalid { .. } => TroubleKind::PointerInvalid,
            Trouble::PointerNamesMissing { .. } => TroubleKind::PointerNamesMissing,
            Trouble::UnnamableKey { .. } => TroubleKind::UnnamableKey,
            Trouble::IncompleteGeneration { .. } => TroubleKind::IncompleteGeneration,
            Trouble::DownloadFailed { .. } => TroubleKind::DownloadFailed,
            Trouble::DiskFull { .. } => TroubleKind::DiskFull,
            Trouble::DataDir { .. } => TroubleKind::DataDir,
            Trouble::StateUnwritable { .. } => TroubleKind::StateUnwritable,
        }
    }

    /// The generation this trouble is about, if one.
    pub fn generation(&self) -> Option<&str> {
        match self {
            Trouble::PointerNamesMissing { id }
            | Trouble::IncompleteGeneration { id, .. }
            | Trouble::DownloadFailed { id, .. }
            | Trouble::DiskFull { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether `other` is the same fault, perhaps told in other words (a request error's
    /// text changes from one try to the next): it is logged and counted once.
    fn same_fault(&self, other: &Trouble) -> bool {
        match (self, other) {
            (
                Trouble::StoreUnreadable { read: a, .. },
                Trouble::StoreUnreadable { read: b, .. },
            ) => a == b,
            (Trouble::UnnamableKey { key: a }, Trouble::UnnamableKey { key: b }) => a == b,
            (a, b) => a.kind() == b.kind() && a.generation() == b.generation(),
        }
    }
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::StoreUnreadable { read, why } => {
                let what = match read {
                    StoreRead::Pointer => "its pointer",
                    StoreRead::Generations => "its list of generations",
                };
                write!(f, "the store cannot be read ({what}): {why}")
            }
            Trouble::PointerInvalid { why } => write!(
                f,
                "the fleet's pointer is not valid ({why}); following the last valid one: move it again with `shikaku fleet promote GEN`"
            ),
            Trouble::PointerNamesMissing { id } => write!(
                f,
                "the fleet's pointer names generation {id}, which is not in the store; publish it again or `shikaku fleet promote` one that is"
            ),
            Trouble::UnnamableKey { key } => write!(
                f,
                "object {} in the store has an empty, `.` or `..` segment or a control character; it was skipped: delete it",
                shown_key(key)
            ),
            Trouble::IncompleteGeneration { id, missing } => write!(
                f,
                "generation {id} is incomplete in the store (its manifest is there, not {}): its publish did not finish; skipped until `shikaku publish --generation {id}` is run again",
                missing.join(", ")
            ),
            Trouble::DownloadFailed { id, why } => write!(f, "generation {id}: {why}"),
            Trouble::DiskFull {
                id,
                needed_bytes,
                free_bytes,
            } => write!(
                f,
                "generation {id} needs {needed_bytes} bytes more on the data directory's file system, which has {free_bytes} free: free some space or grow it"
            ),
            Trouble::DataDir { why } => write!(f, "the data directory: {why}"),
            Trouble::StateUnwritable { why } => {
                write!(f, "cannot write this replica's state to the store: {why}")
            }
        }
    }
}

/// A key from the store as a message shows it: whole, quoted, any run of 12 digits masked
/// (a key is anyone's text).
pub fn shown_key(key: &str) -> String {
    format!("{:?}", mask_digit_runs(key))
}

/// The troubles of the moment, and how many of each kind ever began.
#[derive(Debug, Default, Clone)]
pub struct Troubles {
    now: Vec<Trouble>,
    began: BTreeMap<TroubleKind, u64>,
}

impl Troubles {
    pub fn now(&self) -> &[Trouble] {
        &self.now
    }

    /// Troubles of `kind` that ever began.
    pub fn began(&self, kind: TroubleKind) -> u64 {
        self.began.get(&kind).copied().unwrap_or(0)
    }

    /// What one check found: every trouble `owned` says is its own is replaced by `found`.
    /// A fault new to this set is logged and counted; one gone is logged as over.
    pub fn settle(&mut self, owned: impl Fn(&Trouble) -> bool, found: Vec<Trouble>) {
        let (mine, others): (Vec<Trouble>, Vec<Trouble>) = std::mem::take(&mut self.now)
            .into_iter()
            .partition(|t| owned(t));
        self.now = others;
        for t in &mine {
            if !found.iter().any(|n| n.same_fault(t)) {
                tracing::info!(kind = t.kind().name(), "fleet trouble over: {t}");
            }
        }
        for t in found {
            if !mine.iter().any(|o| o.same_fault(&t)) {
                tracing::warn!(kind = t.kind().name(), "fleet trouble: {t}");
                *self.began.entry(t.kind()).or_default() += 1;
            }
            if !self.now.iter().any(|o| o.same_fault(&t)) {
                self.now.push(t);
            }
        }
    }

    /// Sets (or, with `None`, ends) the one trouble of `kind`.
    pub fn settle_kind(&mut self, kind: TroubleKind, found: Option<Trouble>) {
        self.settle(|t| t.kind() == kind, found.into_iter().collect());
    }

    /// The troubles as one line, for the replica's state object; `None` without any.
    pub fn summary(&self) -> Option<String> {
        (!self.now.is_empty()).then(|| {
            self.now
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_begins_once_and_ends_when_its_check_no_longer_finds_it() {
        let mut t = Troubles::default();
        let down = |why: &str| Trouble::StoreUnreadable {
            read: StoreRead::Pointer,
            why: why.into(),
        };
        t.settle_kind(TroubleKind::StoreUnreadable, Some(down("refused")));
        t.settle_kind(TroubleKind::StoreUnreadable, Some(down("timed out")));
        assert_eq!(t.began(TroubleKind::StoreUnreadable), 1);
        assert_eq!(t.now(), [down("timed out")]);
        let key = |k: &str| Trouble::UnnamableKey { key: k.into() };
        let unnamable = |t: &Trouble| t.kind() == TroubleKind::UnnamableKey;
        t.settle(unnamable, vec![key("a/../b"), key("a//b")]);
        t.settle(unnamable, vec![key("a//b")]);
        assert_eq!(t.began(TroubleKind::UnnamableKey), 2);
        assert_eq!(t.now().len(), 2, "{:?}", t.now());
        t.settle_kind(TroubleKind::StoreUnreadable, None);
        t.settle(unnamable, vec![]);
        assert!(t.now().is_empty() && t.summary().is_none());
    }
}
