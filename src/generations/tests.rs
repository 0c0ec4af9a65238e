//! Data-driven tests of the store: `check_*(input, expected)` per boundary, on generations
//! that are real, verifiable copies of one build of the demo delivery.

use super::*;
use std::cell::RefCell;

thread_local! {
    /// Removing an entry under this path fails, as under a directory that is not writable
    /// (the tests run as root, which may write anywhere).
    static FAIL_REMOVING: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

pub(super) fn fail_point(path: &Path) -> io::Result<()> {
    FAIL_REMOVING.with(|f| match &*f.borrow() {
        Some(under) if path.starts_with(under) => Err(io::ErrorKind::PermissionDenied.into()),
        _ => Ok(()),
    })
}

fn fail_removing(under: Option<PathBuf>) {
    FAIL_REMOVING.with(|f| *f.borrow_mut() = under);
}

const ALL: [&str; 4] = ["g1", "g2", "g3", "g4"];

/// One build of the demo delivery, copied into every store a test makes.
struct Template {
    dir: tempfile::TempDir,
    generation: PathBuf,
}

impl Template {
    fn new() -> Template {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = crate::demo::builtin_snapshots();
        let built = crate::demo::build(&snapshots, &dir.path().join("built"), PersonKey::demo())
            .unwrap()
            .expect("the demo delivery passes the guard");
        Template {
            generation: built.generation_dir,
            dir,
        }
    }

    /// A fresh store holding a copy of the build under each of `ids`, `live` published,
    /// and a refused build under each of `refused`.
    fn store(&self, ids: &[&str], live: Option<&str>, refused: &[&str]) -> Store {
        let root = tempfile::tempdir_in(self.dir.path()).unwrap().keep();
        let store = Store::new(root);
        for id in ids {
            copy_tree(&self.generation, &store.begin(id).unwrap());
            store.seal(id).unwrap();
        }
        if let Some(live) = live {
            store.publish(live).unwrap();
        }
        for id in refused {
            copy_tree(&self.generation, &store.refused_dir().join(id));
        }
        store
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().map(Result::unwrap) {
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A store's generations and refused builds, in order.
fn contents(store: &Store) -> (Vec<String>, Vec<String>) {
    (store.list().unwrap(), store.refused().unwrap())
}

fn assert_mentions(text: &str, expected: &[impl AsRef<str>]) {
    for part in expected.iter().map(AsRef::as_ref) {
        assert!(text.contains(part), "{part:?} not in: {text}");
    }
}

#[test]
fn ids() {
    let id = new_generation_id();
    assert!(valid_id(&id), "{id}");
    assert_eq!(id.len(), 20);
    assert!(!valid_id("../etc"));
    assert!(!valid_id(""));
}

#[test]
fn publish_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    assert_eq!(store.current().unwrap(), None);
    let tmp = store.begin("g1").unwrap();
    fs::write(tmp.join(INDEX_FILE), b"x").unwrap();
    store.seal("g1").unwrap();
    assert_eq!(store.list().unwrap(), vec!["g1".to_owned()]);
    store.publish("g1").unwrap();
    assert_eq!(store.current().unwrap().as_deref(), Some("g1"));
    assert!(store.publish("g2").is_err());
    store.begin("g3").unwrap();
    assert_eq!(store.clean_tmp().unwrap(), 1);
}

/// Four generations g1..g4, `live` published; `gc(keep)` removes exactly `removed` and
/// leaves the rest, the live one still live.
fn check_gc(t: &Template, live: &str, keep: usize, removed: &[&str]) {
    let store = t.store(&ALL, Some(live), &[]);
    let collected = store.gc(keep, PersonKey::demo()).unwrap();
    assert_eq!(collected.generations, removed, "live {live}, keep {keep}");
    let left: Vec<&str> = ALL.into_iter().filter(|id| !removed.contains(id)).collect();
    assert_eq!(store.list().unwrap(), left);
    assert_eq!(store.live().unwrap(), live);
    let previous = left.iter().take_while(|id| **id != live).last().copied();
    assert_eq!(store.previous().unwrap().as_deref(), previous);
    assert_eq!(store.clean_tmp().unwrap(), 0, "nothing left in tmp/");
}

#[test]
fn gc_keeps_the_newest_and_the_live_generation() {
    let t = Template::new();
    check_gc(&t, "g4", 2, &["g1", "g2"]);
    check_gc(&t, "g4", 0, &["g1", "g2", "g3"]);
    check_gc(&t, "g3", 1, &["g1", "g2"]);
    check_gc(&t, "g3", 9, &[]);
    // Regression: `gc --keep 0` after a rollback deleted the generation rolled back from.
    check_gc(&t, "g2", 0, &["g1"]);
    check_gc(&t, "g1", 0, &[]);
}

/// Ways `CURRENT` can fail to name a live generation, each with what its error says besides
/// `CURRENT`'s path and the fix (`{gens}`: the generations directory).
const BAD_CURRENTS: [(&str, &str); 7] = [
    ("missing", "does not exist, so no generation is live"),
    ("empty", "holds \"\", which is not a generation id"),
    ("zz", "names generation \"zz\", which is not in {gens}"),
    ("../g1", "holds \"../g1\", which is not a generation id"),
    ("not utf-8", "which is not a generation id"),
    ("a link to itself", "cannot read {current}"),
    (
        "g5",
        "g5, which is incomplete: {gens}/g5/index.shk does not exist",
    ),
];

/// Damages the `CURRENT` of a store with g1..g4 as `how` says; g5 is left incomplete.
fn damage_current(store: &Store, how: &str) {
    let current = store.current_path();
    fs::create_dir_all(store.generation_dir("g5")).unwrap();
    fs::remove_file(&current).unwrap();
    match how {
        "missing" => {}
        "empty" => fs::write(&current, "").unwrap(),
        "not utf-8" => fs::write(&current, b"\xff\xfe\n").unwrap(),
        "a link to itself" => std::os::unix::fs::symlink(&current, &current).unwrap(),
        id => fs::write(&current, format!("{id}\n")).unwrap(),
    }
}

/// `expected` with the store's paths in place of `{gens}` and `{current}`.
fn expand(store: &Store, expected: &str) -> String {
    expected
        .replace("{gens}", &shown(&store.generations_dir()))
        .replace("{current}", &shown(&store.current_path()))
}

/// Runs `check` on a fresh store (g1..g4, g4 live) per way of damaging its `CURRENT`, with
/// what the error must say: `CURRENT`'s path, the fix, and what is wrong.
fn each_bad_current(check: impl Fn(&Store, &str, [String; 3])) {
    let t = Template::new();
    for (how, expected) in BAD_CURRENTS {
        let store = t.store(&ALL, Some("g4"), &["g0"]);
        damage_current(&store, how);
        let current = shown(&store.current_path());
        check(
            &store,
            how,
            [current, MAKE_ONE_LIVE.into(), expand(&store, expected)],
        );
    }
}

#[test]
fn a_current_naming_no_live_generation_is_named_with_the_fix() {
    each_bad_current(|store, how, says| {
        assert_mentions(&store.live().unwrap_err().to_string(), &says);
        let err = store.rollback(None, PersonKey::demo()).unwrap_err();
        assert_mentions(&err.to_string(), &says);
        // The fix works whatever CURRENT holds.
        assert_eq!(store.rollback(Some("g3"), PersonKey::demo()).unwrap(), "g3");
        assert_eq!(store.live().unwrap(), "g3", "{how}");
    });
}

/// Regression: `echo zz > CURRENT; gc --keep 1` removed 4 generations, the one being served
/// and every rollback target among them.
#[test]
fn regression_gc_with_a_bad_current_removed_every_other_generation() {
    each_bad_current(|store, how, says| {
        let err = store.gc(0, PersonKey::demo()).unwrap_err().to_string();
        assert_mentions(&err, &says);
        assert!(err.starts_with("gc removed nothing: "), "{err}");
        assert_eq!(contents(store), (owned(&ALL), owned(&["g0"])), "{how}");
    });
}

fn owned(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

/// Damages the live generation g4 as `how` says.
fn damage_live(store: &Store, how: &str) {
    let dir = store.generation_dir("g4");
    let segments = dir.join(crate::format::SEGMENTS_DIR);
    let mut names: Vec<PathBuf> = fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let index = dir.join(INDEX_FILE);
    match how {
        "a flipped bit" => {
            let mut bytes = fs::read(&names[0]).unwrap();
            *bytes.last_mut().unwrap() ^= 1;
            fs::write(&names[0], bytes).unwrap();
        }
        "a missing segment" => fs::remove_file(&names[0]).unwrap(),
        "a truncated index" => {
            let bytes = fs::read(&index).unwrap();
            fs::write(&index, &bytes[..bytes.len() / 2]).unwrap();
        }
        _ => unreachable!("{how}"),
    }
}

/// Regression: gc trusted a live generation that failed verification and removed the older
/// ones, the way back.
#[test]
fn regression_gc_removed_the_way_back_from_a_damaged_live_generation() {
    let t = Template::new();
    for how in ["a flipped bit", "a missing segment", "a truncated index"] {
        let store = t.store(&ALL, Some("g4"), &["g0"]);
        damage_live(&store, how);
        let err = store.gc(0, PersonKey::demo()).unwrap_err().to_string();
        let refusal = "gc removed nothing: the live generation g4 fails verification";
        assert_mentions(&err, &[refusal, "roll back first"]);
        assert_eq!(contents(&store), (owned(&ALL), owned(&["g0"])), "{how}");
        // Once rolled back, gc keeps g4 (newer than the live one) and the live g3.
        store.rollback(None, PersonKey::demo()).unwrap();
        let collected = store.gc(0, PersonKey::demo()).unwrap();
        assert_eq!(collected.generations, ["g1", "g2"], "{how}");
    }
}

/// Regression: a gc that failed midway (a `segments/` directory not writable) left a half
/// deleted generation in `generations/`, missing from `list` and never freed.
#[test]
fn regression_a_gc_failing_midway_left_a_half_deleted_generation() {
    let t = Template::new();
    let store = t.store(&ALL, Some("g4"), &[]);
    let stuck = store
        .tmp_dir()
        .join("gc-generation-g2")
        .join(crate::format::SEGMENTS_DIR);
    fail_removing(Some(stuck.clone()));
    let err = store.gc(1, PersonKey::demo()).unwrap_err().to_string();
    fail_removing(None);
    assert_mentions(&err, &[&format!("cannot remove {}/", stuck.display())]);
    assert_eq!(store.list().unwrap(), ["g3", "g4"]);
    assert!(
        !store.generation_dir("g2").exists(),
        "g2 left generations/ whole"
    );
    // The next gc finishes what was left in tmp/.
    assert_eq!(store.gc(1, PersonKey::demo()).unwrap().generations, ["g3"]);
    assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
}

#[test]
fn a_gc_that_cannot_move_a_generation_aside_removes_nothing_of_it() {
    let t = Template::new();
    let store = t.store(&ALL, Some("g4"), &[]);
    fs::remove_dir(store.tmp_dir()).unwrap();
    fs::write(store.tmp_dir(), "").unwrap();
    let err = store.gc(1, PersonKey::demo()).unwrap_err().to_string();
    let from = shown(&store.generation_dir("g1"));
    assert_mentions(
        &err,
        &[
            &format!("cannot move {from} to "),
            "nothing of it was removed",
        ],
    );
    assert_eq!(store.list().unwrap(), ALL);
}

/// Refused builds `refused` beside g1..g4 (g4 live); `gc(keep)` removes exactly `removed`
/// of them, and no generation but those beyond `keep`.
fn check_refused_gc(t: &Template, refused: &[&str], keep: usize, removed: &[&str]) {
    let store = t.store(&ALL, Some("g4"), refused);
    fs::create_dir_all(store.refused_dir()).unwrap();
    fs::write(store.refused_dir().join("notes.txt"), "an operator's").unwrap();
    let collected = store.gc(keep, PersonKey::demo()).unwrap();
    assert_eq!(collected.refused, removed, "keep {keep}");
    let left: Vec<&str> = refused
        .iter()
        .copied()
        .filter(|id| !removed.contains(id))
        .collect();
    assert_eq!(store.refused().unwrap(), left);
    assert!(
        store.refused_dir().join("notes.txt").exists(),
        "not a build"
    );
}

#[test]
fn gc_keeps_the_newest_k_refused_builds() {
    let t = Template::new();
    let three = [
        "g20261101-010000-000",
        "g20261102-010000-000",
        "g20261103-010000-000",
    ];
    check_refused_gc(&t, &three, 0, &three);
    check_refused_gc(&t, &three, 2, &three[..1]);
    check_refused_gc(&t, &three, 3, &[]);
    check_refused_gc(&t, &[], 1, &[]);
    // A store whose every build was refused: nothing live to keep, refused builds collected.
    let store = t.store(&[], None, &three);
    let collected = store.gc(1, PersonKey::demo()).unwrap();
    assert_eq!(collected.refused, three[..2]);
}

/// Generation `id`, named explicitly, fails to open saying `expected` (`{gens}`: the
/// generations directory) and never blames `CURRENT`; a rollback to it says the same.
fn check_named(t: &Template, id: &str, expected: &str) {
    let store = t.store(&ALL, Some("g4"), &[]);
    fs::create_dir_all(store.generation_dir("g5")).unwrap();
    let err = store
        .open(id, PersonKey::demo())
        .map(drop)
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &[&expand(&store, expected)]);
    assert!(!err.contains(CURRENT_FILE), "{err}");
    let rollback = store.rollback(Some(id), PersonKey::demo()).unwrap_err();
    assert_eq!(rollback.to_string(), err);
    assert_eq!(store.live().unwrap(), "g4");
}

/// Regression: `rollback --to g2099` and `verify --generation g2099` said "`DATA/CURRENT`
/// names generation "g2099", which does not exist", though CURRENT was not involved.
#[test]
fn regression_a_named_generation_that_does_not_exist_was_blamed_on_current() {
    let t = Template::new();
    let list = "`shikaku generations list`";
    check_named(&t, "g2099", "there is no generation \"g2099\" in {gens}; ");
    check_named(&t, "g2099", list);
    check_named(
        &t,
        "g5",
        "generation g5 is incomplete: {gens}/g5/index.shk does not exist",
    );
    check_named(&t, "../g1", "\"../g1\" is not a valid generation id");
}

/// Regression: a data directory that does not exist was "CURRENT names no generation; run
/// `shikaku build` first".
#[test]
fn regression_a_missing_data_directory_was_taken_for_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("nowhere"));
    let key = PersonKey::demo;
    let errors = [
        store.live().map(drop),
        store.open_current(key()).map(drop),
        store.open("g1", key()).map(drop),
        store.rollback(None, key()).map(drop),
        store.rollback(Some("g1"), key()).map(drop),
        store.gc(1, key()).map(drop),
    ];
    let expected = format!("data directory {} does not exist", store.root().display());
    for err in errors {
        assert_mentions(&err.unwrap_err().to_string(), &[&expected]);
    }
    assert!(!store.root().exists(), "nothing created");
}

#[test]
fn an_empty_store_says_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let err = store.live().unwrap_err();
    assert!(matches!(err, StoreError::NothingPublished { .. }), "{err}");
    assert_mentions(&err.to_string(), &["run `shikaku build` first"]);
}

