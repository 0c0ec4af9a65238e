//! `shikaku build --watch` end to end: change files renamed into the snapshots directory are
//! answered from within seconds, by `shikaku query` and, through the fleet's store and its
//! promote policy, by a replica; a failed build, a bad row and a failed upload are reported
//! and the loop goes on; a rollback is not undone by the policy; SIGTERM stops
//! the loop cleanly; `DATA/LOCK` is free between builds.

mod fleet_support;

use fleet_support::{demo_snapshots, shikaku, wait_for_or, Moto, Replica};
use shikaku::generations::Store;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const DATE: &str = "2026-11-30";
const INSURER: &str = "010017";
const LIMIT: Duration = Duration::from_secs(90);

/// The demo delivery, copied so change files can land in it.
fn delivery(dir: &Path) -> PathBuf {
    let snap = dir.join("snap");
    let ok = Command::new("cp")
        .arg("-r")
        .arg(demo_snapshots())
        .arg(&snap)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    snap
}

fn individual(n: u64) -> String {
    shikaku::domain::IndividualNumber::from_first11(40000000000 + (n % 1000) * 7919)
        .expose_digits()
        .iter()
        .map(|&b| b as char)
        .collect()
}

/// Writes a change file adding card `77-<number>` under another name, then renames it into
/// place, as a delivery does.
fn land_change(snap: &Path, name: &str, number: u32) {
    let dir = snap.join(INSURER).join("changes");
    fs::create_dir_all(&dir).unwrap();
    let part = dir.join(format!("{name}.csv.part"));
    fs::write(&part, change_file(number)).unwrap();
    fs::rename(&part, dir.join(format!("{name}.csv"))).unwrap();
}

/// Change files landing at once, whatever the test's pace: written into a directory beside
/// the delivery, which is renamed into place as the insurer's `changes/` (one rename).
fn land_together(snap: &Path, files: &[(&str, u32)]) {
    let staged = snap.with_extension("staged");
    fs::create_dir_all(&staged).unwrap();
    for (name, number) in files {
        fs::write(staged.join(format!("{name}.csv")), change_file(*number)).unwrap();
    }
    let dir = snap.join(INSURER).join("changes");
    assert!(!dir.exists(), "{} holds files already", dir.display());
    fs::rename(&staged, dir).unwrap();
}

/// A change file adding card `77-<number>`.
fn change_file(number: u32) -> String {
    format!(
        "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category,change\n\
         {INSURER},77,{number},00,{},試験 花子,シケン ハナコ,2,1990-01-01,1,2026-11-25,,,30,,add\n",
        individual(u64::from(number))
    )
}

fn card_json(number: u32) -> String {
    format!(
        r#"{{"birthdate":"1990-01-01","branch":"00","date":"2026-11-28","insurer_number":"{INSURER}","number":"{number}","symbol":"77"}}"#
    )
}

/// `shikaku query card` on the data directory: its answer, or `None` before anything is live.
fn query(data: &Path, number: u32) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["query", "--data"])
        .arg(data)
        .args(["card", "--insurer-number", INSURER, "--symbol", "77"])
        .args(["--number", &number.to_string(), "--branch", "00"])
        .args(["--birthdate", "1990-01-01", "--date", "2026-11-28"])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn found(answer: &str) -> bool {
    answer.contains("シケン ハナコ")
}

