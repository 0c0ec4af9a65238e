//! `shikaku generations` and `shikaku verify` as operators run them, on data directories gone
//! wrong: what they refuse, what they say, how they exit.

mod server_support;

use server_support::*;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Runs `shikaku` with `args`, `DATA` standing for `data`; returns (success, stdout, stderr).
fn run(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(args.iter().map(|a| {
            if *a == "DATA" {
                data.as_os_str()
            } else {
                OsStr::new(a)
            }
        }))
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn list(data: &Path) -> String {
    run(data, &["generations", "--data", "DATA", "list"]).1
}

const FOUR: [&str; 4] = ["g1", "g2", "g3", "g4"];

/// Regression: `echo zz > CURRENT; gc --keep 1` removed 4 generations.
#[test]
fn regression_gc_with_a_garbage_current_removed_four_generations() {
    let data = data_dir_with(&FOUR, Some("g4"));
    let before = list(data.path());
    fs::write(data.path().join("CURRENT"), "zz\n").unwrap();
    let (ok, _, stderr) = run(
        data.path(),
        &["generations", "--data", "DATA", "gc", "--keep", "1"],
    );
    assert!(!ok, "{stderr}");
    let current = data.path().join("CURRENT").display().to_string();
    for part in [
        "gc removed nothing",
        &current,
        "generations rollback --to <id>",
    ] {
        assert!(stderr.contains(part), "{part:?} not in: {stderr}");
    }
    assert_eq!(list(data.path()), before.replace('*', " "));
}

/// `generations list` on a store set up by `setup` succeeds or not as `ok` says, prints
/// `stdout` and warns with `warning` (nothing when empty).
fn check_list(setup: fn(&Path), ok: bool, stdout: &str, warning: &str) {
    let data = data_dir_with(&["g1", "g2"], Some("g2"));
    setup(data.path());
    let (success, out, err) = run(data.path(), &["generations", "--data", "DATA", "list"]);
    assert_eq!((success, out.as_str()), (ok, stdout), "{err}");
    match warning {
        "" => assert_eq!(err, ""),
        _ => assert!(
            err.starts_with("warning: ") && err.contains(warning),
            "{err}"
        ),
    }
}

/// Regression: `generations list` with CURRENT missing or dangling printed no warning and
/// exited 0, no generation marked.
#[test]
fn regression_list_said_nothing_of_a_missing_or_dangling_current() {
    let no_current = |d: &Path| fs::remove_file(d.join("CURRENT")).unwrap();
    let garbage = |d: &Path| fs::write(d.join("CURRENT"), "zz\n").unwrap();
    let empty_store = |d: &Path| {
        fs::remove_file(d.join("CURRENT")).unwrap();
        fs::remove_dir_all(d.join("generations")).unwrap();
    };
    check_list(|_| {}, true, "  g1\n* g2\n", "");
    check_list(
        no_current,
        false,
        "  g1\n  g2\n",
        "CURRENT does not exist, so no gen",
    );
    check_list(
        garbage,
        false,
        "  g1\n  g2\n",
        "CURRENT names generation \"zz\", which",
    );
    check_list(
        empty_store,
        true,
        "",
        "no generation has been published yet; run `shikaku build`",
    );
}

/// Regression: `rollback --to g2099` and `verify --generation g2099` said "`DATA/CURRENT`
/// names generation "g2099", which does not exist", though CURRENT was not involved.
#[test]
fn regression_a_named_generation_was_blamed_on_current() {
    let data = data_dir_with(&FOUR, Some("g4"));
    let gens = data.path().join("generations").display().to_string();
    let expected =
        format!("there is no generation \"g2099\" in {gens}; `shikaku generations list`");
    for args in [
        &["generations", "--data", "DATA", "rollback", "--to", "g2099"][..],
        &["verify", "--data", "DATA", "--generation", "g2099"],
    ] {
        let (ok, _, stderr) = run(data.path(), args);
        assert!(!ok && stderr.contains(&expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("CURRENT"), "{args:?}: {stderr}");
    }
}

/// Regression: a data directory that does not exist was "CURRENT names no generation; run
/// `shikaku build` first" (verify, query, serve); `generations` listed nothing and exited 0.
#[test]
fn regression_a_missing_data_directory_was_taken_for_an_empty_one() {
    let missing = tempfile::tempdir().unwrap().path().join("nowhere");
    let expected = format!("data directory {} does not exist", missing.display());
    let person = person(P1);
    for args in [
        &["verify", "--data", "DATA"][..],
        &[
            "query",
            "--data",
            "DATA",
            "person",
            "--individual-number",
            person.as_str(),
        ],
        &[
            "serve",
            "--data",
            "DATA",
            "--resp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
        &["generations", "--data", "DATA", "rollback", "--to", "g1"],
        &["generations", "--data", "DATA", "gc", "--keep", "1"],
        &["generations", "--data", "DATA", "list"],
    ] {
        let (ok, _, stderr) = run(&missing, args);
        assert!(!ok && stderr.contains(&expected), "{args:?}: {stderr}");
    }
    assert!(!missing.exists(), "nothing created");
}

/// Regression: a rollback with nothing before the live generation said "no generation
/// before the live one names no generation".
#[test]
fn rollback_with_nothing_before_names_the_live_generation() {
    let data = data_dir();
    let (ok, _, stderr) = run(data.path(), &["generations", "--data", "DATA", "rollback"]);
    let expected = format!("no generation was live before {GENERATION}");
    assert!(!ok && stderr.contains(&expected), "{stderr}");
}

/// Regression: refused builds (`DATA/refused/`) were never collected.
#[test]
fn gc_removes_refused_builds_beyond_keep() {
    let data = data_dir_with(&["g1", "g2", "g3"], Some("g3"));
    for id in ["r1", "r2"] {
        fs::create_dir_all(data.path().join("refused").join(id)).unwrap();
    }
    let (ok, stdout, stderr) = run(
        data.path(),
        &["generations", "--data", "DATA", "gc", "--keep", "1"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "removed g1\nremoved g2\nremoved refused build r1\n");
    assert_eq!(list(data.path()), "* g3\n");
    assert!(data.path().join("refused/r2").is_dir());
}

/// A person key variable set but empty is refused with what to do, never taken for the demo
/// key (whose hashes would answer nobody) nor read as a file named "".
#[test]
fn an_empty_person_key_variable_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    // A synthetic number with its check digit, never written out whole in the source.
    let number: String = shikaku::domain::IndividualNumber::from_first11(12_345_678_901)
        .expose_digits()
        .iter()
        .map(|&b| b as char)
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["query", "person", "--data"])
        .arg(tmp.path())
        .args(["--individual-number", &number])
        .env("SHIKAKU_PERSON_KEY_FILE", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is set but empty"), "{stderr}");
}
