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

/// A CSV batch of `rows` queries for an eligible card: an answer of about 200 bytes a row.
fn eligible_batch(rows: usize) -> Vec<u8> {
    let mut csv =
        b"kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent\n"
            .to_vec();
    for _ in 0..rows {
        csv.extend_from_slice(b"card,33120015,,3456,00,1980-01-23,,2026-01-05,\n");
    }
    csv
}

/// A request for `path` with `body`, as bytes.
fn post(path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// A client connection that takes little into its kernel buffer (4 KiB), as a client that
/// does not read its answers: what it is sent stays with the server.
fn connect_not_reading(addr: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    s.into()
}

/// A server with a memory budget of `budget` bytes, its pid and its RSS at rest.
fn start_with_budget(data: &std::path::Path, budget: u64) -> (ServeProcess, u32, u64) {
    let budget = budget.to_string();
    let server = ServeProcess::start(data, &["--memory-budget-bytes".as_ref(), budget.as_ref()]);
    let pid = server.child.id();
    (server, pid, rss_bytes(pid))
}

/// Waits up to 20 s for the server's RSS to come back within `bound` of `at_rest`; what it
/// reached and how long it took.
fn rss_back(pid: u32, at_rest: u64, bound: u64) -> (u64, Duration) {
    let t = Instant::now();
    let mut rss = rss_bytes(pid);
    while rss > at_rest + bound && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        rss = rss_bytes(pid);
    }
    (rss, t.elapsed())
}

/// `shikaku_memory_budget_refusals_total`, read over a fresh connection once the server has
/// got to it (it answers the requests before it first: seconds in a debug build under load).
fn budget_refusals(addr: SocketAddr) -> u64 {
    let stream = TcpStream::connect(addr).unwrap();
    let mut client = Http::from_stream(stream);
    client.set_read_timeout(Duration::from_secs(120));
    let metrics = client.request("GET", "/metrics", &[], b"");
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("shikaku_memory_budget_refusals_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", metrics.body))
}

/// Regression: 300 keep-alive connections that each read a 2.0 MB batch answer and then sat
/// idle held 649 MB until the idle time-out: the write buffer of an answer under 2 MiB was
/// kept for the next one (here 100 answers of 1 MB).
#[test]
fn idle_connections_keep_no_large_answer() {
    let _alone = alone();
    let data = data_dir();
    let server = ServeProcess::start(data.path(), &[]);
    let pid = server.child.id();
    let at_rest = rss_bytes(pid);
    let batch = eligible_batch(10_000);
    let mut idle = Vec::new();
    for _ in 0..100 {
        let mut client = Http::connect(server.http);
        let r = client.post_csv_batch(&batch);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.len() > 900_000, "{}", r.body.len());
        idle.push(client);
    }
    let (held, took) = rss_back(pid, at_rest, 24 << 20);
    eprintln!(
        "RSS at rest {} MiB; with 100 idle connections after 1 MB answers {} MiB ({took:?})",
        at_rest >> 20,
        held >> 20
    );
    assert!(
        held <= at_rest + (24 << 20),
        "{held} held, {at_rest} at rest"
    );
}

/// Regression: 1,500 clients that never read their 2 MB answers took the server to 2.95 GB,
/// and 1,000 to 1.36 GB with a budget of 64 MiB: the kernel took each answer whole, so the
/// write looked done, and the answers made were counted nowhere.
#[test]
fn answers_no_client_reads_are_held_to_the_budget() {
    let _alone = alone();
    raise_nofile(1000);
    let data = data_dir();
    let budget: u64 = 32 << 20;
    let (server, pid, at_rest) = start_with_budget(data.path(), budget);
    // Answers of 300 KB: more than the kernel's buffers on both sides take.
    let request = post("/v1/batch", "text/csv", &eligible_batch(3_000));
    let mut silent = Vec::new();
    let mut peak = 0;
    for i in 0..200 {
        let mut s = connect_not_reading(server.http);
        s.write_all(&request).unwrap();
        silent.push(s);
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(100));
            peak = peak.max(rss_bytes(pid));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    peak = peak.max(rss_bytes(pid));
    let refused = budget_refusals(server.http);
    eprintln!(
        "RSS at rest {} MiB, peak with 200 clients not reading {} MiB; {refused} refused",
        at_rest >> 20,
        peak >> 20
    );
    assert!(refused > 0, "the budget refused none");
    assert!(
        peak <= at_rest + budget + (32 << 20),
        "{peak} peak, {at_rest} at rest"
    );
    drop(silent);
    let (after, took) = rss_back(pid, at_rest, AFTER_RSS_BOUND_BYTES);
    eprintln!("RSS {} MiB {took:?} after they closed", after >> 20);
    assert!(
        after <= at_rest + AFTER_RSS_BOUND_BYTES,
        "{after} after, {at_rest} at rest"
    );
}

