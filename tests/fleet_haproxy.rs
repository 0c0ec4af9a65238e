//! A fleet on loopback: moto as the store, 3 replicas (`shikaku serve --follow`) behind HAProxy
//! with `/healthz` checks, clients querying through HAProxy all along, while 5 generations are
//! published and promoted and 1 rolled back; one replica is SIGKILLed while it downloads and
//! started again; the store is stopped for 10 s and started again. Every answer is checked
//! against the first replica's answer (the data do not change between generations), so the
//! run must end with 0 failed and 0 wrong; the mixed window of each move (first answer from
//! the new generation to the last from the old) and the time from `promote` to every replica
//! live are printed.

mod fleet_support;

use fleet_support::*;
use shikaku::fleet::{ReplicaState, StoreConfig, StoreUrl};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PREFIX: &str = "fleet-test";

/// The demo's card queries, one per validity.
const QUERIES: [&str; 5] = [
    r#"{"birthdate":"19520809","branch":"01","date":"2026-11-24","insurer_number":"  ０２００１６","number":"10004352","symbol":"93"}"#,
    r#"{"birthdate":"1965-10-14","branch":"01","date":"2026-10-18","insurer_number":"01130012","number":"10003345","symbol":"13436141"}"#,
    r#"{"birthdate":"S24.5.31","date":"2026-11-24","insurer_number":"  080010","number":"10000437","symbol":"４５"}"#,
    r#"{"birthdate":"S49.11.30","branch":"00","date":"2026-11-24","insurer_number":"280016","number":"10001548","symbol":"25"}"#,
    r#"{"birthdate":"2022-03-17","date":"2026-11-24","insurer_number":"01130012","number":"10004952","symbol":"13328625"}"#,
];

