//! The server over RESP, through the `redis` crate's sync client and raw sockets.

mod server_support;

use server_support::*;
use shikaku::domain::InstitutionCode;
use shikaku::server::{auth::new_entry, AuthTable, Role, ServeConfig};

fn client(addr: std::net::SocketAddr) -> redis::Connection {
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

#[test]
fn answers_equal_the_cli_for_every_validity() {
    let data = data_dir();
    let server = start(data.path(), None);
    let mut con = client(server.resp_addr());
    for (symbol, number, branch, birth, validity) in CARDS {
        let got = resp_card(&mut con, (symbol, number, branch, birth)).unwrap();
        assert_eq!(got, cli_card(data.path(), symbol, number, branch, birth));
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["validity"], validity, "{got}");
        assert_eq!(v["generation"], GENERATION);
    }
    for (p, validity) in PERSONS {
        let n = person(p);
        let got: String = redis::cmd("ELIG.PERSON")
            .arg(&n)
            .arg(DATE)
            .query(&mut con)
            .unwrap();
        assert_eq!(got, cli_person(data.path(), &n));
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v["validity"], validity, "{got}");
    }
    // LIMIT shows the 限度額適用区分; without it, it is null.
    let limit: String = redis::cmd("ELIG.PERSON")
        .arg(person(P1))
        .arg(DATE)
        .arg("LIMIT")
        .query(&mut con)
        .unwrap();
    assert!(limit.contains("\"limit_category\":\"A03\""), "{limit}");
    let today: String = redis::cmd("ELIG.PERSON")
        .arg(person(P1))
        .arg("limit")
        .query(&mut con)
        .unwrap();
    assert!(today.contains("\"limit_category\":\"A03\""), "{today}");
}

#[test]
fn pipelining_and_errors_keep_the_connection() {
    let data = data_dir();
    let server = start(data.path(), None);
    let mut con = client(server.resp_addr());
    let mut pipe = redis::pipe();
    for _ in 0..200 {
        pipe.cmd("ELIG.CARD")
            .arg("33120015")
            .arg("12")
            .arg("3456")
            .arg("")
            .arg("1980-01-23")
            .arg(DATE);
        pipe.cmd("PING");
    }
    let replies: Vec<redis::Value> = pipe.query(&mut con).unwrap();
    assert_eq!(replies.len(), 400);
    let expected = cli_card(data.path(), "12", "3456", "", "1980-01-23");
    for pair in replies.chunks(2) {
        assert_eq!(
            pair[0],
            redis::Value::BulkString(expected.clone().into_bytes())
        );
        assert_eq!(pair[1], redis::Value::SimpleString("PONG".into()));
    }
    // A malformed query is an error naming the field; the connection goes on.
    let err = redis::cmd("ELIG.CARD")
        .arg("33120015")
        .arg("12")
        .arg("3456")
        .arg("")
        .arg("H31.05.01")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("birthdate"), "{err}");
    let err = redis::cmd("ELIG.PERSON")
        .arg("123456789019")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("individual_number"), "{err}");
    assert!(!err.to_string().contains("123456789019"), "{err}");
    let err = redis::cmd("ELIG.CARD")
        .arg("1")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
    let err = redis::cmd("NOPE")
        .arg(person(P1))
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("unknown command 'NOPE'"), "{err}");
    assert!(!err.to_string().contains(&person(P1)), "{err}");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    let _: redis::Value = redis::cmd("COMMAND").arg("DOCS").query(&mut con).unwrap();
    let echoed: String = redis::cmd("ECHO").arg("hi").query(&mut con).unwrap();
    assert_eq!(echoed, "hi");
}

#[test]
fn raw_frames_inline_and_protocol_errors() {
    let data = data_dir();
    let server = start(data.path(), None);
    let addr = server.resp_addr();
    // Inline commands, as redis-cli or telnet send them, with "" for an absent symbol/branch.
    let got = raw_exchange(
        addr,
        b"PING\r\nELIG.CARD 33120015 12 3456 \"\" 1980-01-23 2026-11-24\r\nQUIT\r\n",
        usize::MAX,
    );
    let expected = cli_card(data.path(), "12", "3456", "", "1980-01-23");
    assert_eq!(
        String::from_utf8(got).unwrap(),
        format!("+PONG\r\n${}\r\n{expected}\r\n+OK\r\n", expected.len())
    );
    // A broken frame: -ERR Protocol error, then the server closes.
    let got = raw_exchange(addr, b"PING\r\n*1\r\n+PING\r\nPING\r\n", usize::MAX);
    assert_eq!(
        String::from_utf8(got).unwrap(),
        "+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n"
    );
    // Oversized bulk and array lengths are refused before any byte of them is buffered.
    let got = raw_exchange(addr, b"*2\r\n$9\r\nELIG.CARD\r\n$100000000\r\n", usize::MAX);
    assert!(String::from_utf8(got)
        .unwrap()
        .starts_with("-ERR Protocol error: bulk length exceeds"));
    let got = raw_exchange(addr, b"*1000000\r\n", usize::MAX);
    assert!(String::from_utf8(got)
        .unwrap()
        .starts_with("-ERR Protocol error: too many arguments"));
    let long = vec![b'x'; 20_000];
    let got = raw_exchange(addr, &long, usize::MAX);
    assert!(String::from_utf8(got)
        .unwrap()
        .starts_with("-ERR Protocol error: inline command longer"));
    // Binary junk gets an error, not a panic; the server still answers afterwards.
    let junk: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let _ = raw_exchange(addr, &junk, usize::MAX);
    let got = raw_exchange(addr, b"PING\r\n", 7);
    assert_eq!(got, b"+PONG\r\n");
    // A command split over many writes is answered once whole.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    for b in b"*1\r\n$4\r\nPING\r\n" {
        s.write_all(&[*b]).unwrap();
        s.flush().unwrap();
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

#[test]
fn hello_resp3_and_resp2() {
    let data = data_dir();
    let server = start(data.path(), None);
    let got = raw_exchange(server.resp_addr(), b"HELLO 3\r\nQUIT\r\n", usize::MAX);
    let text = String::from_utf8(got).unwrap();
    assert!(
        text.starts_with("%8\r\n$6\r\nserver\r\n$7\r\nshikaku\r\n"),
        "{text}"
    );
    assert!(text.contains("$5\r\nproto\r\n:3\r\n"), "{text}");
    let got = raw_exchange(
        server.resp_addr(),
        b"HELLO 2\r\nHELLO 4\r\nQUIT\r\n",
        usize::MAX,
    );
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("*16\r\n"), "{text}");
    assert!(text.contains("-NOPROTO"), "{text}");
    // The redis crate speaking RESP3.
    let mut con = redis::Client::open(format!("redis://{}/?protocol=resp3", server.resp_addr()))
        .unwrap()
        .get_connection()
        .unwrap();
    let got: String = redis::cmd("ELIG.PERSON")
        .arg(person(P2))
        .arg(DATE)
        .query(&mut con)
        .unwrap();
    assert_eq!(got, cli_person(data.path(), &person(P2)));
}

