//! Crash safety: `shikaku build` killed with SIGKILL at random moments (20 times) always leaves
//! a store whose live generation opens, verifies and answers; the next build cleans up.

use shikaku::domain::PersonKey;
use shikaku::generations::Store;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const HEADER: &str = "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category";

/// A delivery of `insurers` kumiai insurers with `rows` members each, dated `date`.
fn write_delivery(dir: &Path, insurers: u32, rows: u32, date: &str) {
    let mut list = String::from("insurer_number,insurer_name,kind\n");
    for i in 0..insurers {
        let number =
            shikaku::domain::InsurerNumber::from_body(&format!("0613{:03}", 100 + i)).unwrap();
        list.push_str(&format!("{number},健康保険組合{i},kumiai\n"));
        let d = dir.join(number.as_str());
        fs::create_dir_all(&d).unwrap();
        let mut text = format!("{HEADER}\n");
        for r in 0..rows {
            text.push_str(&format!(
                "{number},{},{},00,,山田 太郎,ヤマダ タロウ,1,1980-01-23,1,2015-04-01,,,30,\n",
                1 + r % 97,
                10_000 + r
            ));
        }
        fs::write(d.join(format!("{date}.csv")), text).unwrap();
    }
    fs::write(dir.join("insurers.csv"), list).unwrap();
}

fn build(snap: &Path, data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shikaku"));
    c.args(["build", "--snapshots"])
        .arg(snap)
        .arg("--data")
        .arg(data)
        .args(["--date", "2026-11-24"]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// The live generation and every published one open and verify.
fn assert_store_serves(data: &Path) {
    let store = Store::new(data);
    let live = store
        .open_current(PersonKey::demo())
        .expect("the live generation opens");
    live.verify().expect("the live generation verifies");
    for id in store.list().unwrap() {
        let index = store
            .open(&id, PersonKey::demo())
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        index
            .verify()
            .unwrap_or_else(|e| panic!("published generation {id} is damaged: {e}"));
    }
}

#[test]
fn killed_builds_never_damage_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (snap, data) = (dir.path().join("snap"), dir.path().join("data"));
    write_delivery(&snap, 30, 1_000, "20261101");
    let started = Instant::now();
    assert!(build(&snap, &data).status().unwrap().success());
    let full = started.elapsed();
    assert_store_serves(&data);

    // Kill at moments spread over (and a little past) a whole build.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..20u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = full.mul_f64((seed % 1_200) as f64 / 1_000.0);
        // A new delivery each round, so every build has real work to do.
        write_delivery(&snap, 30, 1_000, &format!("202612{:02}", round + 1));
        let mut child = build(&snap, &data).spawn().unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL; the build may also have finished already.
        let _ = child.wait();
        assert_store_serves(&data);
    }
    let after = build(&snap, &data)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(
        after.status.success(),
        "a build after the kills succeeds; it said: {}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert_store_serves(&data);
    let leftovers = fs::read_dir(data.join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        leftovers, 0,
        "the next build cleans up what killed builds left"
    );
    assert!(full < Duration::from_secs(60));
}