fn haproxy_available() -> bool {
    tool_available(
        "a_fleet_behind_haproxy_moves_together_through_faults",
        "haproxy",
        &["-v"],
        "apt-get install haproxy",
    )
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// HAProxy with an HTTP frontend on `port` (L7: a request that meets a dead replica is retried
/// on another) and a RESP frontend on `resp_port` (L4, TCP mode: a connection is pinned to one
/// replica), both checking each replica's `GET /healthz`.
fn start_haproxy(dir: &Path, port: u16, resp_port: u16, replicas: &[Replica]) -> Haproxy {
    let mut cfg = format!(
        "global\n  maxconn 1000\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  retries 3\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout\n  http-reuse never\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend replicas\nbackend replicas\n  balance roundrobin\n  option httpchk GET /healthz\n"
    );
    for r in replicas {
        cfg.push_str(&format!(
            "  server {} 127.0.0.1:{} check inter 200ms fall 2 rise 2\n",
            r.id, r.http
        ));
    }
    cfg.push_str(&format!(
        "listen resp\n  mode tcp\n  bind 127.0.0.1:{resp_port}\n  balance roundrobin\n  option httpchk GET /healthz\n"
    ));
    for r in replicas {
        cfg.push_str(&format!(
            "  server {} 127.0.0.1:{} check port {} inter 200ms fall 2 rise 2\n",
            r.id, r.resp, r.http
        ));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new("haproxy")
        .arg("-f")
        .arg(&path)
        .arg("-db")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "HAProxy did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Haproxy(child)
}

/// A keep-alive HTTP/1.1 client that reports failures instead of panicking.
struct Client {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            conn: None,
            buf: Vec::new(),
        }
    }

    fn exchange(&mut self, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
            self.conn = Some(s);
            self.buf.clear();
        }
        let r = self.exchange_on(method, path, body);
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    fn exchange_on(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), String> {
        let s = self.conn.as_mut().unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = resp.parse(&self.buf) {
                let len: usize = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .ok_or("no Content-Length")?;
                if self.buf.len() >= n + len {
                    let code = resp.code.unwrap_or(0);
                    let text = String::from_utf8_lossy(&self.buf[n..n + len]).into_owned();
                    self.buf.drain(..n + len);
                    return Ok((code, text));
                }
            }
            let mut chunk = [0u8; 8192];
            match s.read(&mut chunk) {
                Ok(0) => return Err("closed".into()),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// The `"generation":"..."` of an answer, and the answer without it.
fn split_generation(answer: &str) -> Option<(String, String)> {
    let start = answer.find("\"generation\":\"")?;
    let id_start = start + "\"generation\":\"".len();
    let id_end = id_start + answer[id_start..].find('"')?;
    let rest = format!("{}{}", &answer[..start], &answer[id_end + 1..]);
    Some((answer[id_start..id_end].to_owned(), rest))
}

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: Vec<String>,
    wrong: Vec<String>,
    /// Every answer's time since the start and generation.
    answers: Vec<(Duration, String)>,
}

fn serving(addr: SocketAddr) -> Option<String> {
    let (code, body) = Client::new(addr)
        .exchange("GET", "/v1/generation", "")
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    (code == 200)
        .then(|| v["id"].as_str().map(str::to_owned))
        .flatten()
}

#[test]
fn a_fleet_behind_haproxy_moves_together_through_faults() {
    if !haproxy_available() {
        return;
    }
    let Some(moto) = Moto::start("a_fleet_behind_haproxy_moves_together_through_faults") else {
        return;
    };
    moto.set_env();
    let remote = shikaku::fleet::Remote::connect(&StoreConfig::new(
        StoreUrl::parse(&moto.url(PREFIX)).unwrap(),
        Some(moto.endpoint()),
    ))
    .unwrap();
    let env = moto.env();
    let work = tempfile::tempdir().unwrap();
    let builder = work.path().join("builder");
    let url = moto.url(PREFIX);
    let publish = || {
        let id = build_generation(&builder);
        shikaku(
            &[
                "publish".as_ref(),
                "--data".as_ref(),
                builder.as_os_str(),
                "--to".as_ref(),
                url.as_ref(),
            ],
            &env,
        );
        id
    };
    let fleet = |args: &[&str]| {
        let mut all: Vec<&OsStr> = vec!["fleet".as_ref(), "--store".as_ref(), url.as_ref()];
        all.extend(args.iter().map(OsStr::new));
        shikaku(&all, &env)
    };
    let all_ready = |id: &str| {
        let states = ReplicaState::read_all(&remote).unwrap_or_default();
        states.len() == 3 && states.iter().all(|r| r.holds(id))
    };

    let g1 = publish();
    let mut replicas: Vec<Replica> = (1..=3)
        .map(|i| Replica::new(&format!("r{i}"), work.path(), PREFIX))
        .collect();
    for r in &mut replicas {
        r.start(&moto);
    }
    wait_for(
        "every replica ready with the first generation",
        Duration::from_secs(60),
        || all_ready(&g1),
    );
    fleet(&["promote", &g1]);
    for r in &replicas {
        wait_for("every replica serving", Duration::from_secs(60), || {
            serving(r.addr()).as_deref() == Some(g1.as_str())
        });
    }

    // The expected answers, from one replica directly.
    let expected: Vec<String> = QUERIES
        .iter()
        .map(|q| {
            let (code, body) = Client::new(replicas[0].addr())
                .exchange("POST", "/v1/card", q)
                .unwrap();
            assert_eq!(code, 200, "{body}");
            split_generation(&body).unwrap().1
        })
        .collect();

    let lb_port = free_port();
    let lb_resp_port = free_port();
    let _haproxy = start_haproxy(work.path(), lb_port, lb_resp_port, &replicas);
    let lb: SocketAddr = ([127, 0, 0, 1], lb_port).into();
    let workload = write_workload(work.path(), &expected);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let loads = spawn_load(
        workload,
        ([127, 0, 0, 1], lb_resp_port).into(),
        started,
        stop.clone(),
    );
    let mut r2_killed_at = None;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let clients: Vec<_> = (0..2)
        .map(|c| {
            let (stop, tally, expected) = (stop.clone(), tally.clone(), expected.clone());
            std::thread::spawn(move || {
                let mut client = Client::new(lb);
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let q = i % QUERIES.len();
                    i += 1;
                    let got = client.exchange("POST", "/v1/card", QUERIES[q]);
                    let at = started.elapsed();
                    let mut t = tally.lock().unwrap();
                    match got {
                        Ok((200, body)) => match split_generation(&body) {
                            Some((g, rest)) if rest == expected[q] => {
                                t.ok += 1;
                                t.answers.push((at, g));
                            }
                            _ => t.wrong.push(body),
                        },
                        Ok((code, body)) => t.failed.push(format!("{code}: {body}")),
                        Err(e) => t.failed.push(e),
                    }
                    drop(t);
                    // About 2,000 queries a second in all: load, not a flood of the 2 cores.
                    std::thread::sleep(Duration::from_micros(1000));
                }
            })
        })
        .collect();

    let mut moves: Vec<(String, String, Duration, Duration)> = Vec::new(); // from, to, promoted at, all live after
    let mut live = g1.clone();
    let promote = |to: &str, args: &[&str], replicas: &[Replica], live: &mut String| {
        let at = started.elapsed();
        fleet(args);
        wait_for(
            "every replica live with the new generation",
            Duration::from_secs(30),
            || {
                replicas
                    .iter()
                    .all(|r| serving(r.addr()).as_deref() == Some(to))
            },
        );
        let took = started.elapsed() - at;
        let from = std::mem::replace(live, to.to_owned());
        (from, to.to_owned(), at, took)
    };
    let mut download_verify = Vec::new();
    for n in 2..=6 {
        let g = publish();
        if n == 3 {
            // SIGKILL r2 while it downloads g (its files appear in DATA/tmp/<g>), then start it
            // again: it resumes and gets ready.
            let tmp = replicas[1].data.join("tmp").join(&g);
            let sealed = replicas[1].data.join("generations").join(&g);
            wait_for("r2 to start downloading", Duration::from_secs(30), || {
                tmp.exists() || sealed.exists()
            });
            let mid_download = !sealed.exists();
            r2_killed_at = Some(started.elapsed());
            replicas[1].kill();
            eprintln!(
                "r2 SIGKILLed {} its download of {g}",
                if mid_download { "during" } else { "after" }
            );
            replicas[1].start(&moto);
        }
        if n == 4 {
            // The store stops for 10 s: replicas keep serving and say how long since they saw it.
            moto.pause();
            std::thread::sleep(Duration::from_secs(5));
            let (_, health) = Client::new(replicas[0].addr())
                .exchange("GET", "/healthz", "")
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&health).unwrap();
            assert!(
                v["fleet"]["store_last_seen_seconds_ago"].as_u64().unwrap() >= 3,
                "{health}"
            );
            std::thread::sleep(Duration::from_secs(5));
            moto.resume();
        }
        let started_waiting = Instant::now();
        let ready_in = wait_for_or(
            "every replica ready",
            Duration::from_secs(60),
            || all_ready(&g),
            || {
                let logs: Vec<String> = replicas
                    .iter()
                    .map(|r| {
                        format!(
                            "--- {} (since {:?} ago)\n{}",
                            r.id,
                            started_waiting.elapsed(),
                            r.log()
                        )
                    })
                    .collect();
                logs.join("\n")
            },
        );
        download_verify.push(ready_in);
        moves.push(promote(&g, &["promote", &g], &replicas, &mut live));
    }
    let before = moves.last().unwrap().0.clone();
    moves.push(promote(&before, &["rollback"], &replicas, &mut live));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let loads = loads.join().unwrap();

    let t = tally.lock().unwrap();
    // Promotes swap to the generation the replica verified when it downloaded it, and a
    // rollback to the previous one it held ready: no second pass over the index.
    let r1 = replicas[0].log();
    assert!(r1.contains("held_ready=true"), "{r1}");
    let r2 = replicas[1].log();
    assert!(
        r2.contains("generation downloaded, verified and sealed"),
        "{r2}"
    );
    eprintln!(
        "answers: {} ok, {} failed, {} wrong, over {:.1} s",
        t.ok,
        t.failed.len(),
        t.wrong.len(),
        started.elapsed().as_secs_f64()
    );
    for (i, (from, to, at, took)) in moves.iter().enumerate() {
        // Answers up to the next move only.
        let end = moves.get(i + 1).map_or(Duration::MAX, |m| m.2);
        let answers: Vec<&(Duration, String)> = t
            .answers
            .iter()
            .filter(|(when, _)| when >= at && *when < end)
            .collect();
        // Mixed window: from the first answer from `to` after the move to the last from `from`.
        let after = answers.iter();
        let first_new = after.clone().find(|(_, g)| g == to).map(|a| a.0);
        let last_old = after.filter(|(_, g)| g == from).map(|a| a.0).next_back();
        let window = match (first_new, last_old) {
            (Some(f), Some(l)) if l > f => l - f,
            _ => Duration::ZERO,
        };
        eprintln!("move {from} -> {to} at {:.2} s: every replica live {:.0} ms after `fleet` started; mixed window {:.0} ms", at.as_secs_f64(), took.as_secs_f64() * 1e3, window.as_secs_f64() * 1e3);
        // Replicas poll the pointer every 250 ms and the server swaps within 200 ms more.
        assert!(window < Duration::from_secs(2), "mixed window {window:?}");
    }
    eprintln!("from publish to every replica ready: {:?}", download_verify);
    check_loads(&loads, r2_killed_at.expect("r2 was killed"));
    assert!(
        t.failed.is_empty(),
        "failed: {:?}",
        &t.failed[..t.failed.len().min(10)]
    );
    assert!(
        t.wrong.is_empty(),
        "wrong: {:?}",
        &t.wrong[..t.wrong.len().min(10)]
    );
    assert!(t.ok > 1000, "{} answers", t.ok);
}

