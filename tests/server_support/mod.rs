//! Shared by the server tests: a small data directory whose queries cover validities 1–5,
//! an in-process server on ephemeral ports, and minimal HTTP and raw-socket clients.

#![allow(dead_code)]

use shikaku::domain::*;
use shikaku::generations::Store;
use shikaku::server::{serve, AuthTable, Live, ServeConfig, Server};
use shikaku::testing::{build, insurer, Member, INSURER_NAME};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

pub const DATE: &str = "2026-11-24";
pub const GENERATION: &str = "g-server-test";

/// The individual number of `first11` in clear (test data).
pub fn person(first11: u64) -> String {
    shikaku::testing::individual_number(first11)
}

/// Individual numbers of the data set.
pub const P1: u64 = 12345678901; // one covering record: 1
pub const P2: u64 = 22345678901; // one record, ended: 2
pub const P3: u64 = 32345678901; // old card ended, new card covering: card 3
pub const P5: u64 = 52345678901; // covered by two insurers: person 5
pub const P9: u64 = 92345678901; // unknown: 4

/// Card queries `(symbol, number, branch, birthdate)` on insurer 33120015 and the validity
/// each gets on [`DATE`].
pub const CARDS: [(&str, &str, &str, &str, u8); 5] = [
    ("12", "3456", "", "1980-01-23", 1),
    ("12", "5000", "00", "1975-05-05", 2),
    ("12", "3457", "", "1970-03-03", 3),
    ("12", "9999", "", "1980-01-23", 4),
    ("12", "7000", "", "1990-09-09", 5),
];

/// Person queries and their validities on [`DATE`].
pub const PERSONS: [(u64, u8); 5] = [(P1, 1), (P2, 2), (P3, 1), (P9, 4), (P5, 5)];

pub fn index_files() -> shikaku::index::IndexFiles<Vec<u8>> {
    let a = "33120015";
    let b = "06139992";
    let rows_a = [
        Member {
            insurer: a,
            number: "3456",
            branch: 0,
            person: Some(P1),
            birth: "1980-01-23",
            qual: "2015-04-01",
            disq: None,
            limit: Some("A03"),
            ..Member::default()
        },
        Member {
            insurer: a,
            number: "5000",
            branch: 0,
            person: Some(P2),
            birth: "1975-05-05",
            qual: "2010-04-01",
            disq: Some("2020-04-01"),
            limit: Some("A03"),
            ..Member::default()
        },
        Member {
            insurer: a,
            number: "3457",
            branch: 1,
            person: Some(P3),
            birth: "1970-03-03",
            qual: "2010-04-01",
            disq: Some("2016-01-01"),
            limit: Some("A03"),
            ..Member::default()
        },
        Member {
            insurer: a,
            number: "3458",
            branch: 0,
            person: Some(P3),
            birth: "1970-03-03",
            qual: "2016-01-01",
            disq: None,
            limit: Some("A03"),
            ..Member::default()
        },
        Member {
            insurer: a,
            number: "7000",
            branch: 0,
            person: None,
            birth: "1990-09-09",
            qual: "2012-04-01",
            disq: None,
            limit: Some("A03"),
            ..Member::default()
        },
        Member {
            insurer: a,
            number: "7000",
            branch: 1,
            person: None,
            birth: "1990-09-09",
            qual: "2012-04-01",
            disq: None,
            limit: Some("A03"),
            ..Member::default()
        },
        Member {
            insurer: a,
            number: "8000",
            branch: 0,
            person: Some(P5),
            birth: "1960-06-06",
            qual: "2000-04-01",
            disq: None,
            limit: Some("A03"),
            ..Member::default()
        },
    ];
    let rows_b = [Member {
        insurer: b,
        number: "8001",
        branch: 0,
        person: Some(P5),
        birth: "1960-06-06",
        qual: "2005-04-01",
        disq: None,
        limit: Some("A03"),
        ..Member::default()
    }];
    build(
        vec![
            insurer(a, INSURER_NAME, InsurerKind::Kyosai, "2026-11-01", &rows_a),
            insurer(
                b,
                "テスト健康保険組合",
                InsurerKind::Kumiai,
                "2026-11-01",
                &rows_b,
            ),
        ],
        "2026-11-20",
        GENERATION,
    )
}

