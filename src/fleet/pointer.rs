//! The fleet's pointer, `pointer.json`: the generation every replica serves, and the one
//! before it. It moves only by a conditional write against the e-tag it was read with, so of
//! two operators acting on the same state one wins and the other is told to look again.
//!
//! `promote` moves it to a generation every registered replica (or `--quorum N` of them)
//! holds ready; `rollback` moves it back to the previous one (which retention keeps
//! everywhere); `pin` moves it to any ready generation and holds it there: `promote` refuses
//! while pinned unless told to unpin.

use super::remote::{Bucket, Put};
use super::replica::ReplicaState;
use super::{keys, unix_now_ms, FleetError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub format: u32,
    pub live: String,
    pub previous: Option<String>,
    pub pinned: bool,
    /// When it last moved (ms since the Unix epoch).
    pub changed_at_ms: u64,
    /// The generation a `rollback` left: the promote policy never makes it live again (only
    /// the operator can, with `promote`). Cleared when the pointer next moves forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<String>,
}

/// The pointer as read, with the e-tag to write it back against.
#[derive(Debug, Clone)]
pub struct Read {
    pub pointer: Pointer,
    pub e_tag: Option<String>,
}

impl Pointer {
    pub fn read(remote: &dyn Bucket) -> Result<Option<Read>, FleetError> {
        let Some(got) = remote.get(keys::POINTER)? else {
            return Ok(None);
        };
        let pointer: Pointer =
            serde_json::from_slice(&got.bytes).map_err(|e| FleetError::BadObject {
                key: keys::POINTER.into(),
                why: format!("not a pointer: {e}"),
            })?;
        if !crate::generations::valid_id(&pointer.live) {
            return Err(FleetError::BadObject {
                key: keys::POINTER.into(),
                why: "its live generation is not a generation id".into(),
            });
        }
        Ok(Some(Read {
            pointer,
            e_tag: got.e_tag,
        }))
    }

    /// Replaces the pointer read as `was` (none: there was none) with `self`.
    fn write_over(&self, remote: &dyn Bucket, was: Option<&Read>) -> Result<(), FleetError> {
        let how = match was {
            None => Put::Create,
            Some(Read { e_tag: Some(t), .. }) => Put::IfMatch(t.clone()),
            Some(Read { e_tag: None, .. }) => {
                return Err(FleetError::BadObject {
                    key: keys::POINTER.into(),
                    why: "the store gave it no e-tag, so it cannot be replaced safely".into(),
                })
            }
        };
        let body = serde_json::to_vec_pretty(self).expect("a pointer serializes");
        remote
            .put(keys::POINTER, body.into(), how)?
            .map_err(|_| FleetError::PointerRace)?;
        Ok(())
    }
}

/// How many replicas must hold a generation before the pointer may name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// Every registered replica (at least one).
    All,
    AtLeast(usize),
}

/// Refuses unless enough replicas hold `id` ready.
fn check_ready(replicas: &[ReplicaState], id: &str, quorum: Quorum) -> Result<(), FleetError> {
    let needed = match quorum {
        Quorum::All if replicas.is_empty() => return Err(FleetError::NoReplicas),
        Quorum::All => replicas.len(),
        Quorum::AtLeast(n) => n,
    };
    let ready = replicas.iter().filter(|r| r.holds(id)).count();
    if ready < needed {
        let missing: Vec<&str> = replicas
            .iter()
            .filter(|r| !r.holds(id))
            .map(|r| r.replica.as_str())
            .collect();
        return Err(FleetError::NotReady {
            id: id.to_owned(),
            ready,
            needed,
            missing: if missing.is_empty() {
                "none registered".into()
            } else {
                missing.join(", ")
            },
        });
    }
    Ok(())
}

