//! The fleet's promote policy against a model store that keeps conditional writes as S3
//! does: random sequences of publishes (base or change generations, built on any
//! generation), replicas becoming ready, operators' promotes, rollbacks and pins, and policy
//! changes, with the policy applied between them; after each step the pointer is what a
//! naive reading of the policy says.

use bytes::Bytes;
use proptest::prelude::*;
use shikaku::fleet::pointer::{move_pointer, Move, Pointer, Quorum};
use shikaku::fleet::policy::{autopromote, Decision, Policy, Promote};
use shikaku::fleet::remote::{Bucket, Conflict, Downloaded, Fetched, Listed, Listing, Put};
use shikaku::fleet::{keys, FleetError, ReplicaState};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Objects with e-tags (a counter), conditional puts honoured.
#[derive(Default)]
struct Model {
    objects: Mutex<BTreeMap<String, (Bytes, u64)>>,
    next_tag: Mutex<u64>,
}

impl Bucket for Model {
    fn get(&self, key: &str) -> Result<Option<Fetched>, FleetError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects.get(key).map(|(b, tag)| Fetched {
            bytes: b.clone(),
            e_tag: Some(tag.to_string()),
        }))
    }

    fn put(
        &self,
        key: &str,
        bytes: Bytes,
        how: Put,
    ) -> Result<Result<Option<String>, Conflict>, FleetError> {
        let mut objects = self.objects.lock().unwrap();
        let there = objects.get(key).map(|(_, t)| t.to_string());
        let ok = match how {
            Put::Overwrite => true,
            Put::Create => there.is_none(),
            Put::IfMatch(t) => there == Some(t),
        };
        if !ok {
            return Ok(Err(Conflict));
        }
        let mut next = self.next_tag.lock().unwrap();
        *next += 1;
        objects.insert(key.to_owned(), (bytes, *next));
        Ok(Ok(Some(next.to_string())))
    }

    fn list(&self, dir: &str) -> Result<Listing, FleetError> {
        let under = format!("{dir}/");
        let objects = self.objects.lock().unwrap();
        Ok(Listing {
            objects: objects
                .iter()
                .filter(|(k, _)| k.starts_with(&under))
                .map(|(k, (b, _))| Listed {
                    key: k.clone(),
                    bytes: b.len() as u64,
                    modified_ms: 0,
                })
                .collect(),
            unnamable: Vec::new(),
        })
    }

    fn download_file(
        &self,
        key: &str,
        _: &Path,
        _: u64,
        _: &mut dyn FnMut(),
    ) -> Result<Downloaded, FleetError> {
        unreachable!("the policy downloads nothing ({key})")
    }
}

const GENERATIONS: usize = 6;
const REPLICAS: [&str; 2] = ["r1", "r2"];

fn id(i: usize) -> String {
    format!("g{i:02}")
}

#[derive(Debug, Clone)]
enum Step {
    /// Generation i, a layer or a base, built on generation `parent`.
    Publish {
        i: usize,
        layer: bool,
        parent: usize,
    },
    Ready {
        replica: usize,
        i: usize,
    },
    Promote(usize),
    Rollback,
    Pin(usize),
    Policy(Promote),
    Apply,
}

fn step() -> impl Strategy<Value = Step> {
    let g = 0..GENERATIONS;
    prop_oneof![
        // Mostly built on the generation before (as a builder does), else on any.
        3 => (g.clone(), any::<bool>(), g.clone(), prop::bool::weighted(0.75)).prop_map(|(i, layer, any, before)| {
            Step::Publish { i, layer, parent: if before { i.saturating_sub(1) } else { any } }
        }),
        4 => (0..REPLICAS.len(), g.clone()).prop_map(|(replica, i)| Step::Ready { replica, i }),
        1 => g.clone().prop_map(Step::Promote),
        1 => Just(Step::Rollback),
        1 => g.prop_map(Step::Pin),
        1 => prop_oneof![Just(Promote::Manual), Just(Promote::AutoChanges), Just(Promote::AutoAll)].prop_map(Step::Policy),
        6 => Just(Step::Apply),
    ]
}

fn publish(m: &Model, i: usize, layer: bool, parent: usize) {
    let g = id(i);
    let manifest = serde_json::json!({
        "format": 1, "generation": g,
        "files": [{"path": "index.shk", "bytes": 1, "xxh3": "0123456789abcdef"}],
        "generation_kind": if layer { "layer" } else { "base" },
        "parent": id(parent),
    });
    m.put(
        &keys::generation_file(&g, "index.shk"),
        Bytes::from_static(b"x"),
        Put::Overwrite,
    )
    .unwrap()
    .unwrap();
    m.put(
        &keys::manifest(&g),
        serde_json::to_vec(&manifest).unwrap().into(),
        Put::Create,
    )
    .unwrap()
    .ok();
}

fn ready(m: &Model, replica: &str, i: usize) {
    let key = keys::replica(replica);
    let mut state = m
        .get(&key)
        .unwrap()
        .map(|f| serde_json::from_slice::<ReplicaState>(&f.bytes).unwrap())
        .unwrap_or(ReplicaState {
            format: 1,
            replica: replica.into(),
            ready: vec![],
            live: None,
            at_ms: 0,
            trouble: None,
        });
    if !state.holds(&id(i)) {
        state.ready.push(id(i));
    }
    state.write(m).unwrap();
}

fn pointer(m: &Model) -> Option<Pointer> {
    Pointer::read(m).unwrap().map(|r| r.pointer)
}

