//! The fleet against a real S3-compatible server (moto's server mode, started here): publish
//! sends only what the store lacks and picks up after an interruption; the pointer moves only
//! by conditional writes and only to generations enough replicas hold; a replica's download is
//! checked against the manifest and refused when the store's bytes are wrong.

mod fleet_support;

use fleet_support::*;
use shikaku::fleet::follow::download;
use shikaku::fleet::pointer::{move_pointer, Move, Quorum};
use shikaku::fleet::publish::publish;
use shikaku::fleet::remote::{Put, Remote};
use shikaku::fleet::{keys, FleetError, Manifest, ReplicaState, StoreConfig, StoreUrl};
use shikaku::generations::Store;

fn remote(moto: &Moto, prefix: &str) -> Remote {
    moto.set_env();
    let url = StoreUrl::parse(&moto.url(prefix)).unwrap();
    Remote::connect(&StoreConfig::new(url, Some(moto.endpoint()))).unwrap()
}

fn ready(remote: &Remote, replica: &str, ready: &[&str]) {
    ReplicaState {
        format: 1,
        replica: replica.into(),
        ready: ready.iter().map(|s| s.to_string()).collect(),
        live: None,
        at_ms: 0,
        trouble: None,
    }
    .write(remote)
    .unwrap();
}

#[test]
fn publish_sends_only_what_the_store_lacks_and_resumes() {
    let Some(moto) = Moto::start("publish_sends_only_what_the_store_lacks_and_resumes") else {
        return;
    };
    let remote = remote(&moto, "east/prod");
    let data = tempfile::tempdir().unwrap();
    let store = Store::new(data.path());
    let g1 = build_generation(data.path());
    let (first, _) = publish(&remote, &store, None).unwrap();
    let manifest = Manifest::of_local(&store, &g1).unwrap();
    assert_eq!(
        (first.uploaded_files, first.uploaded_bytes, first.already),
        (manifest.files.len(), manifest.bytes(), false)
    );
    assert!(manifest.segments().count() > 3, "{manifest:?}");

    // Again: nothing to send.
    let (again, _) = publish(&remote, &store, Some(&g1)).unwrap();
    assert_eq!((again.uploaded_files, again.already), (0, true));

    // A nightly build with nothing changed shares every segment: only its main file and
    // report go up.
    let g2 = build_generation(data.path());
    let (nightly, _) = publish(&remote, &store, None).unwrap();
    let m2 = Manifest::of_local(&store, &g2).unwrap();
    assert_eq!(nightly.uploaded_files, 2, "{nightly:?}");
    assert_eq!(
        nightly.uploaded_bytes,
        m2.bytes() - m2.segments().map(|(_, f)| f.bytes).sum::<u64>()
    );

    // Killed before its manifest went up (here: the manifest and report taken away, one
    // segment lost): the next run sends just those.
    remote.delete(&keys::manifest(&g2)).unwrap();
    remote
        .delete(&keys::generation_file(&g2, "report.json"))
        .unwrap();
    let (name, seg) = m2.segments().next().unwrap();
    remote.delete(&keys::segment(name)).unwrap();
    let (resumed, _) = publish(&remote, &store, None).unwrap();
    assert_eq!(
        (
            resumed.uploaded_files,
            resumed.uploaded_bytes,
            resumed.already
        ),
        (2, seg.bytes + m2.files.last().unwrap().bytes, false)
    );
    let stored = shikaku::fleet::publish::stored_generations(&remote).unwrap();
    assert_eq!(stored, [g1, g2]);
}

