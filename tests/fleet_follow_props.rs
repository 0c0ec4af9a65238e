//! The follower against a model store that returns every fault of issue 27 (proptest): the
//! store down, a pointer that is not valid or names a generation the store lacks, a key the
//! client cannot name, a generation whose publish did not finish, a file that does not match
//! its manifest, a disk without room; in any order, any of them at once, each put right or
//! not. After each state of the store, a few ticks later: each fault present is named by its
//! kind (and only then), troubles about generations name only generations still wanted, every
//! sound generation the fleet keeps is taken past the faulty ones, and the pointer's live
//! generation is served once held. The real generations are the demo's, built once.

mod fleet_support;

use bytes::Bytes;
use fleet_support::build_generation;
use proptest::prelude::*;
use shikaku::fleet::follow::{Follower, Pace, Seen};
use shikaku::fleet::remote::{Bucket, Conflict, Downloaded, Fetched, Listed, Listing, Put};
use shikaku::fleet::retention::kept;
use shikaku::fleet::trouble::{Trouble, TroubleKind};
use shikaku::fleet::{keys, FleetError, Manifest, Pointer, ReplicaState};
use shikaku::generations::Store;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Generations in the model store.
const GENERATIONS: usize = 3;
/// Ticks after each change of the store: one a generation, and one more.
const TICKS: usize = GENERATIONS + 1;
const UNNAMABLE: &str = "generations/../evil";
/// A valid id no generation has (newer than all).
const MISSING: &str = "g29990101-000000-000";

/// The demo's generations, built once: each one's objects as a store holds them.
struct Built {
    ids: Vec<String>,
    objects: Vec<BTreeMap<String, Bytes>>,
    _dir: tempfile::TempDir,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..GENERATIONS)
            .map(|_| build_generation(dir.path()))
            .collect();
        let store = Store::new(dir.path());
        let objects = ids
            .iter()
            .map(|id| {
                let m = Manifest::of_local(&store, id).unwrap();
                let mut out = BTreeMap::new();
                for f in &m.files {
                    let bytes = std::fs::read(store.generation_dir(id).join(&f.path)).unwrap();
                    let key = match f.path.strip_prefix("segments/") {
                        Some(name) => keys::segment(name),
                        None => keys::generation_file(id, &f.path),
                    };
                    out.insert(key, Bytes::from(bytes));
                }
                out.insert(keys::manifest(id), Bytes::from(m.to_json()));
                out
            })
            .collect();
        Built {
            ids,
            objects,
            _dir: dir,
        }
    })
}

/// What the model store holds of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Absent,
    Whole,
    /// The manifest without the report: a publish that did not finish.
    Incomplete,
    /// Its main file differs from its manifest.
    Corrupt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PointerObject {
    Absent,
    /// Live generation, and the previous one.
    Names(usize, Option<usize>),
    NotJson,
    NamesMissing,
}

/// One state of the store (and of the replica's disk).
#[derive(Debug, Clone)]
struct State {
    down: bool,
    pointer: PointerObject,
    held: [Held; GENERATIONS],
    unnamable: bool,
    disk_full: bool,
}

fn state() -> impl Strategy<Value = State> {
    let held = prop_oneof![
        2 => Just(Held::Whole),
        1 => Just(Held::Absent),
        1 => Just(Held::Incomplete),
        1 => Just(Held::Corrupt),
    ];
    let generation = 0..GENERATIONS;
    let pointer = prop_oneof![
        1 => Just(PointerObject::Absent),
        3 => (generation.clone(), proptest::option::of(generation))
            .prop_map(|(l, p)| PointerObject::Names(l, p.filter(|p| *p != l))),
        1 => Just(PointerObject::NotJson),
        1 => Just(PointerObject::NamesMissing),
    ];
    (
        prop::bool::weighted(0.15),
        pointer,
        prop::array::uniform3(held),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(down, pointer, held, unnamable, disk_full)| State {
            down,
            pointer,
            held,
            unnamable,
            disk_full,
        })
}

