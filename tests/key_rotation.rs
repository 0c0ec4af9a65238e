//! The person-key rotation of docs/operations.md, step by step with the real programs: a
//! key made by `person-key new`, a build under a second key, the running server refusing
//! that generation (and answering from the old one) until it is restarted with the new key,
//! and the audit log's person hashes: the old key's before the swap, the new key's after,
//! each what `person-key hash` prints under that key.

mod server_support;

use server_support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A person of the demo delivery covered on 2026-11-24 (data-gen/demo/queries.csv).
const PERSON: &str = "781011015494";
const ON: &str = "2026-11-24";

fn shikaku(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn build(key: &Path, data: &Path) -> String {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data-gen/demo");
    ok(shikaku(&[
        "build".as_ref(),
        "--person-key-file".as_ref(),
        key.as_os_str(),
        "--snapshots".as_ref(),
        demo.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
        "--date".as_ref(),
        ON.as_ref(),
    ]));
    std::fs::read_to_string(data.join("CURRENT"))
        .unwrap()
        .trim()
        .to_owned()
}

/// `person-key hash` of [`PERSON`] under `key`, the number given on standard input.
fn person_hash(key: &Path) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(["person-key", "hash", "--person-key-file"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PERSON}\n").as_bytes())
        .unwrap();
    let hash = ok(child.wait_with_output().unwrap()).trim().to_owned();
    assert_eq!(hash.len(), 32, "{hash}");
    hash
}

fn serve(data: &Path, key: &Path, audit: &Path) -> ServeProcess {
    ServeProcess::start(
        data,
        &[
            "--person-key-file".as_ref(),
            key.as_os_str(),
            "--audit-dir".as_ref(),
            audit.as_os_str(),
        ],
    )
}

/// Asks for [`PERSON`]; the validity and the generation that answered.
fn ask(server: &ServeProcess) -> (u64, String) {
    let mut http = Http::connect(server.http);
    let body = format!(r#"{{"individual_number":"{PERSON}","date":"{ON}"}}"#);
    let r = http.request("POST", "/v1/person", &[], body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    let a = r.json();
    (
        a["validity"].as_u64().unwrap(),
        a["generation"].as_str().unwrap().to_owned(),
    )
}

fn stop(server: ServeProcess) -> String {
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (status, log) = server.wait();
    assert!(status.success(), "{log}");
    log
}

/// The `person` field of every person line of the audit log in `dir`.
fn audited_hashes(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter_map(|v| v["person"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_key_rotation_as_the_operations_guide_describes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (old_key, new_key) = (
        dir.path().join("person.key"),
        dir.path().join("person.key.new"),
    );
    let (audit_before, audit_after) = (dir.path().join("audit1"), dir.path().join("audit2"));

    // 1. Two keys; a key file is never overwritten.
    for key in [&old_key, &new_key] {
        let fingerprint = ok(shikaku(&[
            "person-key".as_ref(),
            "new".as_ref(),
            "--out".as_ref(),
            key.as_os_str(),
        ]));
        assert_eq!(fingerprint.trim().len(), 16, "{fingerprint}");
    }
    let again = shikaku(&[
        "person-key".as_ref(),
        "new".as_ref(),
        "--out".as_ref(),
        old_key.as_os_str(),
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));

    // 2. Serving a generation built under the old key.
    let first = build(&old_key, &data);
    let server = serve(&data, &old_key, &audit_before);
    assert_eq!(ask(&server), (1, first.clone()));

    // 3. The build under the new key publishes; the server, holding the old key, refuses
    // it and goes on answering from the generation it has.
    let second = build(&new_key, &data);
    assert_ne!(first, second);
    let mut http = Http::connect(server.http);
    let deadline = Instant::now() + Duration::from_secs(20);
    let refusal = loop {
        let g = http.request("GET", "/v1/generation", &[], b"").json();
        if let Some(why) = g["last_reload_refused"].as_str() {
            assert_eq!(g["id"], first.as_str());
            break why.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the server never refused {second}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(refusal.contains("another person key"), "{refusal}");
    assert_eq!(ask(&server), (1, first.clone()));
    let metrics = http.request("GET", "/metrics", &[], b"").body;
    assert!(
        metrics.contains("\nshikaku_reload_refused 1\n"),
        "{metrics}"
    );
    stop(server);

    // 4. Restarted with the new key, it serves the new generation.
    let server = serve(&data, &new_key, &audit_after);
    assert_eq!(ask(&server), (1, second.clone()));
    stop(server);

    // 5. The audit log: before the swap the old key's hash, after it the new key's.
    let (old_hash, new_hash) = (person_hash(&old_key), person_hash(&new_key));
    assert_ne!(old_hash, new_hash);
    assert_eq!(audited_hashes(&audit_before), vec![old_hash.clone(); 2]);
    assert_eq!(audited_hashes(&audit_after), vec![new_hash]);

    // 6. The generations of the old key are closed to the new one: a rollback to the first
    // is refused, naming the key, and the new generation stays live.
    let rollback = shikaku(&[
        "generations".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "rollback".as_ref(),
        "--person-key-file".as_ref(),
        new_key.as_os_str(),
        "--to".as_ref(),
        first.as_ref(),
    ]);
    assert!(!rollback.status.success());
    let said = String::from_utf8_lossy(&rollback.stderr);
    assert!(said.contains("another person key"), "{said}");
    let live = std::fs::read_to_string(data.join("CURRENT")).unwrap();
    assert_eq!(live.trim(), second);
}