/// What the policy should do, read naively from the store: the generation it promotes.
fn expected(m: &Model, policy: Promote) -> Option<String> {
    let p = pointer(m)?;
    if policy == Promote::Manual || p.pinned {
        return None;
    }
    let mut first = None;
    for i in 0..GENERATIONS {
        let g = id(i);
        let Some(got) = m.get(&keys::manifest(&g)).unwrap() else {
            continue;
        };
        let man: serde_json::Value = serde_json::from_slice(&got.bytes).unwrap();
        let allowed = match policy {
            Promote::AutoChanges => man["generation_kind"] == "layer",
            _ => true,
        };
        if g > p.live
            && Some(&g) != p.rolled_back_from.as_ref()
            && man["parent"] == p.live.as_str()
            && allowed
        {
            first = Some(g);
            break;
        }
    }
    let g = first?;
    let states = ReplicaState::read_all(m).unwrap();
    (!states.is_empty() && states.iter().all(|r| r.holds(&g))).then_some(g)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_policy_promotes_exactly_what_it_says(steps in prop::collection::vec(step(), 1..40)) {
        let m = Model::default();
        publish(&m, 0, false, 0);
        for r in REPLICAS {
            ready(&m, r, 0);
        }
        move_pointer(&m, &Move::Promote { id: id(0), unpin: false }, Quorum::All).unwrap();
        let mut policy = Promote::Manual;
        for s in steps {
            let before = pointer(&m).unwrap();
            match s {
                Step::Publish { i, layer, parent } => publish(&m, i, layer, parent),
                Step::Ready { replica, i } => ready(&m, REPLICAS[replica], i),
                Step::Promote(i) => {
                    let _ = move_pointer(&m, &Move::Promote { id: id(i), unpin: true }, Quorum::AtLeast(0));
                }
                Step::Pin(i) => {
                    let _ = move_pointer(&m, &Move::Pin { id: id(i) }, Quorum::AtLeast(0));
                }
                Step::Rollback => {
                    if move_pointer(&m, &Move::Rollback, Quorum::AtLeast(0)).is_ok() {
                        let after = pointer(&m).unwrap();
                        // Back to the generation before, exactly; the one left is recorded.
                        prop_assert_eq!(Some(after.live), before.previous.clone());
                        prop_assert_eq!(after.rolled_back_from, Some(before.live.clone()));
                    }
                }
                Step::Policy(p) => {
                    policy = p;
                    Policy::new(p, None).write(&m).unwrap();
                }
                Step::Apply => {
                    let want = expected(&m, policy);
                    let decision = autopromote(&m).unwrap();
                    let after = pointer(&m).unwrap();
                    match want {
                        Some(g) => {
                            prop_assert!(matches!(decision, Decision::Promoted(_)), "{:?}", decision);
                            prop_assert_eq!(&after.live, &g);
                            prop_assert_eq!(after.previous.as_deref(), Some(before.live.as_str()));
                            prop_assert_eq!(after.rolled_back_from, None);
                        }
                        None => {
                            prop_assert!(!matches!(decision, Decision::Promoted(_)), "{:?}", decision);
                            prop_assert_eq!(after, before);
                        }
                    }
                }
            }
        }
    }
}

/// A pointer moved by an operator between the policy's read and its write is not replaced.
#[test]
fn an_operators_move_in_between_wins() {
    let m = Model::default();
    for i in 0..3 {
        publish(&m, i, i == 1, 0);
        for r in REPLICAS {
            ready(&m, r, i);
        }
    }
    move_pointer(
        &m,
        &Move::Promote {
            id: id(0),
            unpin: false,
        },
        Quorum::All,
    )
    .unwrap();
    Policy::new(Promote::AutoChanges, None).write(&m).unwrap();
    let read = Pointer::read(&m).unwrap();
    move_pointer(
        &m,
        &Move::Promote {
            id: id(2),
            unpin: false,
        },
        Quorum::All,
    )
    .unwrap();
    let late = shikaku::fleet::pointer::move_from(
        &m,
        read,
        &Move::Promote {
            id: id(1),
            unpin: false,
        },
        Quorum::All,
    );
    assert!(matches!(late, Err(FleetError::PointerRace)), "{late:?}");
    assert_eq!(pointer(&m).unwrap().live, id(2));
    // The policy, looking now, finds nothing built on g02.
    assert!(matches!(autopromote(&m).unwrap(), Decision::Idle { .. }));
}

/// After a rollback the policy leaves the fleet on the parent, though the generation rolled
/// back from is still a ready change generation built on it; a promote by hand resumes it.
#[test]
fn a_rolled_back_generation_is_not_promoted_again() {
    let m = Model::default();
    for i in 0..3 {
        publish(&m, i, i > 0, i.saturating_sub(1));
        for r in REPLICAS {
            ready(&m, r, i);
        }
    }
    move_pointer(
        &m,
        &Move::Promote {
            id: id(0),
            unpin: false,
        },
        Quorum::All,
    )
    .unwrap();
    Policy::new(Promote::AutoChanges, None).write(&m).unwrap();
    let promoted = |d: Decision| match d {
        Decision::Promoted(p) => Some(p.live),
        _ => None,
    };
    assert_eq!(promoted(autopromote(&m).unwrap()), Some(id(1)));
    move_pointer(&m, &Move::Rollback, Quorum::All).unwrap();
    assert_eq!(promoted(autopromote(&m).unwrap()), None);
    assert_eq!(pointer(&m).unwrap().live, id(0));
    move_pointer(
        &m,
        &Move::Promote {
            id: id(1),
            unpin: false,
        },
        Quorum::All,
    )
    .unwrap();
    assert_eq!(promoted(autopromote(&m).unwrap()), Some(id(2)));
    // Pinned, nothing moves.
    publish(&m, 3, true, 2);
    for r in REPLICAS {
        ready(&m, r, 3);
    }
    move_pointer(&m, &Move::Pin { id: id(2) }, Quorum::All).unwrap();
    assert_eq!(promoted(autopromote(&m).unwrap()), None);
}