/// The model store: objects by key, and whether it answers at all.
#[derive(Default)]
struct Model {
    objects: Mutex<BTreeMap<String, Bytes>>,
    down: Mutex<bool>,
    unnamable: Mutex<bool>,
    /// Runs as a main file downloads, given what the follower does meanwhile: a slow
    /// download, and what happens during it.
    slow: Mutex<Option<Slow>>,
}

type Slow = Box<dyn FnMut(&mut dyn FnMut()) + Send>;

struct ModelBucket(Arc<Model>);

impl ModelBucket {
    fn answer(&self, op: &'static str, key: &str) -> Result<(), FleetError> {
        if !*self.0.down.lock().unwrap() {
            return Ok(());
        }
        Err(FleetError::Request {
            op,
            key: key.to_owned(),
            source: object_store::Error::Generic {
                store: "model",
                source: "the model store is down".into(),
            },
        })
    }

    fn object(&self, key: &str) -> Option<Bytes> {
        self.0.objects.lock().unwrap().get(key).cloned()
    }
}

impl Bucket for ModelBucket {
    fn get(&self, key: &str) -> Result<Option<Fetched>, FleetError> {
        self.answer("GET", key)?;
        Ok(self.object(key).map(|bytes| Fetched {
            e_tag: Some(format!("{}", bytes.len())),
            bytes,
        }))
    }

    fn put(
        &self,
        key: &str,
        bytes: Bytes,
        _how: Put,
    ) -> Result<Result<Option<String>, Conflict>, FleetError> {
        self.answer("PUT", key)?;
        self.0.objects.lock().unwrap().insert(key.to_owned(), bytes);
        Ok(Ok(None))
    }

    fn list(&self, dir: &str) -> Result<Listing, FleetError> {
        self.answer("LIST", dir)?;
        let under = format!("{dir}/");
        let objects = self.0.objects.lock().unwrap();
        let mut out = Listing {
            objects: objects
                .iter()
                .filter(|(k, _)| k.starts_with(&under))
                .map(|(k, v)| Listed {
                    key: k.clone(),
                    bytes: v.len() as u64,
                    modified_ms: 0,
                })
                .collect(),
            unnamable: Vec::new(),
        };
        if *self.0.unnamable.lock().unwrap() && UNNAMABLE.starts_with(&under) {
            out.unnamable.push(UNNAMABLE.to_owned());
        }
        Ok(out)
    }

    fn download_file(
        &self,
        key: &str,
        dest: &Path,
        bytes_max: u64,
        meanwhile: &mut dyn FnMut(),
    ) -> Result<Downloaded, FleetError> {
        self.answer("GET", key)?;
        if key.ends_with("index.shk") {
            if let Some(slow) = self.0.slow.lock().unwrap().as_mut() {
                slow(meanwhile);
            }
        }
        let bytes = self.object(key).ok_or_else(|| FleetError::BadObject {
            key: key.to_owned(),
            why: "it is missing from the store".into(),
        })?;
        if bytes.len() as u64 > bytes_max {
            return Err(FleetError::BadObject {
                key: key.to_owned(),
                why: "longer than its manifest gives".into(),
            });
        }
        std::fs::write(dest, &bytes).map_err(|e| FleetError::Io {
            path: dest.display().to_string(),
            source: e,
        })?;
        let (bytes, xxh3) = shikaku::fleet::remote::file_xxh3(dest)?;
        Ok(Downloaded {
            bytes,
            xxh3,
            resumed_bytes: 0,
        })
    }
}

thread_local! {
    /// The free bytes the follower is told its disk has.
    static FREE_BYTES: Cell<u64> = const { Cell::new(u64::MAX) };
}

fn free_bytes(_: &Path) -> std::io::Result<u64> {
    Ok(FREE_BYTES.with(Cell::get))
}