#[test]
fn the_pointer_moves_only_by_conditional_writes_to_ready_generations() {
    let Some(moto) =
        Moto::start("the_pointer_moves_only_by_conditional_writes_to_ready_generations")
    else {
        return;
    };
    let remote = remote(&moto, "p");
    let data = tempfile::tempdir().unwrap();
    let store = Store::new(data.path());
    let g1 = build_generation(data.path());
    publish(&remote, &store, None).unwrap();
    let g2 = build_generation(data.path());
    publish(&remote, &store, None).unwrap();
    let promote = |id: &str| Move::Promote {
        id: id.into(),
        unpin: false,
    };

    // Nobody registered: refused unless a quorum of 0 is given.
    assert!(matches!(
        move_pointer(&remote, &promote(&g1), Quorum::All),
        Err(FleetError::NoReplicas)
    ));
    ready(&remote, "r1", &[&g1, &g2]);
    ready(&remote, "r2", &[&g1]);
    let refused = move_pointer(&remote, &promote(&g2), Quorum::All).unwrap_err();
    assert!(
        refused.to_string().contains("1 of 2 needed; not ready: r2"),
        "{refused}"
    );
    assert!(matches!(
        move_pointer(&remote, &promote("g-none"), Quorum::All),
        Err(FleetError::NotInStore { .. })
    ));
    let p = move_pointer(&remote, &promote(&g1), Quorum::All).unwrap();
    assert_eq!((p.live.as_str(), p.previous), (g1.as_str(), None));
    let p = move_pointer(&remote, &promote(&g2), Quorum::AtLeast(1)).unwrap();
    assert_eq!(
        (p.live.as_str(), p.previous.as_deref()),
        (g2.as_str(), Some(g1.as_str()))
    );
    assert!(matches!(
        move_pointer(&remote, &promote(&g2), Quorum::All),
        Err(FleetError::AlreadyLive { .. })
    ));

    // Rollback to the previous; then there is none before it.
    let p = move_pointer(&remote, &Move::Rollback, Quorum::All).unwrap();
    assert_eq!((p.live.as_str(), p.previous), (g1.as_str(), None));
    assert!(matches!(
        move_pointer(&remote, &Move::Rollback, Quorum::All),
        Err(FleetError::NothingBefore { .. })
    ));

    // Pinned: promote refuses until told to unpin, and so does rollback (it would leave the
    // pin where the pin says the fleet must stay).
    move_pointer(&remote, &Move::Pin { id: g1.clone() }, Quorum::All).unwrap();
    assert!(matches!(
        move_pointer(&remote, &promote(&g2), Quorum::AtLeast(1)),
        Err(FleetError::Pinned { .. })
    ));
    assert!(matches!(
        move_pointer(&remote, &Move::Rollback, Quorum::All),
        Err(FleetError::PinnedRollback { .. })
    ));
    let p = move_pointer(
        &remote,
        &Move::Promote {
            id: g2.clone(),
            unpin: true,
        },
        Quorum::AtLeast(1),
    )
    .unwrap();
    assert!(!p.pinned);

    // The store honours the conditions: a write against a stale e-tag, or a create over an
    // existing object, is refused.
    let read = shikaku::fleet::Pointer::read(&remote).unwrap().unwrap();
    let stale = read.e_tag.clone().unwrap();
    let body = bytes::Bytes::from_static(b"{}");
    assert!(remote
        .put(keys::POINTER, body.clone(), Put::IfMatch(stale.clone()))
        .unwrap()
        .is_ok());
    assert!(remote
        .put(keys::POINTER, body.clone(), Put::IfMatch(stale))
        .unwrap()
        .is_err());
    assert!(remote
        .put(keys::POINTER, body, Put::Create)
        .unwrap()
        .is_err());
}

/// A store with one generation published from a builder's data directory.
struct Published {
    moto: Moto,
    remote: Remote,
    built: tempfile::TempDir,
    id: String,
    manifest: Manifest,
}

fn published(test: &str, prefix: &str) -> Option<Published> {
    let moto = Moto::start(test)?;
    let remote = remote(&moto, prefix);
    let built = tempfile::tempdir().unwrap();
    let id = build_generation(built.path());
    publish(&remote, &Store::new(built.path()), None).unwrap();
    let manifest = Manifest::of_local(&Store::new(built.path()), &id).unwrap();
    Some(Published {
        moto,
        remote,
        built,
        id,
        manifest,
    })
}

