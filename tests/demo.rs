//! `shikaku demo` on the built-in demo delivery: builds, reports every defect kind, and prints
//! a query of each validity.

use std::process::Command;

#[test]
fn demo_builds_the_builtin_delivery_and_prints_queries() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["demo", "--no-serve", "--data"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("published g"), "{stdout}");
    for rule in [
        "R1 ", "R7 ", "W1 ", "W4 ", "X1 ", "X2 ", "X3 ", "F1 ", "DUP ",
    ] {
        assert!(stdout.contains(rule), "demo report lacks {rule}: {stdout}");
    }
    for v in 1..=5 {
        assert!(
            stdout.contains(&format!("card query, expected validity {v}")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("ELIG.PERSON"), "{stdout}");
    // The public-expense query to try, from the demo's registers: both forms.
    assert!(
        stdout.contains("ELIG.KOHI '12010013' '1000017' '1944-02-22' '2026-11-24'"),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"/v1/kohi -d '{"birthdate":"1944-02-22","date":"2026-11-24","institution_code":"0110000007","payer_number":"12010013","recipient_number":"1000017"}'"#),
        "{stdout}"
    );
}

#[test]
fn demo_with_a_missing_delivery_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["demo", "--no-serve", "--snapshots"])
        .arg(dir.path().join("nothing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no demo delivery") && stderr.contains("--snapshots"),
        "{stderr}"
    );
}
