//! `shikaku serve` against hostile clients, as a separate process whose memory and
//! descriptors can be watched: connections that announce 8 MiB bodies and send nothing,
//! connections that trickle a byte a second, clients without credentials, a memory budget
//! spent, and the descriptor limit reached. Linux only (`/proc`, `prlimit`).
#![cfg(target_os = "linux")]

mod server_support;

use server_support::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The RSS bound while 1,000 announcing and 2,000 trickling connections are held: about 34
/// KiB a connection over the server's memory at rest (a read buffer of 16 KiB that grows
/// only as bytes arrive, no write buffer before the first answer). Measured: 53 MiB.
const HELD_RSS_BOUND_BYTES: u64 = 100 << 20;

/// What may stay resident once they have closed, over the memory at rest.
const AFTER_RSS_BOUND_BYTES: u64 = 16 << 20;

/// The resident set of process `pid`, from `/proc/PID/status`.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// Raises this test process's descriptor limit to at least `needed` (its hard limit
/// allowing), for the thousands of client sockets it holds.
fn raise_nofile(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "the test needs {needed} descriptors; the hard RLIMIT_NOFILE is {hard}: raise it (ulimit -Hn)"
    );
    if limit.current.is_some_and(|soft| soft < needed) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: limit.maximum,
            },
        )
        .unwrap();
    }
}

/// Times `GET /healthz` on a fresh keep-alive connection, `n` times.
fn healthz_times(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut client = Http::connect(addr);
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let r = client.request("GET", "/healthz", &[], b"");
            assert_eq!(r.status, 200, "{}", r.body);
            t.elapsed()
        })
        .collect()
}

const ANNOUNCE: &[u8] =
    b"POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8388608\r\n\r\n";

/// One test at a time: each starts a server and thousands of connections, and the timings
/// of one should not be the load of another.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn memory_stays_bounded_under_announcing_and_trickling_connections() {
    let _alone = alone();
    raise_nofile(4000);
    let data = data_dir();
    let server = ServeProcess::start(data.path(), &[]);
    let pid = server.child.id();
    let at_rest = rss_bytes(pid);
    let mut announcing = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(server.http).unwrap();
        s.write_all(ANNOUNCE).unwrap();
        announcing.push(s);
    }
    let mut trickling = Vec::new();
    for _ in 0..2000 {
        let mut s = TcpStream::connect(server.http).unwrap();
        s.write_all(&ANNOUNCE[..ANNOUNCE.len() - 1]).unwrap();
        trickling.push(s);
    }
    let mut peak = 0;
    let mut times = Vec::new();
    for second in 0..5u8 {
        // A byte a second on each trickling connection: the head's last byte, then body.
        for s in &mut trickling {
            s.write_all(if second == 0 { b"\n" } else { b"[" }).unwrap();
        }
        times.extend(healthz_times(server.http, 20));
        peak = peak.max(rss_bytes(pid));
        std::thread::sleep(Duration::from_millis(800));
    }
    times.sort();
    let (median, slowest) = (times[times.len() / 2], times[times.len() - 1]);
    eprintln!(
        "RSS at rest {} MiB, peak with 3,000 connections held {} MiB; /healthz median {median:?}, slowest {slowest:?} of {}",
        at_rest >> 20,
        peak >> 20,
        times.len()
    );
    assert!(
        peak < at_rest + HELD_RSS_BOUND_BYTES,
        "RSS {peak} with 3,000 connections held (at rest {at_rest})"
    );
    // Answered within 10 ms meanwhile: the median, as a shared machine (and the other test
    // binaries running beside this one) may stall any one request; none waits seconds.
    assert!(median < Duration::from_millis(10), "{times:?}");
    assert!(slowest < Duration::from_secs(2), "{times:?}");
    drop(announcing);
    drop(trickling);
    // The memory comes back once they close.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = rss_bytes(pid);
    while after > at_rest + AFTER_RSS_BOUND_BYTES && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        after = rss_bytes(pid);
    }
    eprintln!("RSS after they closed {} MiB", after >> 20);
    assert!(
        after <= at_rest + AFTER_RSS_BOUND_BYTES,
        "{after} after closing, {at_rest} at rest"
    );
}