/// Two clients, a `query` one (0110113719) and an `admin` one (1310000003): the auth table
/// admitting them and their `Authorization` header values.
pub fn query_and_admin_clients() -> (AuthTable, String, String) {
    use shikaku::server::{auth::new_entry, Role};
    let query_code = InstitutionCode::parse("0110113719").unwrap();
    let admin_code = InstitutionCode::parse("1310000003").unwrap();
    let (query_token, query_line) = new_entry(query_code, Role::Query).unwrap();
    let (admin_token, admin_line) = new_entry(admin_code, Role::Admin).unwrap();
    let table = AuthTable::parse(&format!("{query_line}\n{admin_line}\n")).unwrap();
    (
        table,
        format!("Bearer {query_code}:{query_token}"),
        format!("Bearer {admin_code}:{admin_token}"),
    )
}

/// `shikaku serve --auth FILE` on `data`, the file admitting one `query` client (0110113719):
/// the server, the client's institution code and its token.
pub fn serve_one_client(data: &Path) -> (ServeProcess, InstitutionCode, String) {
    let code = InstitutionCode::parse("0110113719").unwrap();
    let (token, line) =
        shikaku::server::auth::new_entry(code, shikaku::server::Role::Query).unwrap();
    let auth = data.join("auth.txt");
    std::fs::write(&auth, line).unwrap();
    let server = ServeProcess::start(data, &["--auth".as_ref(), auth.as_os_str()]);
    (server, code, token)
}

/// `ELIG.CARD 33120015 symbol number branch birthdate DATE` over a `redis` connection.
pub fn resp_card(
    con: &mut redis::Connection,
    (symbol, number, branch, birth): (&str, &str, &str, &str),
) -> redis::RedisResult<String> {
    redis::cmd("ELIG.CARD")
        .arg("33120015")
        .arg(symbol)
        .arg(number)
        .arg(branch)
        .arg(birth)
        .arg(DATE)
        .query(con)
}

/// A data directory with the test index published as its live generation.
pub fn data_dir() -> tempfile::TempDir {
    data_dir_with(&[GENERATION], Some(GENERATION))
}

/// A data directory with the test index as each of generations `ids`, `live` published.
pub fn data_dir_with(ids: &[&str], live: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let files = index_files();
    for id in ids {
        shikaku::nightly::write_files(&files, &store.begin(id).unwrap()).unwrap();
        store.seal(id).unwrap();
    }
    if let Some(live) = live {
        store.publish(live).unwrap();
    }
    dir
}

/// A server on ephemeral loopback ports over `data`, two cores, not pinned.
pub fn start(data: &Path, auth: Option<AuthTable>) -> Server {
    start_with(data, auth, Default::default())
}

/// As [`start`], on the given I/O driver.
pub fn start_with(data: &Path, auth: Option<AuthTable>, driver: shikaku::server::Driver) -> Server {
    let any = "127.0.0.1:0".parse().unwrap();
    try_start(
        data,
        ServeConfig {
            resp: any,
            http: any,
            auth,
            driver,
            ..test_config()
        },
    )
    .unwrap()
}

/// What the tests' servers share: two cores, not pinned, ephemeral loopback ports.
pub fn test_config() -> ServeConfig {
    let any = "127.0.0.1:0".parse().unwrap();
    ServeConfig {
        resp: any,
        http: any,
        threads: 2,
        pin: false,
        ..Default::default()
    }
}

/// A server over `data` as `config` says, or why it did not start.
pub fn try_start(data: &Path, config: ServeConfig) -> Result<Server, shikaku::server::ServeError> {
    let index = Store::new(data).open_current(PersonKey::demo()).unwrap();
    let live = Arc::new(Live::new(index).unwrap());
    serve(config, live)
}