/// Regression: a generation half-deleted by the gc of an earlier version (its index file
/// gone, its segments left) stayed in `generations/` for good, invisible to `list`.
#[test]
fn gc_removes_generations_left_without_their_index() {
    let t = Template::new();
    let store = t.store(&ALL, Some("g4"), &[]);
    fs::remove_file(store.index_path("g2")).unwrap();
    assert_eq!(store.list().unwrap(), ["g1", "g3", "g4"]);
    assert_eq!(store.incomplete().unwrap(), ["g2"]);
    let collected = store.gc(9, PersonKey::demo()).unwrap();
    assert_eq!(collected.incomplete, ["g2"]);
    assert!(collected.generations.is_empty());
    assert!(!store.generation_dir("g2").exists());
    assert_eq!(store.list().unwrap(), ["g1", "g3", "g4"]);
}

/// A fleet's replica keeps what the pointer keeps, not the newest: with g4 live and g2 the
/// fleet's previous, g1 and g3 go and g2 stays (gc by count removed g2, which the replica
/// then downloaded again and removed again, four times a second).
#[test]
fn gc_where_keeps_what_it_is_told_whatever_the_age() {
    let t = Template::new();
    let store = t.store(&ALL, Some("g4"), &[]);
    let got = store
        .gc_where(|g| g == "g4" || g == "g2", PersonKey::demo())
        .unwrap();
    assert_eq!(got.generations, owned(&["g1", "g3"]));
    assert_eq!(contents(&store), (owned(&["g2", "g4"]), owned(&[])));
    // The live generation is never removed, even if `keep` refuses it.
    let got = store.gc_where(|_| false, PersonKey::demo()).unwrap();
    assert_eq!(got.generations, owned(&["g2"]));
    assert_eq!(store.list().unwrap(), owned(&["g4"]));
}

/// A generation directory whose index carries another id (a copy under a new name) is
/// refused by what a server opens, naming both ids; the same copy under its own name opens.
/// (Served, it reported its own id while CURRENT named the directory, and a server reloaded
/// it about twice a second without end.)
#[test]
fn regression_a_copy_under_another_name_is_refused_where_a_server_opens_it() {
    let t = Template::new();
    let store = t.store(&["g1"], Some("g1"), &[]);
    let Err(err) = store.open_current(PersonKey::demo()) else {
        panic!("a copy under another name opened");
    };
    assert!(matches!(err, StoreError::Misnamed { .. }), "{err}");
    let built = t
        .generation
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_mentions(&err.to_string(), &["g1", &built, "another name"]);
    let named = t.store(&[&built], Some(&built), &[]);
    assert_eq!(
        named.open_current(PersonKey::demo()).unwrap().generation(),
        built
    );
}