/// Reads what the server sends until it closes the connection; the time that took.
fn read_to_close(s: &mut TcpStream) -> (String, Duration) {
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (String::from_utf8_lossy(&got).into_owned(), t.elapsed())
}

#[test]
fn a_slow_request_is_closed_at_its_deadline() {
    let _alone = alone();
    let data = data_dir();
    let server = ServeProcess::start(
        data.path(),
        &[
            "--head-deadline-secs".as_ref(),
            "1".as_ref(),
            "--body-deadline-secs".as_ref(),
            "3".as_ref(),
        ],
    );
    // A head trickled a byte at a time (slowloris), a body that stops coming, a RESP command
    // cut short: each is answered and closed at its deadline, not held for the idle time-out.
    let cases: [(SocketAddr, &[u8], &str, u64); 3] = [
        (
            server.http,
            b"GET /healthz HTTP/1.1\r\nHo",
            "HTTP/1.1 408 Request Timeout",
            1,
        ),
        (server.http, ANNOUNCE, "HTTP/1.1 408 Request Timeout", 3),
        (
            server.resp,
            b"*2\r\n$4\r\nPING\r\n$3\r\nab",
            "-ERR Protocol error: command not received whole within 1 s",
            1,
        ),
    ];
    for (addr, bytes, reply, deadline_secs) in cases {
        let mut s = TcpStream::connect(addr).unwrap();
        for b in bytes.chunks(8) {
            s.write_all(b).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        let (got, took) = read_to_close(&mut s);
        assert!(got.starts_with(reply), "{got:?}");
        assert!(
            took < Duration::from_secs(deadline_secs + 2),
            "{took:?} for {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let metrics = Http::connect(server.http).request("GET", "/metrics", &[], b"");
    assert!(
        metrics
            .body
            .contains("\nshikaku_request_timeouts_total 3\n"),
        "{}",
        metrics.body
    );
}

#[test]
fn a_spent_memory_budget_refuses_new_bodies() {
    let _alone = alone();
    let data = data_dir();
    let server = ServeProcess::start(
        data.path(),
        &["--memory-budget-bytes".as_ref(), "100000".as_ref()],
    );
    // The buffer grows 16 → 32 → 64 KiB as the bytes come (48 KiB held of the budget); at 64
    // KiB full the next growth would hold 112 KiB, past the budget of 100,000 bytes.
    let mut s = TcpStream::connect(server.http).unwrap();
    let mut request = ANNOUNCE.to_vec();
    request.resize(64 * 1024, b' ');
    s.write_all(&request).unwrap();
    let (got, _) = read_to_close(&mut s);
    assert!(
        got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{got}"
    );
    assert!(got.contains("memory for request bodies is spent"), "{got}");
    // What it held came back: a batch of the same size is answered once nothing else holds.
    let mut client = Http::connect(server.http);
    let r = client.request("POST", "/v1/batch", &[], &[b' '; 40 * 1024]);
    assert_eq!(r.status, 400, "{}", r.body);
    let metrics = client.request("GET", "/metrics", &[], b"");
    assert!(
        metrics
            .body
            .contains("\nshikaku_memory_budget_refusals_total 1\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("\nshikaku_request_buffer_bytes 0\n"),
        "{}",
        metrics.body
    );
}

#[test]
fn under_auth_no_body_is_read_before_credentials_pass() {
    let _alone = alone();
    let data = data_dir();
    let (server, code, token) = serve_one_client(data.path());
    // Without credentials, or with wrong ones: 401 at once, before a byte of the body.
    for credentials in ["", "Authorization: Bearer 0110113719:nope\r\n"] {
        let mut s = TcpStream::connect(server.http).unwrap();
        let head = format!(
            "POST /v1/batch HTTP/1.1\r\nHost: localhost\r\n{credentials}Content-Length: 8388608\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        let (got, took) = read_to_close(&mut s);
        assert!(got.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{got}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
    // With them, the body is read and answered.
    let mut client = Http::connect(server.http);
    let bearer = format!("Bearer {code}:{token}");
    let r = client.request("POST", "/v1/batch", &[("Authorization", &bearer)], b"[]");
    assert_eq!((r.status, r.body.as_str()), (200, "[]"));
    // RESP: a long command before AUTH is refused, not buffered.
    let mut s = TcpStream::connect(server.resp).unwrap();
    s.write_all(b"*2\r\n$4\r\nECHO\r\n$4096\r\n").unwrap();
    s.write_all(&[b'x'; 4090]).unwrap();
    let (got, _) = read_to_close(&mut s);
    assert_eq!(got, "-NOAUTH Authentication required.\r\n");
}

/// Opens `n` RESP connections and sends PING on each; what each got within 5 s (empty when
/// nothing came: a hang).
fn ping_many(addr: SocketAddr, n: usize) -> (Vec<TcpStream>, Vec<String>) {
    let mut held = Vec::new();
    let mut replies = Vec::new();
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(addr) else {
            replies.push("connect failed".to_owned());
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(b"PING\r\n");
        let mut buf = [0u8; 256];
        let got = match s.read(&mut buf) {
            Ok(k) => String::from_utf8_lossy(&buf[..k]).into_owned(),
            Err(e) => format!("no reply: {e}"),
        };
        replies.push(got);
        held.push(s);
    }
    (held, replies)
}

fn prlimit_available() -> bool {
    let found = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prlimit (util-linux) is needed in CI"
        );
        eprintln!("skipped: prlimit (util-linux) is not installed; the test runs the server under a low RLIMIT_NOFILE with it");
    }
    found
}

#[test]
fn at_the_descriptor_limit_connections_are_refused_never_left_hanging() {
    let _alone = alone();
    if !prlimit_available() {
        return;
    }
    raise_nofile(1000);
    let data = data_dir();
    let prlimit = ["prlimit", "--nofile=160:160", "--"];
    // The per-core limit derived from the descriptors: connections past it are refused at
    // once with the ordinary refusal, and the server goes on serving.
    let server = ServeProcess::start_under(&prlimit, data.path(), &[]);
    let (held, replies) = ping_many(server.resp, 300);
    let served = replies.iter().filter(|r| *r == "+PONG\r\n").count();
    let refused = replies
        .iter()
        .filter(|r| r.starts_with("-ERR max number of clients reached"))
        .count();
    assert!(served > 10, "{replies:?}");
    assert_eq!(served + refused, replies.len(), "{replies:?}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let (_, again) = ping_many(server.resp, 1);
    assert_eq!(again, ["+PONG\r\n"]);
    drop(server);

    // A limit above what the descriptors allow: past the last descriptor, the reserved one
    // refuses new connections (counted and logged), and the server still serves.
    let server = ServeProcess::start_under(
        &prlimit,
        data.path(),
        &["--max-connections-per-core".as_ref(), "10000".as_ref()],
    );
    let (held, replies) = ping_many(server.resp, 300);
    let served = replies.iter().filter(|r| *r == "+PONG\r\n").count();
    let out_of_descriptors = replies
        .iter()
        .filter(|r| r.contains("(out of file descriptors)"))
        .count();
    assert!(served > 10 && out_of_descriptors > 0, "{replies:?}");
    assert_eq!(served + out_of_descriptors, replies.len(), "{replies:?}");
    // Held past a poll of CURRENT by the reloader, which then finds no descriptor either.
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let mut client = Http::connect(server.http);
    let metrics = client.request("GET", "/metrics", &[], b"");
    let counted = metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("shikaku_descriptor_refusals_total "))
        .and_then(|n| n.parse::<usize>().ok());
    assert_eq!(counted, Some(out_of_descriptors), "{}", metrics.body);
    let (status, log) = {
        let mut server = server;
        let _ = server.child.kill();
        server.wait()
    };
    let _ = status;
    assert_eq!(
        log.matches("out of file descriptors: new connections are refused")
            .count(),
        1,
        "logged once per interval: {log}"
    );
    // Issue 27: CURRENT unread for want of a descriptor is not a damaged CURRENT; the log
    // said to roll back.
    let current = data.path().join("CURRENT").display().to_string();
    let says = log
        .lines()
        .find(|l| l.contains(&format!("cannot read {current}")))
        .unwrap_or_else(|| panic!("the reloader's failed read of CURRENT is not logged: {log}"));
    assert!(
        says.contains("LimitNOFILE") && !says.contains("rollback"),
        "{says}"
    );
}
