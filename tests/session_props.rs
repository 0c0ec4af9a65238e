//! Arbitrary bytes through the RESP parser and both protocol sessions (proptest, in the
//! normal suite; the fuzz targets of docs/fuzzing.md search the same space for longer).
//!
//! `parse_command` against a naive model: a command encoded from arbitrary arguments parses
//! back to them, and whatever bytes it is given, a command it accepts lies within them,
//! every shorter prefix of it is incomplete, and bytes after it change nothing. The sessions:
//! well-formed requests mixed with arbitrary bytes, split into arbitrary reads, give the
//! replies of one read (the fuzz crate's check, compiled in).

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use proptest::prelude::*;
use shikaku::server::resp::parse_command;

/// The RESP multibulk encoding of `args`, as a client writes it.
fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A parsed command: the bytes it spans and its arguments.
type Command = (usize, Vec<Vec<u8>>);

/// What `parse_command` makes of `buf`.
fn parsed(buf: &[u8]) -> Result<Option<Command>, String> {
    let mut args = Vec::new();
    match parse_command(buf, &mut args) {
        Ok(Some(n)) => {
            assert!(n > 0 && n <= buf.len(), "span {n} of {} bytes", buf.len());
            let bytes = args
                .iter()
                .map(|r| {
                    assert!(r.end <= n, "argument {r:?} past the command's {n} bytes");
                    buf[r.clone()].to_vec()
                })
                .collect();
            Ok(Some((n, bytes)))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e.0),
    }
}

/// Requests of each protocol that the fixture answers, to mix with arbitrary bytes.
const RESP_REQUESTS: [&[u8]; 6] = [
    b"PING\r\n",
    b"*6\r\n$9\r\nELIG.CARD\r\n$8\r\n33120015\r\n$2\r\n12\r\n$4\r\n3456\r\n$0\r\n\r\n$10\r\n1980-01-23\r\n",
    b"elig.card 33120015 12 3456 01 S55.1.23 2019-01-01 LIMIT\r\n",
    b"ELIG.PERSON 123456789018\r\n",
    b"HELLO 3\r\n",
    b"*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n",
];

const HTTP_REQUESTS: [&[u8]; 6] = [
    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /v1/card HTTP/1.1\r\nHost: localhost\r\nContent-Length: 84\r\n\r\n{\"insurer_number\":\"33120015\",\"symbol\":\"12\",\"number\":\"3456\",\"birthdate\":\"1980-01-23\"}",
    b"POST /v1/person HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 36\r\n\r\n{\"individual_number\":\"123456789018\"}",
    b"POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n12\r\nkind,individual_nu\r\n19\r\nmber\r\nperson,123456789018\r\n0\r\n\r\n",
    b"GET /v1/generation HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /v1/card HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
];

/// A fuzz-target input (options byte, cut points, body): pieces that are requests from
/// `requests` or arbitrary bytes, and up to 7 arbitrary cut points.
fn session_input(requests: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => (0..requests.len()).prop_map(move |i| requests[i].to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
    ];
    (
        any::<u8>(),
        proptest::collection::vec(any::<u16>(), 7),
        proptest::collection::vec(piece, 0..6),
    )
        .prop_map(|(flags, cuts, pieces)| {
            let n = usize::from(flags & 7);
            let mut data = vec![flags];
            for c in &cuts[..n] {
                data.extend_from_slice(&c.to_le_bytes());
            }
            data.extend(pieces.concat());
            data
        })
}

/// Every request, defect and position of `http_framing` up to a line's length, with and
/// without `--auth`, each read whole and split in the middle.
#[test]
fn http_framing_defects_at_every_position() {
    for flags in [0x00, 0x08] {
        for request in 0..4 {
            for defect in 0..9 {
                for position in 0..96 {
                    harness::session::http_framing(&[flags, request, defect, position, 128]);
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn encoded_commands_parse_back(
        args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..10),
        tail in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut buf = encode(&args);
        let len = buf.len();
        buf.extend_from_slice(&tail);
        prop_assert_eq!(parsed(&buf), Ok(Some((len, args))));
    }

    #[test]
    fn arbitrary_bytes_parse_consistently(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Some((n, args))) = parsed(&buf) {
            for k in 0..n {
                prop_assert_eq!(parsed(&buf[..k]), Ok(None), "prefix of {} bytes", k);
            }
            prop_assert_eq!(parsed(&buf[..n]), Ok(Some((n, args))));
        }
    }

    #[test]
    fn resp_replies_do_not_depend_on_reads(data in session_input(&RESP_REQUESTS)) {
        harness::session::resp(&data);
    }

    #[test]
    fn http_replies_do_not_depend_on_reads(data in session_input(&HTTP_REQUESTS)) {
        harness::session::http(&data);
    }

    /// Issue 27: requests with a defect in their framing (no `Host` or two, two
    /// `Authorization`, a bare LF or CR, a name that is not loopback without `--auth`, an
    /// unknown `Expect`) are refused alone; without one, they and the next are answered.
    #[test]
    fn http_framing_defects_are_refused_alone(data in proptest::collection::vec(any::<u8>(), 0..12)) {
        harness::session::http_framing(&data);
    }

    #[test]
    fn arbitrary_bytes_through_both_sessions(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        harness::session::resp(&data);
        harness::session::http(&data);
    }
}
