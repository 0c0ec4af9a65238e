//! What `shikaku build` tells the operator: the console summary's findings by rule (equal to
//! report.json's) and reused insurers; a file rejected whole said again when reused; and a
//! first build that fails leaves no data directory behind (an existing one is kept); a gc
//! that removes nothing says so.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn build(snapshots: &Path, data: &Path, date: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["build", "--date", date, "--snapshots"])
        .arg(snapshots)
        .arg("--data")
        .arg(data)
        .output()
        .unwrap()
}

fn demo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data-gen/demo")
}

/// The summary's `  RULE  COUNT  meaning` lines, as (rule, count).
fn summary_rules(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("findings by rule"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let mut w = l.split_whitespace();
            let rule = w.next().unwrap().to_owned();
            (rule, w.next().unwrap().parse().unwrap())
        })
        .collect()
}

#[test]
fn the_summary_gives_findings_by_rule_and_reused_insurers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (date, reused) in [("2026-11-24", 0), ("2026-11-25", 44)] {
        let out = build(&demo(), &data, date);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let id = std::fs::read_to_string(data.join("CURRENT")).unwrap();
        let report: Value = serde_json::from_slice(
            &std::fs::read(data.join("generations").join(id.trim()).join("report.json")).unwrap(),
        )
        .unwrap();
        let mut shown = summary_rules(&stdout);
        shown.sort();
        let expected: Vec<(String, u64)> = report["totals"]["by_rule"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(r, n)| (r.clone(), n.as_u64().unwrap()))
            .collect();
        assert!(expected.len() > 10, "{expected:?}");
        assert_eq!(shown, expected, "{stdout}");
        let line = format!(
            "insurers: 44, {reused} reused unchanged from the previous generation, {} read afresh",
            44 - reused
        );
        assert!(stdout.contains(&line), "{stdout}");
        // The demo's mixed-encoding file (F1) is said each night, reused or not.
        let f1 = stderr.matches("rejected whole (F1)").count();
        assert_eq!(f1, 1, "{stderr}");
        if reused > 0 {
            assert!(
                stderr.contains("unchanged since the last build"),
                "{stderr}"
            );
        }
    }
}

#[test]
fn a_failed_first_build_leaves_no_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("no-snapshots");
    let out = build(&missing, &data, "2026-11-24");
    assert!(!out.status.success());
    assert!(
        !data.exists(),
        "a failed first build left {}",
        data.display()
    );
    // `serve` then says the directory does not exist, not that nothing was built in it.
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["verify", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("does not exist; give the --data"), "{said}");

    // A directory that held a generation is never removed by a failed build.
    assert!(build(&demo(), &data, "2026-11-24").status.success());
    let out = build(&missing, &data, "2026-11-24");
    assert!(!out.status.success());
    assert!(data.join("CURRENT").exists());

    // A gc with nothing to remove says so.
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["generations", "gc", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.starts_with("nothing to remove: 1 generations (--keep 3)"),
        "{said}"
    );
}