#[test]
fn authentication() {
    let data = data_dir();
    let query_code = InstitutionCode::parse("0110113719").unwrap();
    let admin_code = InstitutionCode::parse("1310000003").unwrap();
    let (query_token, query_line) = new_entry(query_code, Role::Query).unwrap();
    let (admin_token, admin_line) = new_entry(admin_code, Role::Admin).unwrap();
    let lines = format!("{query_line}\n{admin_line}\n");
    let table = AuthTable::parse(&lines).unwrap();
    let server = start(data.path(), Some(table));
    let addr = server.resp_addr();

    // No credentials: -NOAUTH for everything but AUTH, HELLO and QUIT.
    let mut con = client(addr);
    let err = redis::cmd("ELIG.PERSON")
        .arg(person(P1))
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");
    let err = redis::cmd("PING").query::<String>(&mut con).unwrap_err();
    assert_eq!(err.code(), Some("NOAUTH"), "{err}");
    // A wrong token is refused.
    let err = redis::cmd("AUTH")
        .arg(query_code.as_str())
        .arg("wrong")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid institution code or token"),
        "{err}"
    );
    // The right one lets the connection in.
    let ok: String = redis::cmd("AUTH")
        .arg(query_code.as_str())
        .arg(&query_token)
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let got: String = redis::cmd("ELIG.PERSON")
        .arg(person(P1))
        .arg(DATE)
        .query(&mut con)
        .unwrap();
    assert_eq!(got, cli_person(data.path(), &person(P1)));

    // Credentials in the URL (AUTH code token at connect), both roles; code:token in one word.
    for (code, token) in [(query_code, &query_token), (admin_code, &admin_token)] {
        let mut con = redis::Client::open(format!("redis://{code}:{token}@{addr}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let pong: String = redis::cmd("PING").query(&mut con).unwrap();
        assert_eq!(pong, "PONG");
        let got = raw_exchange(
            addr,
            format!("AUTH {code}:{token}\r\nPING\r\nQUIT\r\n").as_bytes(),
            usize::MAX,
        );
        assert_eq!(got, b"+OK\r\n+PONG\r\n+OK\r\n");
    }
    assert!(
        redis::Client::open(format!("redis://{query_code}:nope@{addr}/"))
            .unwrap()
            .get_connection()
            .is_err()
    );
    // HELLO with AUTH, and HELLO without it on an unauthenticated connection.
    let got = raw_exchange(
        addr,
        format!("HELLO 3 AUTH {query_code} {query_token}\r\nQUIT\r\n").as_bytes(),
        usize::MAX,
    );
    assert!(String::from_utf8(got).unwrap().starts_with("%8\r\n"));
    let got = raw_exchange(addr, b"HELLO 3\r\nQUIT\r\n", usize::MAX);
    assert!(String::from_utf8(got).unwrap().starts_with("-NOAUTH"));
}

#[test]
fn epoll_driver_answers_like_the_default() {
    let data = data_dir();
    let uring = start(data.path(), None);
    let epoll = start_with(data.path(), None, shikaku::server::Driver::Epoll);
    let (mut a, mut b) = (client(uring.resp_addr()), client(epoll.resp_addr()));
    for (symbol, number, branch, birth, _) in CARDS {
        let ask = |con: &mut redis::Connection| -> String {
            resp_card(con, (symbol, number, branch, birth)).unwrap()
        };
        assert_eq!(ask(&mut a), ask(&mut b));
    }
}

/// Regression: the cores' listeners share their ports through SO_REUSEPORT, and a second
/// server on the same port joined them, started, and took half the connections. RESP and
/// HTTP given one address did the same within one server.
#[test]
fn regression_a_taken_port_is_refused_not_shared() {
    let data = data_dir();
    let first = start(data.path(), None);
    let taken = first.resp_addr();
    let second = try_start(
        data.path(),
        ServeConfig {
            resp: taken,
            ..test_config()
        },
    );
    let err = second.err().expect("the port is taken").to_string();
    assert!(err.contains(&taken.to_string()), "{err}");

    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let both = try_start(
        data.path(),
        ServeConfig {
            resp: free,
            http: free,
            ..test_config()
        },
    );
    let err = both.err().expect("one port for two protocols").to_string();
    assert!(err.contains(&free.to_string()), "{err}");
    // The first server still answers.
    let pong: String = redis::cmd("PING").query(&mut client(taken)).unwrap();
    assert_eq!(pong, "PONG");
}