impl Model {
    /// Makes the store hold `s`.
    fn set(&self, s: &State, ids: &[String]) {
        let b = built();
        let mut objects = self.objects.lock().unwrap();
        objects.retain(|k, _| k.starts_with(keys::REPLICAS));
        for (i, held) in s.held.iter().enumerate() {
            if *held == Held::Absent {
                continue;
            }
            objects.extend(b.objects[i].clone());
            let id = &ids[i];
            if *held == Held::Incomplete {
                objects.remove(&keys::generation_file(id, "report.json"));
            }
            if *held == Held::Corrupt {
                let key = keys::generation_file(id, "index.shk");
                let mut bad = objects[&key].to_vec();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                objects.insert(key, bad.into());
            }
        }
        let pointer = |live: &str, previous: Option<&str>| {
            let p = Pointer {
                format: 1,
                live: live.to_owned(),
                previous: previous.map(str::to_owned),
                pinned: false,
                changed_at_ms: 0,
                rolled_back_from: None,
            };
            Bytes::from(serde_json::to_vec(&p).unwrap())
        };
        let body = match s.pointer {
            PointerObject::Absent => None,
            PointerObject::Names(l, p) => Some(pointer(&ids[l], p.map(|p| ids[p].as_str()))),
            PointerObject::NotJson => Some(Bytes::from_static(b"{ not json")),
            PointerObject::NamesMissing => Some(pointer(MISSING, None)),
        };
        if let Some(body) = body {
            objects.insert(keys::POINTER.to_owned(), body);
        }
        *self.down.lock().unwrap() = s.down;
        *self.unnamable.lock().unwrap() = s.unnamable;
        FREE_BYTES.with(|f| f.set(if s.disk_full { 0 } else { u64::MAX }));
    }
}

/// What the checks remember across the states of one case.
#[derive(Default)]
struct Expect {
    /// The pointer the follower follows: the last valid one read.
    pointer: Option<Pointer>,
    /// Generations whose download may have failed (waiting out a backoff longer than a case).
    maybe_failed: BTreeSet<String>,
}

fn kinds(troubles: &[Trouble], kind: TroubleKind) -> Vec<&Trouble> {
    troubles.iter().filter(|t| t.kind() == kind).collect()
}

fn check(s: &State, ids: &[String], follower: &Follower, seen: &Seen, expect: &mut Expect) {
    let troubles = seen.troubles().now();
    let unreadable = kinds(troubles, TroubleKind::StoreUnreadable);
    assert_eq!(!unreadable.is_empty(), s.down, "{troubles:?}");
    if s.down {
        return;
    }
    let local: BTreeSet<String> = follower.store.list().unwrap().into_iter().collect();
    let in_store = |id: &str| {
        ids.iter()
            .zip(s.held)
            .any(|(g, h)| g == id && h != Held::Absent)
    };
    let keeps = |id: &str| expect.pointer.as_ref().is_none_or(|p| kept(p, id));
    let wanted: BTreeSet<&String> = ids
        .iter()
        .filter(|id| in_store(id) && keeps(id) && !local.contains(*id))
        .collect();

    assert_eq!(
        kinds(troubles, TroubleKind::PointerInvalid).len(),
        usize::from(s.pointer == PointerObject::NotJson),
        "{troubles:?}"
    );
    let names_missing = expect.pointer.as_ref().is_some_and(|p| !in_store(&p.live));
    assert_eq!(
        kinds(troubles, TroubleKind::PointerNamesMissing).len(),
        usize::from(names_missing),
        "{troubles:?}"
    );
    assert_eq!(
        kinds(troubles, TroubleKind::UnnamableKey).len(),
        usize::from(s.unnamable),
        "{troubles:?}"
    );
    let incomplete: BTreeSet<&str> = kinds(troubles, TroubleKind::IncompleteGeneration)
        .iter()
        .filter_map(|t| t.generation())
        .collect();
    let expected: BTreeSet<&str> = ids
        .iter()
        .zip(s.held)
        .filter(|(id, h)| *h == Held::Incomplete && wanted.contains(id))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(incomplete, expected, "{troubles:?}");
    for t in kinds(troubles, TroubleKind::DownloadFailed)
        .into_iter()
        .chain(kinds(troubles, TroubleKind::DiskFull))
    {
        let id = t.generation().unwrap().to_owned();
        assert!(
            wanted.contains(&id) && expect.maybe_failed.contains(&id),
            "{t:?}"
        );
    }
    // Every sound generation the fleet keeps is taken, whatever else is wrong.
    for (id, held) in ids.iter().zip(s.held) {
        if held == Held::Whole && keeps(id) && !expect.maybe_failed.contains(id) {
            assert!(local.contains(id), "{id} not taken: {troubles:?}");
        }
    }
    if let Some(p) = expect.pointer.as_ref().filter(|p| local.contains(&p.live)) {
        assert_eq!(follower.store.current().unwrap().as_ref(), Some(&p.live));
    }
}