/// A POST on a replica's HTTP port: the body, `None` when it does not answer.
fn post(r: &Replica, path: &str, body: &str) -> Option<String> {
    let mut s = TcpStream::connect(r.addr()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    Some(reply.split_once("\r\n\r\n")?.1.to_owned())
}

/// `shikaku build --watch` as a child process, its log in a file.
struct Watcher {
    child: Child,
    log: PathBuf,
}

impl Watcher {
    fn start(snap: &Path, data: &Path, extra: &[&str], env: &[(&str, String)]) -> Watcher {
        let log = data.with_extension("watch.log");
        let child = Command::new(env!("CARGO_BIN_EXE_shikaku"))
            .args(["build", "--watch", "--settle-ms", "200", "--date", DATE])
            .args(["--max-drop-percent", "100", "--snapshots"])
            .arg(snap)
            .arg("--data")
            .arg(data)
            .args(extra)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Watcher { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; returns whether it exited successfully.
    fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        self.child.wait().unwrap().success()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(data: &Path) -> serde_json::Value {
    fs::read(data.join("watch.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[test]
fn change_files_renamed_into_place_are_answered_and_failures_reported() {
    let dir = tempfile::tempdir().unwrap();
    let snap = delivery(dir.path());
    let data = dir.path().join("data");
    let mut w = Watcher::start(&snap, &data, &["--keep", "2"], &[]);
    // The first build: nothing was live.
    wait_for_or(
        "the first build",
        LIMIT,
        || query(&data, 20000001).is_some(),
        || w.log(),
    );
    let first = Store::new(&data).current().unwrap().unwrap();
    assert!(!found(&query(&data, 20000001).unwrap()));
    assert_eq!(status(&data)["last_build"]["generation_kind"], "base");

    // Two files landing together make one generation.
    land_together(
        &snap,
        &[("20261125-090000", 20000001), ("20261125-090001", 20000002)],
    );
    wait_for_or(
        "the change files answered",
        LIMIT,
        || query(&data, 20000002).is_some_and(|a| found(&a)),
        || w.log(),
    );
    assert!(found(&query(&data, 20000001).unwrap()));
    let s = status(&data);
    assert_eq!(s["last_build"]["outcome"], "published", "{s}");
    assert_eq!(s["last_build"]["generation_kind"], "layer", "{s}");
    assert_eq!(s["last_build"]["files"].as_array().unwrap().len(), 2, "{s}");
    let second = Store::new(&data).current().unwrap().unwrap();
    assert_eq!(Store::new(&data).list().unwrap(), [first, second.clone()]);

    // Between builds the data directory is free: hold it, and the next build fails, is
    // reported, and is tried again once it is free.
    let idle = |builds: u64| {
        let s = status(&data);
        s["builds"] == builds && s["state"] == "watching"
    };
    wait_for_or(
        "the loop idle after its second build",
        LIMIT,
        || idle(2),
        || w.log(),
    );
    let lock = Store::new(&data)
        .lock()
        .expect("the lock is free between builds");
    land_change(&snap, "20261125-090002", 20000003);
    wait_for_or(
        "the failure reported",
        LIMIT,
        || status(&data)["last_build"]["outcome"] == "failed",
        || w.log(),
    );
    let s = status(&data);
    assert!(
        s["last_build"]["error"].as_str().unwrap().contains("LOCK"),
        "{s}"
    );
    assert_eq!(Store::new(&data).current().unwrap().unwrap(), second);
    drop(lock);
    wait_for_or(
        "the retried build",
        LIMIT,
        || query(&data, 20000003).is_some_and(|a| found(&a)),
        || w.log(),
    );
    assert!(w.log().contains("build failed"), "{}", w.log());

    // A bad row is the report's: the file is applied but for it, the loop says how many
    // rows were rejected, and the report names the file and line.
    let rejected = status(&data)["last_build"]["rows_rejected"]
        .as_u64()
        .unwrap();
    let dir = snap.join(INSURER).join("changes");
    let bad = format!(
        "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category,change\n\
         {INSURER},77,20000004,00,{},試験 花子,シケン ハナコ,2,1990-02-30,1,2026-11-25,,,30,,add\n",
        individual(4)
    );
    fs::write(dir.join("bad.part"), bad).unwrap();
    fs::rename(dir.join("bad.part"), dir.join("20261125-090003.csv")).unwrap();
    wait_for_or(
        "the bad file built",
        LIMIT,
        || status(&data)["last_build"]["rows_rejected"].as_u64() > Some(rejected),
        || w.log(),
    );
    let s = status(&data);
    assert_eq!(s["last_build"]["outcome"], "published", "{s}");
    let live = Store::new(&data).current().unwrap().unwrap();
    let rejects =
        fs::read_to_string(data.join("generations").join(live).join("rejects.csv")).unwrap();
    assert!(
        rejects.contains(&format!("{INSURER}/changes/20261125-090003.csv,2,R4")),
        "{rejects}"
    );
    assert!(!found(&query(&data, 20000004).unwrap()));

    // The fifth generation: with --keep 2, more than twice that are collected down to 2.
    land_change(&snap, "20261125-090004", 20000005);
    let kept = || Store::new(&data).list().unwrap().len();
    wait_for_or(
        "old generations collected",
        LIMIT,
        || kept() == 2,
        || w.log(),
    );
    assert!(found(&query(&data, 20000005).unwrap()));

    assert!(w.terminate(), "{}", w.log());
    assert_eq!(status(&data)["state"], "stopped");
    assert!(Store::new(&data).lock().is_ok());
}

#[test]
fn the_fleet_takes_change_generations_by_its_policy_and_a_rollback_holds_and_a_store_down_is_reported(
) {
    let Some(moto) = Moto::start("watch_fleet") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let snap = delivery(dir.path());
    let data = dir.path().join("data");
    let url = moto.url("watch");
    let env = moto.env();
    let fleet = |args: &[&str]| {
        let mut all = vec!["fleet", "--store", url.as_str()];
        all.extend_from_slice(args);
        let all: Vec<&std::ffi::OsStr> = all.iter().map(|a| a.as_ref()).collect();
        shikaku(&all, &env)
    };
    let mut w = Watcher::start(&snap, &data, &["--publish", &url], &env);
    wait_for_or(
        "the first upload",
        LIMIT,
        || status(&data)["last_upload"]["generation"].is_string(),
        || w.log(),
    );
    let first = Store::new(&data).current().unwrap().unwrap();
    let mut r1 = Replica::new("r1", dir.path(), "watch");
    r1.start(&moto);
    // The first generation is the operator's to promote; later change generations the
    // policy's.
    wait_for_or(
        "r1 ready",
        LIMIT,
        || fleet(&["status"]).contains(&format!("replica r1: live none, ready [{first}]")),
        || r1.log(),
    );
    fleet(&["promote", &first]);
    assert!(fleet(&["policy", "auto-changes"]).contains("promote policy: auto-changes"));
    let ask = |n: u32| post(&r1, "/v1/card", &card_json(n)).unwrap_or_default();
    wait_for_or(
        "r1 serving",
        LIMIT,
        || ask(20000001).contains("\"validity\""),
        || r1.log(),
    );
    assert!(!found(&ask(20000001)));

    land_change(&snap, "20261125-090000", 20000001);
    wait_for_or(
        "the replica answering from the change file",
        LIMIT,
        || found(&ask(20000001)),
        || format!("{}\n{}", w.log(), r1.log()),
    );
    let second = Store::new(&data).current().unwrap().unwrap();
    let promoted = format!("promoted by the fleet's promote policy generation={second}");
    assert!(w.log().contains(&promoted), "{}", w.log());
    let s = status(&data);
    let upload = &s["last_upload"];
    assert!(
        upload["uploaded_bytes"].as_u64() < upload["bytes"].as_u64(),
        "{s}"
    );

    // A rollback returns to the parent exactly, and the policy leaves it there.
    let said = fleet(&["rollback"]);
    assert!(said.contains(&format!("names {first}")), "{said}");
    wait_for_or(
        "r1 back on the parent",
        LIMIT,
        || !found(&ask(20000001)),
        || r1.log(),
    );
    wait_for_or(
        "the policy's look after the rollback",
        LIMIT,
        || status(&data)["promote"] == format!("no generation built on the live one {first}"),
        || w.log(),
    );
    assert!(fleet(&["status"]).contains(&format!("pointer: live {first}, previous none, moved")));
    let said = fleet(&["status"]);
    assert!(
        said.contains(&format!("rolled back from {second}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("generation {second}: layer, built on {first}")),
        "{said}"
    );
    assert!(!found(&ask(20000001)));

    // The store gone: the next change file is built and live here all the same, the failed
    // upload is reported, and the loop goes on.
    let mut moto = moto;
    moto.stop();
    land_change(&snap, "20261125-090001", 20000002);
    wait_for_or(
        "the failed upload reported",
        LIMIT,
        || status(&data)["last_upload"]["error"].is_string(),
        || w.log(),
    );
    assert!(found(&query(&data, 20000002).unwrap()));
    let s = status(&data);
    assert_eq!(
        s["last_upload"]["waiting"].as_array().map(Vec::len),
        Some(1),
        "{s}"
    );
    assert!(w.log().contains("upload failed"), "{}", w.log());
    assert!(w.terminate(), "{}", w.log());
}
