//! The fleet's promote policy, `policy.json`: whether a generation goes live on every replica
//! without an operator's `fleet promote`. `manual` (also when there is no policy object):
//! only the operator moves the pointer. `auto-changes`: a change generation (`layer` in its
//! manifest) built on the live generation is promoted once every registered replica (or the
//! policy's quorum) holds it ready; a base generation (a new snapshot, a full or folded
//! build) still waits for the operator. `auto-all`: any generation built on the live one.
//!
//! The publisher applies it (`shikaku build --watch --publish`, after each upload and on
//! each of its idle polls while a generation waits): it is the one process that knows when a
//! generation went up, there is one of it (no election among replicas, none of which then
//! needs to write the pointer), and it moves the pointer as an operator does, by a
//! conditional write against the pointer it decided on, so an operator's command in between
//! wins and the policy looks again. A pinned fleet is never moved. A rollback records the
//! generation it left (`Pointer::rolled_back_from`), which the policy never promotes again,
//! and every later generation of the builder descends from it, so none is built on the live
//! one: after a rollback the fleet stays where the operator put it until the operator
//! promotes a generation by hand, and the policy goes on from there.

use super::pointer::{move_from, Move, Pointer, Quorum};
use super::publish::list_generations;
use super::remote::{Bucket, Put};
use super::{keys, unix_now_ms, FleetError, Manifest};
use serde::{Deserialize, Serialize};

/// Which generations go live without the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Promote {
    /// Only `shikaku fleet promote` moves the fleet.
    Manual,
    /// Change generations built on the live one, once ready; bases wait for the operator.
    AutoChanges,
    /// Every generation built on the live one, once ready.
    AutoAll,
}

impl Promote {
    pub fn as_str(self) -> &'static str {
        match self {
            Promote::Manual => "manual",
            Promote::AutoChanges => "auto-changes",
            Promote::AutoAll => "auto-all",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub format: u32,
    pub promote: Promote,
    /// Replicas that must hold a generation ready; none: every registered replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<usize>,
    /// When it was set (ms since the Unix epoch).
    pub set_at_ms: u64,
}

impl Policy {
    pub fn new(promote: Promote, quorum: Option<usize>) -> Policy {
        Policy {
            format: 1,
            promote,
            quorum,
            set_at_ms: unix_now_ms(),
        }
    }

    /// The store's policy; `manual` when it has none.
    pub fn read(remote: &dyn Bucket) -> Result<Policy, FleetError> {
        let Some(got) = remote.get(keys::POLICY)? else {
            return Ok(Policy::new(Promote::Manual, None));
        };
        serde_json::from_slice(&got.bytes).map_err(|e| FleetError::BadObject {
            key: keys::POLICY.into(),
            why: format!("not a promote policy: {e}; set one with `shikaku fleet policy`"),
        })
    }

    pub fn write(&self, remote: &dyn Bucket) -> Result<(), FleetError> {
        let body = serde_json::to_vec_pretty(self).expect("a policy serializes");
        remote
            .put(keys::POLICY, body.into(), Put::Overwrite)?
            .map_err(|_| FleetError::PointerRace)?;
        Ok(())
    }

    fn quorum(&self) -> Quorum {
        self.quorum.map_or(Quorum::All, Quorum::AtLeast)
    }

    /// Whether the policy may promote the generation `manifest` describes over `live`.
    fn allows(&self, manifest: &Manifest, live: &str) -> bool {
        match self.promote {
            Promote::Manual => false,
            Promote::AutoChanges => manifest.is_layer_on(live),
            Promote::AutoAll => manifest.is_child_of(live),
        }
    }
}

/// What one look at the fleet decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The pointer now names this generation.
    Promoted(Pointer),
    /// A generation the policy would promote is not ready on enough replicas yet.
    Waiting { id: String, why: String },
    /// Nothing for the policy to do, and why.
    Idle { why: String },
}

fn idle(why: impl Into<String>) -> Result<Decision, FleetError> {
    Ok(Decision::Idle { why: why.into() })
}

/// Applies the store's policy once: promotes the oldest generation built on the live one
/// that the policy allows, is whole in the store and ready on enough replicas.
pub fn autopromote(remote: &dyn Bucket) -> Result<Decision, FleetError> {
    let policy = Policy::read(remote)?;
    if policy.promote == Promote::Manual {
        return idle("the promote policy is manual");
    }
    let Some(read) = Pointer::read(remote)? else {
        return idle("no pointer yet: the first generation is promoted by hand");
    };
    let p = read.pointer.clone();
    if p.pinned {
        return idle(format!("the fleet is pinned to {}", p.live));
    }
    let stored = list_generations(remote)?;
    let mut passed_over = None;
    for id in stored.ids().into_iter().filter(|g| *g > p.live) {
        if p.rolled_back_from.as_deref() == Some(id.as_str()) {
            continue;
        }
        let key = keys::manifest(&id);
        let Some(got) = remote.get(&key)? else {
            continue; // removed since the listing
        };
        let manifest = Manifest::parse(&got.bytes, &key, &id)?;
        if !manifest.is_child_of(&p.live) || !stored.missing(&manifest).is_empty() {
            continue;
        }
        if !policy.allows(&manifest, &p.live) {
            passed_over = Some(id);
            continue;
        }
        let how = Move::Promote {
            id: id.clone(),
            unpin: false,
        };
        return match move_from(remote, Some(read), &how, policy.quorum()) {
            Ok(pointer) => Ok(Decision::Promoted(pointer)),
            Err(e @ (FleetError::NotReady { .. } | FleetError::NoReplicas)) => {
                Ok(Decision::Waiting {
                    id,
                    why: e.to_string(),
                })
            }
            Err(FleetError::PointerRace) => idle("the pointer moved meanwhile"),
            Err(e) => Err(e),
        };
    }
    match passed_over {
        Some(id) => idle(format!(
            "generation {id} is a base generation: it waits for `shikaku fleet promote {id}` (policy {})",
            policy.promote.as_str()
        )),
        None => idle(format!("no generation built on the live one {}", p.live)),
    }
}
