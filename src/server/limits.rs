//! Every limit the server enforces, in one place. A request beyond a limit gets a clear error
//! naming it; nothing grows without bound.

use std::time::Duration;

/// RESP: most elements in one command array (`*N`). No shikaku command needs more than 8.
pub const RESP_MAX_ARGS: usize = 64;
/// RESP: longest bulk string argument (`$N`). Every argument of a query is under 100 bytes.
pub const RESP_MAX_BULK_BYTES: usize = 4096;
/// RESP: longest inline command line (redis-cli/telnet style), like Redis's 64 KiB but tighter.
pub const RESP_MAX_INLINE_BYTES: usize = 16 * 1024;
/// RESP: the longest incomplete command held for a connection not yet authenticated (under
/// `--auth`); longer, it is answered `-NOAUTH` and closed.
pub const RESP_MAX_UNAUTHENTICATED_BYTES: usize = 4096;
/// RESP: the largest frame the limits above allow; the read buffer never grows past it.
pub const RESP_MAX_FRAME_BYTES: usize = RESP_MAX_ARGS * (RESP_MAX_BULK_BYTES + 32) + 32;

/// HTTP: bytes of the request line and headers.
pub const HTTP_MAX_HEADER_BYTES: usize = 16 * 1024;
/// HTTP: number of headers.
pub const HTTP_MAX_HEADERS: usize = 64;
/// HTTP: body of a single query (`/v1/card`, `/v1/person`).
pub const HTTP_MAX_QUERY_BODY_BYTES: usize = 16 * 1024;
/// HTTP: body of a batch (`/v1/batch`): 10,000 queries of a few hundred bytes each.
pub const HTTP_MAX_BATCH_BODY_BYTES: usize = 8 * 1024 * 1024;
/// HTTP: body of a claims file (`/v1/claims`): a large hospital's month in one request.
pub const HTTP_MAX_CLAIMS_BODY_BYTES: usize = crate::claims::limits::CLAIMS_BODY_MAX_BYTES;
/// HTTP: chunks of a claims file's chunked body (16 KiB chunks of the largest body, with
/// room for smaller ones).
pub const HTTP_MAX_CLAIMS_CHUNKS: usize = 64 * 1024;
/// HTTP: chunks of a `Transfer-Encoding: chunked` body. A client writing a 10,000-query CSV
/// batch a line per chunk stays under it.
pub const HTTP_MAX_CHUNKS: usize = 16 * 1024;
/// HTTP: a chunk-size line (hex size, extensions, CRLF).
pub const HTTP_MAX_CHUNK_LINE_BYTES: usize = 64;
/// HTTP: the largest request the limits above allow: headers, body, the chunked encoding's
/// size lines and CRLFs, and trailers (limited as headers).
pub const HTTP_MAX_REQUEST_BYTES: usize = HTTP_MAX_HEADER_BYTES
    + HTTP_MAX_CLAIMS_BODY_BYTES
    + HTTP_MAX_CLAIMS_CHUNKS * (HTTP_MAX_CHUNK_LINE_BYTES + 2)
    + HTTP_MAX_HEADER_BYTES;

/// Open connections per core (RESP and HTTP together); the next is refused with an error.
/// Lowered at start to what `RLIMIT_NOFILE` leaves each core (`descriptors`).
pub const MAX_CONNECTIONS_PER_CORE: usize = 16 * 1024;
/// Pipelined requests answered per read before the answers are written; the rest of the
/// buffer is answered next, before reading again.
pub const MAX_PIPELINE_PER_READ: usize = 1024;
/// Answers buffered before a write, whatever the pipeline count (bounds memory per connection).
pub const MAX_PENDING_OUTPUT_BYTES: usize = 1024 * 1024;
/// The kernel's send buffer of every connection (`SO_SNDBUF`, set on the listeners and
/// inherited by what they accept; the kernel doubles it for its bookkeeping). Without it the
/// kernel grows a socket's queue to several MiB, so a client that never reads its answer made
/// the write look done (the `WRITE_TIMEOUT` never fired) while the kernel held it. 128 KiB
/// keeps a 1 Gbit/s link busy at 1 ms of round trip (a clinic's line is far slower).
pub const SEND_BUFFER_BYTES: usize = 128 * 1024;
/// A connection that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A request's head (request line and headers; a RESP command) not whole this long after
/// its first byte arrived is answered 408 / `-ERR` and the connection closed: a client
/// trickling a byte a second holds a connection this long at most.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// A request's body not whole this long after the request's first byte, likewise. An 8 MiB
/// batch takes about 7 s at 10 Mbit/s.
pub const BODY_DEADLINE: Duration = Duration::from_secs(60);
/// A write the peer does not take within this long closes the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a core looks whether the server is draining.
pub const DRAIN_CHECK: Duration = Duration::from_millis(20);
/// A draining core closes what connections are still open after this long (a client that
/// does not read its answers, a write stuck on a full socket).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection the server closes while its client may still be sending (a drain, a refusal,
/// `Connection: close`) is half-closed first and what still arrives is read and dropped, for
/// this long at most: a close with unread input makes the kernel send a reset, which throws
/// away the replies not yet delivered.
pub const LINGER: Duration = Duration::from_secs(2);
/// Initial size of a connection's read and write buffers (reused for its lifetime).
pub const INITIAL_BUFFER_BYTES: usize = 16 * 1024;
/// Submission queue entries of a core's io_uring (monoio's default): room for one operation
/// in flight on every connection a core usually holds before a submit is forced.
pub const URING_ENTRIES: u32 = 1024;