fn pointer(live: &str, previous: Option<&str>) -> Pointer {
    Pointer {
        format: 1,
        live: live.to_owned(),
        previous: previous.map(str::to_owned),
        pinned: false,
        changed_at_ms: 0,
        rolled_back_from: None,
    }
}

/// A replica restarted while the fleet is at g1 (g0 before it) and g2 is published. Its
/// first tick downloads g2, slowly (4 s for the main file); a second into it the fleet is
/// rolled back to g0. `/healthz` lists g0 and g1 ready from the start, and g0 is live within
/// a second of the rollback, long before the download ends. Before, `ready` stayed empty
/// until the tick ended and the pointer was read only between files, so the rollback waited
/// for the download: this test failed on `ready` ([] at the start of the download).
#[test]
fn a_rollback_mid_download_goes_live_at_once_and_ready_is_said_on_restart() {
    let b = built();
    let (g0, g1, g2) = (&b.ids[0], &b.ids[1], &b.ids[2]);
    let model = Arc::new(Model::default());
    let replica = tempfile::tempdir().unwrap();
    let follower = |model: &Arc<Model>| {
        let mut f = Follower::new(
            Box::new(ModelBucket(model.clone())),
            Store::new(replica.path()),
            shikaku::domain::PersonKey::demo(),
            "r1",
        );
        f.pace.list_every = Duration::ZERO;
        f
    };
    let at_g1 = State {
        down: false,
        pointer: PointerObject::Names(1, Some(0)),
        held: [Held::Whole, Held::Whole, Held::Absent],
        unnamable: false,
        disk_full: false,
    };
    model.set(&at_g1, &b.ids);
    {
        let first = follower(&model);
        let _lock = first.take_data_dir().unwrap();
        let mut seen = Seen::default();
        for _ in 0..TICKS {
            first.tick(&mut seen);
        }
        assert_eq!(first.store.current().unwrap().as_ref(), Some(g1));
    }

    // Restarted, with g2 in the store.
    let mut held = at_g1.clone();
    held.held[2] = Held::Whole;
    model.set(&held, &b.ids);
    let mut restarted = follower(&model);
    restarted.pace.state_every = Duration::from_millis(500);
    let _lock = restarted.take_data_dir().unwrap();
    let health = restarted.health.clone();
    let current = replica.path().join("CURRENT");
    let (started, ready_at_start, rolled, live_after) = (
        Arc::new(Mutex::new(None::<std::time::Instant>)),
        Arc::new(Mutex::new(None::<Vec<String>>)),
        Arc::new(Mutex::new(None::<std::time::Instant>)),
        Arc::new(Mutex::new(None::<Duration>)),
    );
    // The replica's state objects written during the download.
    let states = Arc::new(Mutex::new(Vec::<ReplicaState>::new()));
    let rollback = Bytes::from(serde_json::to_vec(&pointer(g0, None)).unwrap());
    let script = {
        let (model, started, ready_at_start, rolled, live_after, g0, states) = (
            Arc::downgrade(&model),
            started.clone(),
            ready_at_start.clone(),
            rolled.clone(),
            live_after.clone(),
            g0.clone(),
            states.clone(),
        );
        move |meanwhile: &mut dyn FnMut()| {
            let begun = std::time::Instant::now();
            *started.lock().unwrap() = Some(begun);
            *ready_at_start.lock().unwrap() = Some(health.facts().ready);
            while begun.elapsed() < Duration::from_secs(4) {
                std::thread::sleep(Duration::from_millis(20));
                if begun.elapsed() >= Duration::from_secs(1) && rolled.lock().unwrap().is_none() {
                    let model = model.upgrade().unwrap();
                    let mut objects = model.objects.lock().unwrap();
                    objects.insert(keys::POINTER.to_owned(), rollback.clone());
                    *rolled.lock().unwrap() = Some(std::time::Instant::now());
                }
                let at = *rolled.lock().unwrap();
                let live = std::fs::read_to_string(&current).unwrap_or_default();
                let mut after = live_after.lock().unwrap();
                if let (Some(at), true, None) = (at, live.trim() == g0, *after) {
                    *after = Some(at.elapsed());
                }
                drop(after);
                meanwhile();
                let written = model
                    .upgrade()
                    .unwrap()
                    .objects
                    .lock()
                    .unwrap()
                    .get(&keys::replica("r1"))
                    .cloned();
                let state = written.map(|b| serde_json::from_slice::<ReplicaState>(&b).unwrap());
                let mut states = states.lock().unwrap();
                if state.is_some() && states.last() != state.as_ref() {
                    states.extend(state);
                }
            }
        }
    };
    *model.slow.lock().unwrap() = Some(Box::new(script));
    let mut seen = Seen::default();
    restarted.tick(&mut seen);
    assert!(started.lock().unwrap().is_some(), "g2 was not downloaded");
    let ready = ready_at_start.lock().unwrap().clone().unwrap();
    assert_eq!(ready, [g0.clone(), g1.clone()]);
    let took = live_after
        .lock()
        .unwrap()
        .expect("g0 never went live during the download");
    assert!(took < Duration::from_secs(1), "the rollback took {took:?}");
    // The state went on being written through the download: it said g0 live, and was
    // rewritten at its pace (more than once in the 4 s).
    let states = states.lock().unwrap();
    assert!(
        states.iter().any(|s| s.live.as_ref() == Some(g0)),
        "{states:?}"
    );
    assert!(states.len() >= 3, "{states:?}");
    assert!(restarted.store.list().unwrap().contains(g2));
}

