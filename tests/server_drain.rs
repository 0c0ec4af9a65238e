//! Draining: `Server::drain` and SIGTERM stop accepting, answer what was read, close every
//! connection and end the server; an answer is never cut in half.

mod server_support;

use server_support::*;
use shikaku::domain::PersonKey;
use shikaku::server::{serve_until_signal, Driver};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// Longer than the server's drain time-out (10 s): a test waiting this long has failed.
const PATIENCE: Duration = Duration::from_secs(30);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Reads until the server closes; panics if it does not within [`PATIENCE`].
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

/// The whole RESP replies at the start of `bytes`, and whether bytes are left after them.
fn whole_replies(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut replies = Vec::new();
    let mut rest = bytes;
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let len = match rest[0] {
            b'$' => {
                let n: usize = std::str::from_utf8(&rest[1..line_end])
                    .unwrap()
                    .parse()
                    .unwrap();
                line_end + 2 + n + 2
            }
            _ => line_end + 2,
        };
        if rest.len() < len {
            break;
        }
        replies.push(&rest[..len]);
        rest = &rest[len..];
    }
    (replies, !rest.is_empty())
}

/// A card query of the test data as a RESP frame, and its whole reply.
fn card_frame(data: &std::path::Path) -> (String, String) {
    let (symbol, number, branch, birth, _) = CARDS[0];
    let answer = cli_card(data, symbol, number, branch, birth);
    let expected = format!("${}\r\n{answer}\r\n", answer.len());
    let query = format!(
        "*7\r\n$9\r\nELIG.CARD\r\n$8\r\n33120015\r\n${}\r\n{symbol}\r\n${}\r\n{number}\r\n${}\r\n{branch}\r\n${}\r\n{birth}\r\n$10\r\n{DATE}\r\n",
        symbol.len(),
        number.len(),
        branch.len(),
        birth.len()
    );
    (query, expected)
}

/// Reads `busy` to its close: only whole replies, each `expected`, at most `sent` of them.
fn check_whole_replies(busy: &mut TcpStream, expected: &str, sent: usize) {
    let got = read_to_close(busy);
    let (replies, partial) = whole_replies(&got);
    assert!(
        !partial,
        "an answer was cut: {} bytes after the last whole one",
        got.len()
    );
    assert!(replies.len() <= sent);
    for r in &replies {
        assert_eq!(*r, expected.as_bytes());
    }
}

fn drains(driver: Driver) {
    let data = data_dir();
    let server = start_with(data.path(), None, driver);
    let (resp, http_addr) = (server.resp_addr(), server.http_addr());
    let (query, expected) = card_frame(data.path());
    // An idle RESP connection that was answered, an idle keep-alive HTTP connection, and one
    // with a large pipeline on the wire as the drain begins.
    let mut idle = connect(resp);
    idle.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    idle.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    let mut http = Http::connect(http_addr);
    assert_eq!(http.request("GET", "/healthz", &[], b"").status, 200);
    let mut busy = connect(resp);
    // 20,000 queries (2 MB): more than the server has read when the drain begins, so it
    // closes with input unread. Regression: that close made the kernel send a reset, which
    // threw away replies not yet delivered, cutting the last one (seen with 2,000 under load;
    // every time with 20,000). The server now half-closes and reads what is left first.
    busy.write_all(&query.repeat(20000).into_bytes()).unwrap();

    server.drain();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        server.join();
        let _ = done_tx.send(());
    });

    assert_eq!(read_to_close(&mut idle), b"");
    check_whole_replies(&mut busy, &expected, 20000);
    // The cores' threads end only once their listeners and connections are gone. (Whether
    // the ports still accept is not asked: a test running alongside may have bound them since;
    // that check failed once in a full `cargo test`.)
    done.recv_timeout(PATIENCE)
        .expect("the server did not end after draining");
    assert!(
        http.read_response().is_none(),
        "the HTTP connection stayed open"
    );
}

#[test]
fn draining_answers_what_was_read_and_closes_every_connection() {
    drains(Driver::Auto);
}

#[test]
fn draining_on_epoll_too() {
    drains(Driver::Epoll);
}

/// The wiring of `shikaku serve`, in this process: SIGTERM drains the server, the pipeline on
/// the wire gets whole answers only, and the function returns. (The signal reaches only the
/// handlers `serve_until_signal` installed; the other tests here install none.)
#[test]
fn serve_until_signal_drains_on_sigterm() {
    let data = data_dir();
    let (query, expected) = card_frame(data.path());
    let (tx, rx) = mpsc::channel();
    let dir = data.path().to_owned();
    let run = std::thread::spawn(move || {
        serve_until_signal(&dir, test_config(), PersonKey::demo(), |server, id| {
            tx.send((server.resp_addr(), id.to_owned())).unwrap();
        })
    });
    let (resp, id) = rx.recv_timeout(PATIENCE).expect("the server did not start");
    assert_eq!(id, GENERATION);
    let mut busy = connect(resp);
    busy.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    busy.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    busy.write_all(&query.repeat(500).into_bytes()).unwrap();
    signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
    check_whole_replies(&mut busy, &expected, 500);
    run.join().unwrap().expect("serve_until_signal failed");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let data = data_dir();
    // Without polling (`--poll-us 0`), so the CLI's knob is exercised too.
    let server = ServeProcess::start(data.path(), &["--poll-us".as_ref(), "0".as_ref()]);
    let resp = server.resp;
    let mut con = connect(resp);
    con.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    con.read_exact(&mut pong).unwrap();
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(read_to_close(&mut con), b"");
    let (status, log) = server.wait();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("drained"), "{log}");
}