/// Refuses unless generation `id` is in the store whole: its manifest, and every file the
/// manifest names in the generation's directory (a publish interrupted by an older shikaku,
/// which wrote the manifest before the report, left one without).
fn require_stored(remote: &dyn Bucket, id: &str) -> Result<(), FleetError> {
    let key = keys::manifest(id);
    let got = match crate::generations::valid_id(id) {
        true => remote.get(&key)?,
        false => None,
    };
    let Some(got) = got else {
        return Err(FleetError::NotInStore {
            id: id.to_owned(),
            key,
        });
    };
    let manifest = super::Manifest::parse(&got.bytes, &key, id)?;
    let listing = super::publish::list_generations_of(remote, id)?;
    let missing = listing.missing(&manifest);
    if !missing.is_empty() {
        return Err(FleetError::Incomplete {
            id: id.to_owned(),
            missing: missing.join(", "),
        });
    }
    Ok(())
}

/// What to do with the pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    Promote { id: String, unpin: bool },
    Rollback,
    Pin { id: String },
}

/// Moves the pointer as asked, after the checks; returns the pointer written.
pub fn move_pointer(
    remote: &dyn Bucket,
    how: &Move,
    quorum: Quorum,
) -> Result<Pointer, FleetError> {
    let was = Pointer::read(remote)?;
    move_from(remote, was, how, quorum)
}

/// Moves the pointer read as `was` (none: there is none yet) as asked, after the checks: a
/// pointer moved since it was read is not replaced ([`FleetError::PointerRace`]).
pub fn move_from(
    remote: &dyn Bucket,
    was: Option<Read>,
    how: &Move,
    quorum: Quorum,
) -> Result<Pointer, FleetError> {
    let current = was.as_ref().map(|r| &r.pointer);
    let (target, pinned) = match how {
        Move::Promote { id, unpin } => {
            if let Some(p) = current.filter(|p| p.pinned && !unpin) {
                return Err(FleetError::Pinned {
                    live: p.live.clone(),
                });
            }
            (id.clone(), false)
        }
        Move::Pin { id } => (id.clone(), true),
        Move::Rollback => {
            let p = current.ok_or(FleetError::NoPointer)?;
            // A pin holds the fleet where it is: promote refuses, and so does rollback.
            if p.pinned {
                return Err(FleetError::PinnedRollback {
                    live: p.live.clone(),
                });
            }
            let previous = p
                .previous
                .clone()
                .ok_or_else(|| FleetError::NothingBefore {
                    live: p.live.clone(),
                })?;
            (previous, p.pinned)
        }
    };
    if current.is_some_and(|p| p.live == target && p.pinned == pinned) {
        return Err(FleetError::AlreadyLive { id: target });
    }
    require_stored(remote, &target)?;
    check_ready(&ReplicaState::read_all(remote)?, &target, quorum)?;
    let previous = match how {
        // Back from a rollback there is no generation before: the one before the previous was
        // let go when the fleet moved past it.
        Move::Rollback => None,
        _ => current
            .map(|p| p.live.clone())
            .filter(|live| *live != target),
    };
    let rolled_back_from = match how {
        Move::Rollback => current.map(|p| p.live.clone()),
        _ => None,
    };
    let pointer = Pointer {
        format: 1,
        live: target,
        previous,
        pinned,
        changed_at_ms: unix_now_ms(),
        rolled_back_from,
    };
    pointer.write_over(remote, was.as_ref())?;
    Ok(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: &str, ready: &[&str]) -> ReplicaState {
        ReplicaState {
            format: 1,
            replica: id.into(),
            ready: ready.iter().map(|s| s.to_string()).collect(),
            live: None,
            at_ms: 0,
            trouble: None,
        }
    }

    fn check(replicas: &[ReplicaState], quorum: Quorum, ok: bool) {
        assert_eq!(
            check_ready(replicas, "g2", quorum).is_ok(),
            ok,
            "{replicas:?} {quorum:?}"
        );
    }

    #[test]
    fn readiness() {
        let a = replica("a", &["g1", "g2"]);
        let b = replica("b", &["g1"]);
        check(&[], Quorum::All, false);
        check(&[], Quorum::AtLeast(0), true);
        check(std::slice::from_ref(&a), Quorum::All, true);
        check(&[a.clone(), b.clone()], Quorum::All, false);
        check(&[a.clone(), b.clone()], Quorum::AtLeast(1), true);
        check(&[a, b], Quorum::AtLeast(2), false);
    }
}