#[test]
fn a_replica_checks_every_file_and_refuses_wrong_bytes() {
    let Some(Published {
        remote,
        built,
        id: g1,
        manifest,
        moto: _moto,
    }) = published("a_replica_checks_every_file_and_refuses_wrong_bytes", "d")
    else {
        return;
    };
    let key = shikaku::domain::PersonKey::demo();

    // A segment whose bytes in the store differ from the manifest: refused, nothing sealed.
    let (name, _) = manifest.segments().nth(1).unwrap();
    let good = remote.get(&keys::segment(name)).unwrap().unwrap().bytes;
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    remote
        .put(&keys::segment(name), bad.into(), Put::Overwrite)
        .unwrap()
        .unwrap();
    let replica = tempfile::tempdir().unwrap();
    let store = Store::new(replica.path());
    let err = download(&remote, &store, &manifest, &key, &mut || {}).unwrap_err();
    assert!(matches!(err, FleetError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains(name), "{err}");
    assert!(store.list().unwrap().is_empty());

    // Put right, the download resumes: the files already checked stay, the rest come.
    remote
        .put(&keys::segment(name), good, Put::Overwrite)
        .unwrap()
        .unwrap();
    let fetched = download(&remote, &store, &manifest, &key, &mut || {}).unwrap();
    assert_eq!(fetched.resumed_files, 2, "{fetched:?}");
    assert_eq!(
        fetched.resumed_files + fetched.downloaded_files,
        manifest.files.len()
    );
    assert_eq!(store.list().unwrap(), std::slice::from_ref(&g1));
    store.open_verified(&g1, key.clone()).unwrap();

    // A second generation sharing every segment: only its own files are downloaded, the
    // segments are linked from the first after being checked.
    let g2 = build_generation(built.path());
    publish(&remote, &Store::new(built.path()), None).unwrap();
    let m2 = Manifest::of_local(&Store::new(built.path()), &g2).unwrap();
    let fetched = download(&remote, &store, &m2, &key, &mut || {}).unwrap();
    assert_eq!(
        (fetched.linked_files, fetched.downloaded_files),
        (m2.segments().count(), 2)
    );
}

#[test]
fn the_cli_publishes_promotes_and_says_why_not() {
    let Some(moto) = Moto::start("the_cli_publishes_promotes_and_says_why_not") else {
        return;
    };
    let env = moto.env();
    let data = tempfile::tempdir().unwrap();
    let g1 = build_generation(data.path());
    let url = moto.url("cli");
    let out = shikaku(
        &[
            "publish".as_ref(),
            "--data".as_ref(),
            data.path().as_os_str(),
            "--to".as_ref(),
            url.as_ref(),
        ],
        &env,
    );
    assert!(out.contains(&format!("generation {g1} in {url}")), "{out}");
    let fleet = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> =
            vec!["fleet".as_ref(), "--store".as_ref(), url.as_ref()];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        shikaku_output(&all, &env)
    };
    let (ok, _, err) = fleet(&["promote", &g1]);
    assert!(
        !ok && err.contains("no replica has registered") && err.contains("--quorum"),
        "{err}"
    );
    let (ok, out, err) = fleet(&["--quorum", "0", "promote", &g1]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("the fleet's pointer names {g1}")),
        "{out}"
    );
    let (ok, out, _) = fleet(&["status"]);
    assert!(
        ok && out.contains(&format!("pointer: live {g1}, previous none")),
        "{out}"
    );
    let (ok, _, err) = fleet(&["rollback"]);
    assert!(!ok && err.contains("nothing to roll back to"), "{err}");
    let (ok, _, err) = shikaku_output(
        &[
            "fleet".as_ref(),
            "--store".as_ref(),
            "https://x/y".as_ref(),
            "status".as_ref(),
        ],
        &env,
    );
    assert!(!ok && err.contains("s3://BUCKET/PREFIX"), "{err}");
}

/// The manifest is the last object a publish writes, so its presence means every file it
/// names is there. Before, the report went up after it (an interrupted publish left a
/// manifest without its report, which stalled every replica): this test failed on the
/// report's later LastModified.
#[test]
fn publish_writes_the_manifest_last() {
    let Some(moto) = Moto::start("publish_writes_the_manifest_last") else {
        return;
    };
    let remote = remote(&moto, "order");
    let data = tempfile::tempdir().unwrap();
    let g1 = build_generation(data.path());
    publish(&remote, &Store::new(data.path()), None).unwrap();
    let listed = remote.list(&format!("{}/{g1}", keys::GENERATIONS)).unwrap();
    let at = |name: &str| {
        let key = keys::generation_file(&g1, name);
        let found = listed.objects.iter().find(|l| l.key == key);
        found
            .unwrap_or_else(|| panic!("{key}: {listed:?}"))
            .modified_ms
    };
    let main = Manifest::of_local(&Store::new(data.path()), &g1).unwrap();
    let main = keys::main_file(&main.main_file().unwrap().xxh3);
    let main_at = remote.list(keys::MAIN).unwrap().objects;
    let main_at = main_at.iter().find(|l| l.key == main).unwrap().modified_ms;
    let manifest = at(keys::MANIFEST);
    assert!(manifest >= at("report.json") && manifest >= main_at);
}

