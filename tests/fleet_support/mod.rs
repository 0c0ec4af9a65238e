//! A real S3-compatible server for the fleet's tests: moto's server mode, started on a free
//! loopback port, a bucket made, killed when dropped. Without moto the tests say so and skip,
//! except under CI (CI=true), where a missing moto fails them.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "fleet";

pub struct Moto {
    pub addr: SocketAddr,
    child: Option<Child>,
}

/// Whether `program ARGS` runs and succeeds here. Without it the test says so and skips, but
/// under CI (CI=true) it fails: `.ci/run` installs what the tests need (`install` says how).
pub fn tool_available(test: &str, program: &str, args: &[&str], install: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: `{program}` is missing, and CI must run this test (.ci/run installs it: {install})"
        );
        eprintln!("{test}: skipped: `{program}` is missing ({install})");
    }
    ok
}

/// Whether moto's server can run here; under CI it must.
pub fn moto_available(test: &str) -> bool {
    tool_available(
        test,
        "python3",
        &["-c", "import moto.server, flask"],
        "pip install 'moto[server]'",
    )
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts moto on a free port and makes the bucket; `None` (skipped) without moto.
    pub fn start(test: &str) -> Option<Moto> {
        if !moto_available(test) {
            return None;
        }
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut moto = Moto { addr, child: None };
        moto.run();
        moto.request("PUT", &format!("/{BUCKET}"));
        Some(moto)
    }

    fn run(&mut self) {
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto's server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not listen on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the store (its objects are lost: moto keeps them in memory).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the store's process where it is (SIGSTOP): connections hang, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets it run again (SIGCONT), its objects as they were.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("moto runs").id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An unsigned request straight to moto (it does not check signatures); the status.
    pub fn request(&self, method: &str, path: &str) -> u16 {
        self.request_with(method, path, "")
    }

    /// [`Moto::request`] with a body. The path goes as it is: a key with a `..` or an empty
    /// segment, which S3 accepts and an SDK would not send, reaches the store. (An
    /// Authorization header moto does not check, without which it refuses a DELETE.)
    pub fn request_with(&self, method: &str, path: &str, body: &str) -> u16 {
        let mut s = TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The environment `shikaku` and the library need to reach it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// Sets the credentials and region in this process, for the library's client (the same
    /// for every test; the endpoint is given to each client).
    pub fn set_env(&self) {
        for (k, v) in self.env() {
            if k != "AWS_ENDPOINT_URL" {
                std::env::set_var(k, v);
            }
        }
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The repository's demo delivery.
pub fn demo_snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data-gen/demo")
}

/// Runs `shikaku ARGS`; panics with its output unless it succeeds; returns stdout.
pub fn shikaku(args: &[&std::ffi::OsStr], env: &[(&str, String)]) -> String {
    let out = shikaku_output(args, env);
    assert!(out.0, "shikaku {args:?} failed:\n{}\n{}", out.1, out.2);
    out.1
}

/// Runs `shikaku ARGS`: (success, stdout, stderr).
pub fn shikaku_output(args: &[&std::ffi::OsStr], env: &[(&str, String)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Builds a generation of the demo delivery into `data`; returns its id. Successive builds
/// are incremental (every segment file hard-linked), each with a new id.
pub fn build_generation(data: &Path) -> String {
    build_generation_with(data, &[])
}

/// [`build_generation`] with more options for `shikaku build`.
pub fn build_generation_with(data: &Path, more: &[&std::ffi::OsStr]) -> String {
    let before = Instant::now();
    let snapshots = demo_snapshots();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "build".as_ref(),
        "--snapshots".as_ref(),
        snapshots.as_os_str(),
        "--data".as_ref(),
        data.as_os_str(),
        "--max-drop-percent".as_ref(),
        "100".as_ref(),
    ];
    args.extend(more);
    shikaku(&args, &[]);
    // Ids are made to the millisecond: a second build in the same one would collide.
    std::thread::sleep(Duration::from_millis(5).saturating_sub(before.elapsed()));
    std::fs::read_to_string(data.join("CURRENT"))
        .unwrap()
        .trim()
        .to_owned()
}

/// One replica process (`shikaku serve --follow`) on loopback ports, its log in a file.
pub struct Replica {
    pub id: String,
    pub data: PathBuf,
    pub resp: u16,
    pub http: u16,
    child: Option<Child>,
    pub log: PathBuf,
    prefix: String,
}

impl Replica {
    /// A replica `id` following the store's `prefix`, its data and log under `work`.
    pub fn new(id: &str, work: &Path, prefix: &str) -> Replica {
        Replica {
            id: id.to_owned(),
            data: work.join(id),
            resp: free_port(),
            http: free_port(),
            child: None,
            log: work.join(format!("{id}.log")),
            prefix: prefix.to_owned(),
        }
    }

    pub fn start(&mut self, moto: &Moto) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shikaku"))
            .args(["serve", "--threads", "1", "--resp"])
            .arg(format!("127.0.0.1:{}", self.resp))
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.http))
            .arg("--data")
            .arg(&self.data)
            .args([
                "--follow",
                &moto.url(&self.prefix),
                "--replica-id",
                &self.id,
            ])
            .args(["--follow-endpoint", &moto.endpoint()])
            .envs(moto.env())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.http).into()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on its HTTP port: the status and body, `None` when it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(self.addr()).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        let (head, body) = reply.split_once("\r\n\r\n")?;
        let code = head.split(' ').nth(1)?.parse().ok()?;
        Some((code, body.to_owned()))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn wait_for(what: &str, limit: Duration, f: impl FnMut() -> bool) -> Duration {
    wait_for_or(what, limit, f, String::new)
}

/// [`wait_for`], printing `why()` (the replicas' logs, say) if the wait runs out.
pub fn wait_for_or(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> bool,
    why: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < limit,
            "waited {limit:?} for {what}\n{}",
            why()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}