/// One-line receipts, `n` of them: the most receipts (and rows) a body of its size can hold.
fn one_line_receipts(n: usize) -> Vec<u8> {
    let mut file = b"IR,1,13,1,1234567,,CLINIC,202601,00,\r\n".to_vec();
    for i in 0..n {
        let line = format!("RE,{},1,202601,X,1,19800123\r\n", i % 999_999 + 1);
        file.extend_from_slice(line.as_bytes());
    }
    file.extend_from_slice(format!("GO,{n}\r\n").as_bytes());
    file
}

/// Regression: one `POST /v1/claims` of 255 MiB (8.4M one-line receipts) took the server to
/// 2.99 GB, and the budget counted none of it (only the read buffer). What a claims file
/// needs is now taken from the budget before it is checked: 413 when the whole budget cannot
/// hold it, 503 with `Retry-After` while others hold it (here answers no client has read).
/// On 1478001 each request here was answered 200.
#[test]
fn claims_files_are_checked_within_the_memory_budget() {
    use shikaku::claims::{memory::WorkBytes, Format};
    let _alone = alone();
    let data = data_dir();
    let budget: usize = 48 << 20;
    let (server, pid, at_rest) = start_with_budget(data.path(), budget as u64);
    // Sized from the server's own estimate: one file fits the budget alone, with its read
    // buffer, and not beside the answers of 20 batches no client reads (1 MB each).
    let per_receipt = WorkBytes::of(&one_line_receipts(1), Format::Csv).total();
    let fits = one_line_receipts(budget * 7 / 10 / per_receipt);
    let too_large = one_line_receipts(budget * 2 / per_receipt);

    let answer = raw_exchange(
        server.http,
        &post("/v1/claims", "text/plain", &too_large),
        1 << 20,
    );
    let mut peak = rss_bytes(pid);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(
        text.contains("more than the server's memory budget of 48 MiB"),
        "{text}"
    );

    let batch = post("/v1/batch", "text/csv", &eligible_batch(10_000));
    let silent: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect_not_reading(server.http);
            s.write_all(&batch).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    peak = peak.max(rss_bytes(pid));
    let mut client = Http::connect(server.http);
    // The batches before it are answered first: seconds in a debug build under load.
    client.set_read_timeout(Duration::from_secs(120));
    let r = client.request("POST", "/v1/claims", &[], &fits);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert!(r.body.contains("try again later"), "{}", r.body);
    // Once they are gone, the same file is checked.
    drop(silent);
    std::thread::sleep(Duration::from_millis(500));
    let r = client.request("POST", "/v1/claims", &[], &fits);
    assert_eq!(r.status, 200, "{}", &r.body[..200.min(r.body.len())]);
    assert!(r.body.lines().count() > 1000, "{}", r.body.len());
    peak = peak.max(rss_bytes(pid));
    eprintln!(
        "RSS at rest {} MiB, peak {} MiB with a budget of {} MiB",
        at_rest >> 20,
        peak >> 20,
        budget >> 20
    );
    assert!(
        peak <= at_rest + budget as u64 + (64 << 20),
        "{peak} peak, {at_rest} at rest"
    );
}