/// A replica checks the free space before a download and says so when the generation cannot
/// fit; with room again it takes it. Before, there was no check: a download ran until the
/// file system was full (and failed as a write error, if the served generation's host
/// survived it).
#[test]
fn a_replica_says_when_a_generation_cannot_fit() {
    use shikaku::fleet::follow::{Follower, Seen};
    use shikaku::fleet::trouble::{Trouble, TroubleKind};
    use shikaku::server::live::FleetReport;
    let Some(moto) = Moto::start("a_replica_says_when_a_generation_cannot_fit") else {
        return;
    };
    let built = tempfile::tempdir().unwrap();
    let g1 = build_generation(built.path());
    publish(&remote(&moto, "room"), &Store::new(built.path()), None).unwrap();
    let replica = tempfile::tempdir().unwrap();
    let store = Store::new(replica.path());
    let key = shikaku::domain::PersonKey::demo();
    let mut follower = Follower::new(Box::new(remote(&moto, "room")), store.clone(), key, "r1");
    follower.free_bytes = |_| Ok(1000);
    follower.pace.retry_first = std::time::Duration::ZERO;
    let mut seen = Seen::default();
    follower.tick(&mut seen);
    let troubles = follower.health.facts().troubles;
    match troubles.now() {
        [Trouble::DiskFull {
            id,
            needed_bytes,
            free_bytes: 1000,
        }] => assert!(id == &g1 && *needed_bytes > 1000, "{troubles:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(troubles.began(TroubleKind::DiskFull), 1);
    let mut metrics = String::new();
    follower.health.write_metrics(&mut metrics, "none");
    assert!(
        metrics.contains("shikaku_fleet_troubles{kind=\"disk_full\"} 1\n"),
        "{metrics}"
    );
    assert!(store.list().unwrap().is_empty());

    follower.free_bytes = shikaku::fleet::download::free_bytes;
    follower.tick(&mut seen);
    assert_eq!(store.list().unwrap(), [g1]);
    assert!(follower.health.facts().troubles.now().is_empty());
}

/// A file part downloaded when the replica was killed is kept: only the rest is asked for
/// (a ranged GET); a part that does not match is thrown away, not kept for ever. Before, a
/// part was truncated and the whole file fetched again (there was no `resumed_bytes`).
#[test]
fn a_part_downloaded_file_resumes_by_range() {
    let Some(p) = published("a_part_downloaded_file_resumes_by_range", "resume") else {
        return;
    };
    let (remote, g1, manifest) = (&p.remote, &p.id, &p.manifest);
    let built = Store::new(p.built.path());
    let index = std::fs::read(built.generation_dir(g1).join("index.shk")).unwrap();
    let key = shikaku::domain::PersonKey::demo();
    let replica = tempfile::tempdir().unwrap();
    let store = Store::new(replica.path());
    let tmp = store.tmp_dir().join(g1);
    std::fs::create_dir_all(&tmp).unwrap();
    let half = index.len() / 2;

    // A part that is not the file's beginning: refused, removed; the next try starts over.
    let mut wrong = index[..half].to_vec();
    wrong[0] ^= 1;
    std::fs::write(tmp.join("index.shk.part"), &wrong).unwrap();
    let err = download(remote, &store, manifest, &key, &mut || {}).unwrap_err();
    assert!(matches!(err, FleetError::Mismatch { .. }), "{err}");
    assert!(!tmp.join("index.shk.part").exists());

    std::fs::write(tmp.join("index.shk.part"), &index[..half]).unwrap();
    let fetched = download(remote, &store, manifest, &key, &mut || {}).unwrap();
    assert_eq!(fetched.resumed_bytes, half as u64, "{fetched:?}");
    store.open_verified(g1, key).unwrap();
}

#[test]
fn a_signed_generation_reaches_a_replica_signed_and_is_checked_by_checksums_only() {
    use shikaku::signing::{PublicKey, Trust, TrustedKeys, SIGNATURE_FILE};
    let Some(moto) = Moto::start("a_signed_generation_reaches_a_replica_signed") else {
        return;
    };
    let remote = remote(&moto, "signed");
    let built = tempfile::tempdir().unwrap();
    let key_path = built.path().join("signing.key");
    let out = shikaku(
        &[
            "signing-key".as_ref(),
            "new".as_ref(),
            "--out".as_ref(),
            key_path.as_os_str(),
        ],
        &[],
    );
    let public = PublicKey::parse(out.trim()).expect("the public key printed");
    let data = built.path().join("data");
    let g1 = build_generation_with(&data, &["--signing-key".as_ref(), key_path.as_os_str()]);
    let built_store = Store::new(&data);
    publish(&remote, &built_store, None).unwrap();
    assert!(remote
        .get(&keys::generation_file(&g1, SIGNATURE_FILE))
        .unwrap()
        .is_some());
    let replica = tempfile::tempdir().unwrap();
    let store = Store::new(replica.path());
    let manifest = Manifest::of_local(&built_store, &g1).unwrap();
    shikaku::signing::set_trusted_keys(TrustedKeys::of([public]));
    let to = shikaku::fleet::download::Destination {
        store: &store,
        serving: None,
    };
    let (_, index) = shikaku::fleet::download::download_verified(
        &remote,
        to,
        &manifest,
        &shikaku::domain::PersonKey::demo(),
        shikaku::fleet::download::free_bytes,
        &mut || {},
    )
    .unwrap();
    assert_eq!(index.trust(), &Trust::Signed(public.id()));
    assert!(store.generation_dir(&g1).join(SIGNATURE_FILE).is_file());
}

/// Copies the demo delivery into `to` (so a test can add change files to it).
fn copy_demo(to: &std::path::Path) {
    for e in walk(&demo_snapshots()) {
        let rel = e.strip_prefix(demo_snapshots()).unwrap();
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&e, &dest).unwrap();
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A change generation goes through the store as its files are: the layer file, its delta
/// segment and its report travel; its main file, the parent's, is in the store once under
/// its content key (`main/<xxh3>.shk`) and is not uploaded again (before, each change
/// generation sent the whole main file under its own key: 3.6 GB for the nation). A
/// replica following the store links the main file and the segments it holds and goes live
/// on the change generation when the pointer names it.
#[test]
fn a_change_generation_travels_as_its_layer_and_delta_segments() {
    use shikaku::fleet::follow::{Follower, Seen};
    let Some(moto) = Moto::start("a_change_generation_travels_as_its_layer_and_delta_segments")
    else {
        return;
    };
    let follower_remote = remote(&moto, "layers");
    let remote = remote(&moto, "layers");
    let work = tempfile::tempdir().unwrap();
    let (snap, data) = (work.path().join("s"), work.path().join("d"));
    copy_demo(&snap);
    let build = || {
        shikaku(
            &[
                "build".as_ref(),
                "--snapshots".as_ref(),
                snap.as_os_str(),
                "--data".as_ref(),
                data.as_os_str(),
                "--max-drop-percent".as_ref(),
                "100".as_ref(),
            ],
            &[],
        );
        std::fs::read_to_string(data.join("CURRENT"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let g1 = build();
    let source = Store::new(&data);
    publish(&remote, &source, None).unwrap();
    let m1 = Manifest::of_local(&source, &g1).unwrap();
    let main = m1.main_file().unwrap().clone();
    let main_key = keys::main_file(&main.xxh3);
    assert_eq!(remote.head(&main_key).unwrap(), Some(main.bytes));
    assert_eq!(
        remote
            .head(&keys::generation_file(&g1, "index.shk"))
            .unwrap(),
        None
    );
    let number: String = shikaku::domain::IndividualNumber::from_first11(30000007919)
        .expose_digits()
        .iter()
        .map(|&b| b as char)
        .collect();
    let header = "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category";
    let row = format!(
        "01130012,12,99999999,00,{number},山田 太郎,ヤマダ タロウ,1,1980-01-23,1,2026-11-30,,,30,"
    );
    let changes = snap.join("01130012/changes");
    std::fs::create_dir_all(&changes).unwrap();
    std::fs::write(
        changes.join("20261201-090000.csv"),
        format!("{header},change\n{row},add\n"),
    )
    .unwrap();
    let g2 = build();
    let report: shikaku::nightly::Report = serde_json::from_slice(
        &std::fs::read(source.generation_dir(&g2).join("report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report.layer_count, 1, "a change generation");
    let m2 = Manifest::of_local(&source, &g2).unwrap();
    assert_eq!(m2.main_file(), Some(&main), "the parent's main file");
    let (sent, _) = publish(&remote, &source, None).unwrap();
    // The layer file, its delta segment and the report; not the main file.
    let sent_files = ["report.json"].into_iter().chain(
        m2.shared()
            .filter(|f| !m1.files.contains(f))
            .map(|f| f.path.as_str()),
    );
    let sent_bytes: u64 = sent_files
        .map(|p| m2.files.iter().find(|f| f.path == p).unwrap().bytes)
        .sum();
    assert_eq!(
        (sent.uploaded_files, sent.uploaded_bytes),
        (3, sent_bytes),
        "{sent:?}"
    );
    assert!(sent.uploaded_bytes < main.bytes, "{sent:?} {main:?}");

    // A replica follows: the base downloaded, the change generation linked but for its
    // own files, each made live when the pointer names it.
    let key = shikaku::domain::PersonKey::demo();
    let replica = tempfile::tempdir().unwrap();
    let store = Store::new(replica.path());
    let follower = Follower::new(Box::new(follower_remote), store.clone(), key.clone(), "r1");
    let mut seen = Seen::default();
    let follow_to = |id: &str, seen: &mut Seen| {
        follower.tick(seen);
        assert!(store.list().unwrap().iter().any(|g| g == id), "{id} ready");
        ready(&remote, "r1", &[id]);
        let promote = Move::Promote {
            id: id.into(),
            unpin: false,
        };
        move_pointer(&remote, &promote, Quorum::All).unwrap();
        follower.tick(seen);
        assert_eq!(store.current().unwrap().as_deref(), Some(id));
    };
    follow_to(&g1, &mut seen);
    follow_to(&g2, &mut seen);
    let inode = |id: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(store.generation_dir(id).join("index.shk"))
            .unwrap()
            .ino()
    };
    assert_eq!(inode(&g1), inode(&g2), "the main file linked, not fetched");
    let index = store.open_verified(&g2, key).unwrap();
    assert_eq!((index.generation(), index.layer_count()), (g2.as_str(), 1));
}

/// A store published before main files were kept by their content (the main file under
/// `generations/<id>/index.shk`) is still read: a replica downloads the main file from
/// there, and a publish of the same generation again sends nothing.
#[test]
fn a_store_with_main_files_under_their_generation_is_still_read() {
    let Some(p) = published(
        "a_store_with_main_files_under_their_generation_is_still_read",
        "old",
    ) else {
        return;
    };
    let (remote, g1, manifest) = (&p.remote, &p.id, &p.manifest);
    let main = manifest.main_file().unwrap();
    let bytes = remote
        .get(&keys::main_file(&main.xxh3))
        .unwrap()
        .unwrap()
        .bytes;
    let old = keys::generation_file(g1, "index.shk");
    remote.put(&old, bytes, Put::Overwrite).unwrap().unwrap();
    remote.delete(&keys::main_file(&main.xxh3)).unwrap();

    let (again, _) = publish(remote, &Store::new(p.built.path()), Some(g1)).unwrap();
    assert_eq!(
        (again.uploaded_files, again.already),
        (0, true),
        "{again:?}"
    );
    let key = shikaku::domain::PersonKey::demo();
    let replica = tempfile::tempdir().unwrap();
    let store = Store::new(replica.path());
    let fetched = download(remote, &store, manifest, &key, &mut || {}).unwrap();
    assert_eq!(
        fetched.downloaded_files,
        manifest.files.len(),
        "{fetched:?}"
    );
    store.open_verified(g1, key).unwrap();
}