/// `shikaku query` output for `args` (after `query --data DIR`).
pub fn cli_query(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
        .arg("query")
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

pub fn cli_card(data: &Path, symbol: &str, number: &str, branch: &str, birth: &str) -> String {
    let mut args = vec![
        "card",
        "--insurer-number",
        "33120015",
        "--symbol",
        symbol,
        "--number",
        number,
        "--birthdate",
        birth,
        "--date",
        DATE,
    ];
    if !branch.is_empty() {
        args.extend(["--branch", branch]);
    }
    cli_query(data, &args)
}

pub fn cli_person(data: &Path, individual_number: &str) -> String {
    cli_query(
        data,
        &[
            "person",
            "--individual-number",
            individual_number,
            "--date",
            DATE,
        ],
    )
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A keep-alive HTTP/1.1 client over one connection.
pub struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub fn connect(addr: SocketAddr) -> Http {
        Http::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// A client over a connection made elsewhere (with socket options of its own).
    pub fn from_stream(stream: TcpStream) -> Http {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Http {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn set_read_timeout(&mut self, limit: Duration) {
        self.stream.set_read_timeout(Some(limit)).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// `POST /v1/batch` of a CSV body.
    pub fn post_csv_batch(&mut self, csv: &[u8]) -> Response {
        self.request("POST", "/v1/batch", &[("Content-Type", "text/csv")], csv)
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.send_raw(&bytes);
        self.read_response().expect("a response")
    }

    /// Reads one response; `None` when the server closed the connection first.
    pub fn read_response(&mut self) -> Option<Response> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = resp.parse(&self.buf) {
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let status = resp.code.unwrap();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().unwrap())
                    .unwrap();
                if self.buf.len() >= n + len {
                    let body = String::from_utf8(self.buf[n..n + len].to_vec()).unwrap();
                    self.buf.drain(..n + len);
                    return Some(Response {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                // A signal to the test process can interrupt a blocking read (regression: the
                // first request of a test once failed on EINTR); that is no answer yet.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => return None,
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
            }
        }
    }

    /// Whether the server has closed the connection (after everything it sent was read).
    pub fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return matches!(r, Ok(0) | Err(_)),
            }
        }
    }
}

/// Sends raw bytes on a fresh connection, shuts down its sending side, and reads until the
/// server closes it or `expect` bytes arrived.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], expect: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before all of an oversized request is sent, so a failed
    // write or shutdown is expected here; what it sent back is what the test checks.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    while got.len() < expect {
        match s.read(&mut chunk) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => break,
            Ok(k) => got.extend_from_slice(&chunk[..k]),
        }
    }
    got
}

/// A `shikaku serve` process on ephemeral loopback ports, killed when dropped.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub resp: SocketAddr,
    pub http: SocketAddr,
    /// The log up to the line naming the addresses.
    pub startup_log: String,
    log: Option<std::thread::JoinHandle<String>>,
}

impl ServeProcess {
    /// `shikaku serve --resp 127.0.0.1:0 --http 127.0.0.1:0 --threads 1 --data DATA EXTRA…`,
    /// once it has logged its addresses.
    pub fn start(data: &Path, extra: &[&std::ffi::OsStr]) -> ServeProcess {
        Self::start_under(&[], data, extra)
    }

    /// As [`ServeProcess::start`], the server run by the command `wrapper` (e.g. `prlimit
    /// --nofile=…`) when it is not empty; the wrapper must exec the server in its place.
    pub fn start_under(wrapper: &[&str], data: &Path, extra: &[&std::ffi::OsStr]) -> ServeProcess {
        let shikaku = env!("CARGO_BIN_EXE_shikaku");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(shikaku);
                c
            }
            None => Command::new(shikaku),
        };
        let child = command
            .args(["serve", "--resp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--threads", "1", "--data"])
            .arg(data)
            .args(extra)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Owned by the guard from here on, so a failed start does not leave a server running
        // (one did, holding the test's output open).
        let mut server = ServeProcess {
            child,
            resp: ([0, 0, 0, 0], 0).into(),
            http: ([0, 0, 0, 0], 0).into(),
            startup_log: String::new(),
            log: None,
        };
        let mut stderr = server.child.stderr.take().unwrap();
        // The log is read on a thread to its end, so the server never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut log = String::new();
            let mut buf = [0u8; 4096];
            let mut told = false;
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                log.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Only a whole line: a read may end inside the address (regression: a
                // truncated port once failed to parse).
                let line = log
                    .split("RESP on ")
                    .nth(1)
                    .and_then(|l| l.split_once('\n'));
                if let (false, Some((line, _))) = (told, line) {
                    if let Some((resp, http)) = line.split_once(", HTTP on ") {
                        let addrs = (resp.trim().to_owned(), http.trim().to_owned(), log.clone());
                        told = tx.send(addrs).is_ok();
                    }
                }
            }
            log
        });
        server.log = Some(log);
        let (resp, http, startup_log) = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("shikaku serve logged no addresses"));
        server.resp = resp.parse().unwrap();
        server.http = http.parse().unwrap();
        server.startup_log = startup_log;
        server
    }

    /// Waits for the process to exit; its status and whole log.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let log = self.log.take().unwrap().join().unwrap();
        (status, log)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
