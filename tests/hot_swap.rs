//! Hot-swap under pipelined load: 50 swaps and 5 rollbacks while clients keep asking; every
//! answer must come back, and be the answer of the generation it names. A corrupted generation
//! is refused and the old one keeps serving.

use shikaku::domain::*;
use shikaku::generations::Store;
use shikaku::index::IndexFiles;
use shikaku::server::{serve, Live, Reloader, ServeConfig};
use shikaku::testing::{build, insurer, Member, INSURER, INSURER_NAME};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TODAY: &str = "2026-11-24";

/// Variant `lost`: the member's card was lost on 2026-11-01 (validity 2); else covered (1).
fn generation_bytes(id: &str, lost: bool) -> IndexFiles<Vec<u8>> {
    let member = Member {
        disq: lost.then_some("2026-11-01"),
        ..Member::default()
    };
    let rows = insurer(INSURER, INSURER_NAME, InsurerKind::Kyosai, TODAY, &[member]);
    build(vec![rows], TODAY, id)
}

fn add_generation(store: &Store, id: &str, files: &IndexFiles<Vec<u8>>) {
    shikaku::nightly::write_files(files, &store.begin(id).unwrap()).unwrap();
    store.seal(id).unwrap();
}

const REQUEST: &[u8] = b"*7\r\n$9\r\nELIG.CARD\r\n$8\r\n33120015\r\n$2\r\n12\r\n$4\r\n3456\r\n$2\r\n00\r\n$10\r\n1980-01-23\r\n$10\r\n2026-11-24\r\n";
const DEPTH: usize = 16;

/// Reads one RESP bulk reply; returns its payload.
fn read_bulk(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            if buf[0] != b'$' {
                return Err(String::from_utf8_lossy(&buf[..end]).into_owned());
            }
            let len: usize = std::str::from_utf8(&buf[1..end]).unwrap().parse().unwrap();
            if buf.len() >= end + 2 + len + 2 {
                let body = String::from_utf8(buf[end + 2..end + 2 + len].to_vec()).unwrap();
                buf.drain(..end + 2 + len + 2);
                return Ok(body);
            }
        }
        let mut chunk = [0u8; 65536];
        let n = match stream.read(&mut chunk) {
            // A signal can interrupt a blocking read; that is no answer yet.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r.map_err(|e| e.to_string())?,
        };
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A pipelined client: sends DEPTH requests, reads DEPTH replies, checks each against the
/// validity its generation must give, until `stop`.
fn client(
    addr: SocketAddr,
    expected: Arc<Mutex<HashMap<String, u8>>>,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let batch: Vec<u8> = REQUEST.repeat(DEPTH);
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        stream.write_all(&batch).unwrap();
        for _ in 0..DEPTH {
            match read_bulk(&mut stream, &mut buf) {
                Ok(answer) => {
                    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                    let generation = v["generation"].as_str().unwrap().to_owned();
                    let validity = v["validity"].as_u64().unwrap() as u8;
                    let want = expected.lock().unwrap().get(&generation).copied();
                    if want != Some(validity) {
                        problems.push(format!(
                            "generation {generation} answered {validity}, expected {want:?}"
                        ));
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    problems.push(format!("failed request: {e}"));
                    return problems;
                }
            }
        }
    }
    problems
}

fn wait_for(live: &Live, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while live.load().id() != id {
        assert!(
            Instant::now() < deadline,
            "generation {id} not live within 5 s (serving {})",
            live.load().id()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn fifty_swaps_and_five_rollbacks_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let expected: Arc<Mutex<HashMap<String, u8>>> = Arc::default();
    let first = "g000-covered";
    add_generation(&store, first, &generation_bytes(first, false));
    expected.lock().unwrap().insert(first.into(), 1);
    store.publish(first).unwrap();

    let live = Arc::new(Live::new(store.open_current(PersonKey::demo()).unwrap()).unwrap());
    let config = ServeConfig {
        resp: "127.0.0.1:0".parse().unwrap(),
        http: "127.0.0.1:0".parse().unwrap(),
        threads: 2,
        auth: None,
        pin: false,
        ..Default::default()
    };
    let server = serve(config, live.clone()).unwrap();
    Reloader {
        live: live.clone(),
        store: store.clone(),
        key: PersonKey::demo(),
        requested: server.reload_flag(),
    }
    .spawn()
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (e, s, a, addr) = (
                expected.clone(),
                stop.clone(),
                answered.clone(),
                server.resp_addr(),
            );
            std::thread::spawn(move || client(addr, e, s, a))
        })
        .collect();

    let mut published = vec![first.to_owned()];
    for i in 1..=50 {
        let lost = i % 2 == 1;
        let id = format!("g{i:03}-{}", if lost { "lost" } else { "covered" });
        add_generation(&store, &id, &generation_bytes(&id, lost));
        expected
            .lock()
            .unwrap()
            .insert(id.clone(), if lost { 2 } else { 1 });
        store.publish(&id).unwrap();
        wait_for(&live, &id);
        published.push(id);
        if i % 10 == 0 {
            let back = store.rollback(None, PersonKey::demo()).unwrap();
            assert_eq!(back, published[published.len() - 2]);
            wait_for(&live, &back);
        }
    }

    // A corrupted generation is refused; the one before keeps serving.
    let serving = live.load().id().to_owned();
    let mut bad = generation_bytes("g999-corrupt", false);
    // In a segment body: only a full verify (as a reload does) can see it.
    let flip = bad.segments[0].len() / 2;
    bad.segments[0][flip] ^= 0x40;
    add_generation(&store, "g999-corrupt", &bad);
    store.publish("g999-corrupt").unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while live.last_refusal.lock().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the corrupt generation was not refused"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        live.load().id(),
        serving,
        "still serving the last good generation"
    );
    assert!(live
        .last_refusal
        .lock()
        .unwrap()
        .as_deref()
        .unwrap()
        .contains("g999-corrupt"));
    assert_eq!(live.reload_refusals.load(Ordering::Relaxed), 1);
    std::thread::sleep(Duration::from_millis(300));
    // Regression: CURRENT put back to the generation served left the refusal standing
    // (`/metrics` and `/v1/generation` went on reporting it).
    store.publish(&serving).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while live.last_refusal.lock().unwrap().is_some() {
        assert!(Instant::now() < deadline, "the refusal was not cleared");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(live.load().id(), serving);
    assert_eq!(live.reload_refusals.load(Ordering::Relaxed), 1);

    stop.store(true, Ordering::Relaxed);
    let problems: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        problems.is_empty(),
        "{} problems, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
    assert!(
        answered.load(Ordering::Relaxed) > 1_000,
        "the clients kept asking through the swaps"
    );
}
