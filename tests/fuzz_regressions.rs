//! The fuzz targets' checks on stable: every seed in `fuzz/seeds/<target>/` and every input
//! a fuzzer found a crash with, kept in `tests/fuzz_regressions/<target>/`, must pass the
//! check its target runs (docs/fuzzing.md). An input that still fails, waiting for a fix in
//! code this suite does not own, can wait in `tests/fuzz_pending/<target>/`, replayed by an
//! ignored test (`replay("tests/fuzz_pending")`) that names what it waits for; when it passes,
//! it moves to the regressions and the test goes (none waits now). The checks are the fuzz
//! crate's own source, compiled into this test, so the two cannot drift apart.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};

/// The files of `dir/<target>/` for every target, sorted; a directory of no known target is
/// an error (a misnamed directory would otherwise be skipped silently).
fn inputs(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(&(target, _)) = harness::TARGETS.iter().find(|(t, _)| *t == name) else {
            panic!("{} names no fuzz target", path.display());
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .expect("target directory")
            .map(|e| e.expect("directory entry").path())
            .collect();
        files.sort();
        found.extend(files.into_iter().map(|f| (target, f)));
    }
    found
}

fn replay(dir: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let inputs = inputs(&dir);
    for (target, file) in &inputs {
        let data = std::fs::read(file).expect("input file");
        let run = std::panic::catch_unwind(|| harness::check(target, &data));
        assert!(run.is_ok(), "{target} fails on {}", file.display());
    }
    inputs.len()
}

#[test]
fn seeds_pass_their_checks() {
    let n = replay("fuzz/seeds");
    assert!(n > 0, "no seeds under fuzz/seeds");
}

#[test]
fn found_crashes_stay_fixed() {
    replay("tests/fuzz_regressions");
}