/// Before the ticks: the pointer the follower will follow, and which generations may fail.
fn foresee(s: &State, ids: &[String], follower: &Follower, expect: &mut Expect) {
    if s.down {
        return;
    }
    match s.pointer {
        PointerObject::Names(l, p) => {
            expect.pointer = Some(Pointer {
                format: 1,
                live: ids[l].clone(),
                previous: p.map(|p| ids[p].clone()),
                pinned: false,
                changed_at_ms: 0,
                rolled_back_from: None,
            })
        }
        PointerObject::NamesMissing => {
            expect.pointer = Some(Pointer {
                format: 1,
                live: MISSING.into(),
                previous: None,
                pinned: false,
                changed_at_ms: 0,
                rolled_back_from: None,
            })
        }
        PointerObject::Absent | PointerObject::NotJson => {}
    }
    let local = follower.store.list().unwrap();
    for (id, held) in ids.iter().zip(s.held) {
        let fails = held == Held::Corrupt || (s.disk_full && held != Held::Absent);
        if fails && !local.contains(id) {
            expect.maybe_failed.insert(id.clone());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_follower_names_every_fault_and_takes_what_it_can(
        states in prop::collection::vec(state(), 1..5)
    ) {
        let b = built();
        let model = Arc::new(Model::default());
        let replica = tempfile::tempdir().unwrap();
        let mut follower = Follower::new(
            Box::new(ModelBucket(model.clone())),
            Store::new(replica.path()),
            shikaku::domain::PersonKey::demo(),
            "r1",
        );
        follower.free_bytes = free_bytes;
        // Every tick lists; a failed generation waits longer than a case.
        follower.pace = Pace {
            list_every: Duration::ZERO,
            retry_first: Duration::from_secs(3600),
            ..Pace::default()
        };
        let _lock = follower.take_data_dir().unwrap();
        let mut seen = Seen::default();
        let mut expect = Expect::default();
        for s in &states {
            model.set(s, &b.ids);
            foresee(s, &b.ids, &follower, &mut expect);
            for _ in 0..TICKS {
                follower.tick(&mut seen);
            }
            check(s, &b.ids, &follower, &seen, &mut expect);
            let health = follower.health.facts().troubles;
            prop_assert_eq!(health.now(), seen.troubles().now());
        }
    }
}