/// The demo queries as a `shikaku load` workload, each with the validity the first replica
/// answered (field names as the load tool reads them).
fn write_workload(dir: &Path, expected: &[String]) -> PathBuf {
    let mut csv = String::from(
        "kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent,expected\n",
    );
    for (q, answer) in QUERIES.iter().zip(expected) {
        let q: serde_json::Value = serde_json::from_str(q).unwrap();
        // The answer without its generation is no longer JSON: read the validity's digit.
        let at = answer
            .find("\"validity\":")
            .expect("an answer has a validity");
        let validity = &answer[at + "\"validity\":".len()..][..1];
        let field = |k: &str| q[k].as_str().unwrap_or("").to_owned();
        csv.push_str(&format!(
            "card,{},{},{},{},{},,{},,{}\n",
            field("insurer_number"),
            field("symbol"),
            field("number"),
            field("branch"),
            field("birthdate"),
            field("date"),
            validity,
        ));
    }
    let path = dir.join("workload.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

/// One `shikaku load` run: when it started and ended (since the test's start), its report.
struct LoadRun {
    from: Duration,
    to: Duration,
    report: serde_json::Value,
}

/// `shikaku load` over RESP through HAProxy until `stop`, in runs of 3 s at 300 requests a
/// second (an open loop: load, not a flood of the 2 cores), each checking every answer's
/// validity.
fn spawn_load(
    workload: PathBuf,
    lb: SocketAddr,
    started: Instant,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<LoadRun>> {
    std::thread::spawn(move || {
        let mut runs = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let from = started.elapsed();
            let out = Command::new(env!("CARGO_BIN_EXE_shikaku"))
                .arg("load")
                .arg("--queries")
                .arg(&workload)
                .args(["--addr", &lb.to_string()])
                .args([
                    "--connections",
                    "4",
                    "--rate",
                    "300",
                    "--duration",
                    "3",
                    "--json",
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let report = text
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str(l).ok())
                .unwrap_or_else(|| {
                    panic!(
                        "shikaku load printed no report:\n{text}\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                });
            runs.push(LoadRun {
                from,
                to: started.elapsed(),
                report,
            });
        }
        runs
    })
}

/// Every answer `shikaku load` got is right. Failures are allowed only in a run that was under
/// way when r2 was SIGKILLed: an L4 balancer cannot move a RESP connection, so the
/// connections it had placed on r2 end with it and the client must reconnect (as with any TCP
/// service); the HTTP clients, behind an L7 frontend that retries, see none.
fn check_loads(runs: &[LoadRun], r2_killed_at: Duration) {
    let count = |r: &LoadRun, k: &str| r.report[k].as_u64().unwrap_or(0);
    let right: u64 = runs.iter().map(|r| count(r, "right")).sum();
    let wrong: u64 = runs
        .iter()
        .map(|r| count(r, "wrong") + count(r, "unexpected"))
        .sum();
    let failed_runs: Vec<&LoadRun> = runs
        .iter()
        .filter(|r| r.report["failed"].as_bool() != Some(false))
        .collect();
    eprintln!(
        "shikaku load through HAProxy (RESP): {} runs, {right} right, {wrong} wrong, {} runs with failures",
        runs.len(),
        failed_runs.len()
    );
    assert!(runs.len() >= 5, "{} load runs", runs.len());
    assert_eq!(wrong, 0, "wrong answers through HAProxy");
    assert!(right > 1000, "{right} right answers");
    for r in failed_runs {
        assert!(
            r.from <= r2_killed_at && r2_killed_at <= r.to,
            "a load run from {:?} to {:?} failed, not across r2's SIGKILL at {r2_killed_at:?}: {}",
            r.from,
            r.to,
            r.report
        );
        assert_eq!(count(r, "errors"), 0, "{}", r.report);
    }
}
