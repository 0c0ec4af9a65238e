//! deploy/*.service and the timer: `systemd-analyze verify` finds nothing to say about them
//! (the replica's unit writes its data directory, which the follower needs),
//! and the server unit's own ExecStart, run as systemd would run it (with `$NOTIFY_SOCKET`,
//! the paths pointed at a test data directory), tells systemd READY=1 only once it answers;
//! its ExecReload (SIGHUP) keeps it serving, and SIGTERM (KillSignal) ends it with exit 0.
//!
//! systemd-analyze comes with Debian's systemd package (`.ci/run` installs it). Outside CI
//! without it the verification is skipped with a message; with CI=true it never is.

mod server_support;

use server_support::*;
use shikaku::domain::InstitutionCode;
use shikaku::server::{auth::new_entry, Role};
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn deploy(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

fn unit(name: &str) -> String {
    std::fs::read_to_string(deploy(name)).unwrap()
}

/// The value of `key=` in a unit's text (the first one).
fn setting<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
}

#[test]
fn units_verify_cleanly() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "systemd-analyze is missing under CI: .ci/run must install Debian's systemd package"
        );
        eprintln!("skipped: systemd-analyze not found (apt-get install -y systemd)");
        return;
    }
    // verify checks that each command exists: point them at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for name in [
        "shikaku.service",
        "shikaku-replica.service",
        "shikaku-build.service",
        "shikaku-build.timer",
        "shikaku-watch.service",
    ] {
        let text = unit(name).replace("/usr/local/bin/shikaku", env!("CARGO_BIN_EXE_shikaku"));
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    // An unknown key is only a warning to systemd (exit 0): any word from it fails here.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// A replica's follower downloads into, seals in and removes from its data directory: a unit
/// that made it read-only (as the server unit beside a local build does) failed at its first
/// download.
#[test]
fn the_replica_unit_follows_and_may_write_its_data_directory() {
    let text = unit("shikaku-replica.service");
    let exec = setting(&text, "ExecStart");
    let data = exec
        .split_once("--data ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .expect("--data in ExecStart");
    assert!(
        exec.contains(" --follow s3://") && exec.contains(" --replica-id "),
        "{exec}"
    );
    let writable = setting(&text, "ReadWritePaths");
    assert!(writable.split_whitespace().any(|p| p == data), "{writable}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("ReadOnlyPaths=") && l.contains(data)),
        "{text}"
    );
    assert_eq!(setting(&text, "Type"), "notify");
}

/// The ingest unit's ExecStart, run as systemd runs it (its paths pointed at the test's),
/// builds what is in the delivery, builds a change file renamed in, and stops on SIGTERM
/// (KillSignal) with exit 0; it may write its data directory and only read the delivery.
#[test]
fn the_watch_unit_builds_what_lands_and_stops_on_its_kill_signal() {
    let text = unit("shikaku-watch.service");
    let exec = setting(&text, "ExecStart");
    let arg = |name: &str| {
        exec.split_once(&format!("{name} "))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{name} in ExecStart"))
    };
    let (data_path, snap_path) = (arg("--data"), arg("--snapshots"));
    assert!(setting(&text, "ReadWritePaths")
        .split_whitespace()
        .any(|p| p == data_path));
    assert!(setting(&text, "ReadOnlyPaths")
        .split_whitespace()
        .any(|p| p == snap_path));
    assert_eq!(setting(&text, "KillSignal"), "SIGTERM");
    assert!(setting(&text, "Conflicts").contains("shikaku-build.timer"));

    let dir = tempfile::tempdir().unwrap();
    let (data, snap) = (dir.path().join("data"), dir.path().join("snap"));
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data-gen/demo");
    assert!(Command::new("cp")
        .arg("-r")
        .arg(&demo)
        .arg(&snap)
        .status()
        .unwrap()
        .success());
    let args: Vec<String> = exec
        .split_whitespace()
        .map(|w| match w {
            "/usr/local/bin/shikaku" => env!("CARGO_BIN_EXE_shikaku").to_owned(),
            w if w == data_path => data.display().to_string(),
            w if w == snap_path => snap.display().to_string(),
            w => {
                assert!(!w.starts_with('/'), "the test does not know the path {w}");
                w.to_owned()
            }
        })
        .collect();
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .env("SHIKAKU_PERSON_KEY_FILE", write_key(dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let built = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let status = std::fs::read_to_string(data.join("watch.json")).unwrap_or_default();
            if status.contains(&format!("\"builds\": {n},"))
                && status.contains("\"state\": \"watching\"")
            {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "build {n}: {status}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert!(built(1).contains("\"outcome\": \"published\""));
    let changes = snap.join("01130012/changes");
    std::fs::create_dir_all(&changes).unwrap();
    let row = "insurer_number,symbol,number,branch,individual_number,name,name_kana,sex,birthdate,relationship,qualification_date,disqualification_date,reason_of_loss,copay_ratio,limit_category,change\n";
    std::fs::write(changes.join("x.part"), row).unwrap();
    std::fs::rename(changes.join("x.part"), changes.join("20261124-090000.csv")).unwrap();
    assert!(built(2).contains("\"outcome\": \"published\""));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-s", setting(&text, "KillSignal"), &pid])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
}

/// A person key file holding the demo key.
fn write_key(dir: &Path) -> PathBuf {
    let path = dir.join("person.key");
    std::fs::write(&path, demo_key_hex()).unwrap();
    path
}

/// The server unit's ExecStart with its paths and addresses pointed at the test's.
fn exec_start(data: &Path, auth: &Path, audit: &Path) -> Vec<String> {
    let text = unit("shikaku.service");
    let line = setting(&text, "ExecStart");
    let args: Vec<String> = line
        .split_whitespace()
        .map(|w| match w {
            "/usr/local/bin/shikaku" => env!("CARGO_BIN_EXE_shikaku").to_owned(),
            "/var/lib/shikaku" => data.display().to_string(),
            "/etc/shikaku/clients.auth" => auth.display().to_string(),
            "/var/log/shikaku/audit" => audit.display().to_string(),
            "0.0.0.0:7379" | "0.0.0.0:7380" => "127.0.0.1:0".to_owned(),
            w => {
                assert!(!w.starts_with('/'), "the test does not know the path {w}");
                w.to_owned()
            }
        })
        .collect();
    assert!(args.iter().any(|a| a == "serve"), "{line}");
    args
}

/// The demo key (the test index's) as a key file holds it.
fn demo_key_hex() -> String {
    blake3::derive_key("shikaku demo person key v1", b"")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_server_unit_notifies_readiness_reloads_and_stops() {
    let data = data_dir();
    let etc = tempfile::tempdir().unwrap();
    let code = InstitutionCode::parse("0110113719").unwrap();
    let (_, line) = new_entry(code, Role::Query).unwrap();
    let auth = etc.path().join("clients.auth");
    std::fs::write(&auth, format!("{line}\n")).unwrap();
    let key = etc.path().join("person.key");
    std::fs::write(&key, demo_key_hex()).unwrap();
    let audit = etc.path().join("audit");
    let socket_path = etc.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();

    let text = unit("shikaku.service");
    assert_eq!(setting(&text, "Type"), "notify");
    assert_eq!(
        setting(&text, "Environment"),
        "SHIKAKU_PERSON_KEY_FILE=/etc/shikaku/person.key"
    );
    let args = exec_start(data.path(), &auth, &audit);
    let mut child = KillOnDrop(
        Command::new(&args[0])
            .args(&args[1..])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("SHIKAKU_PERSON_KEY_FILE", &key)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = child.stderr.take().unwrap();
    // The log is read to its end on a thread (the server must never block on a full pipe);
    // the HTTP address it names is sent back as soon as its line is whole.
    let (tx, addr) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            log.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some((a, _)) = log
                .split(", HTTP on ")
                .nth(1)
                .and_then(|l| l.split_once('\n'))
            {
                let _ = tx.send(a.trim().to_owned());
            }
        }
        log
    });
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY=1 within 60 s: {e}"));
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(
        message,
        format!("READY=1\nSTATUS=serving generation {GENERATION}")
    );

    // Ready means answering: the ports were logged before READY=1 was sent.
    let http: std::net::SocketAddr = addr
        .recv_timeout(Duration::from_secs(5))
        .expect("the HTTP address logged before READY=1")
        .parse()
        .unwrap();
    let mut client = Http::connect(http);
    assert_eq!(client.request("GET", "/healthz", &[], b"").status, 200);

    let pid = child.id().to_string();
    let reload = setting(&text, "ExecReload").replace("$MAINPID", &pid);
    let words: Vec<&str> = reload.split_whitespace().collect();
    assert!(Command::new(words[0])
        .args(&words[1..])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the server"
    );
    assert_eq!(client.request("GET", "/healthz", &[], b"").status, 200);

    assert_eq!(setting(&text, "KillSignal"), "SIGTERM");
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("drained"), "{log}");
}

/// A child process killed if the test fails before it ends.
struct KillOnDrop(std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
