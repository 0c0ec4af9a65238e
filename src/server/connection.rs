//! One connection's life on a core: read, answer everything complete, write once, and how it
//! ends (the server's own close half-closes and lingers, so replies in flight are not lost).

use super::*;
use monoio::io::{AsyncReadRent, AsyncWriteRent};

/// Counts a connection while it lives.
struct Open(Rc<Core>, Protocol);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        self.0.metrics.connection_closed(self.1);
    }
}

pub(super) async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
    core: Rc<Core>,
) {
    core.connections.set(core.connections.get() + 1);
    core.metrics.connection_opened(protocol);
    let _open = Open(core.clone(), protocol);
    let end = match protocol {
        Protocol::Resp => {
            let id = core.next_client.get();
            core.next_client.set(id + 1);
            // Client ids are unique per server: core index in the low bits.
            let client_id = id * 1024 + core.index as u64;
            let session = resp::RespSession::new(client_id);
            serve_connection(&mut stream, peer, session, &core).await
        }
        Protocol::Http => {
            serve_connection(&mut stream, peer, http::HttpSession::default(), &core).await
        }
    };
    if end == End::ServerCloses {
        close_lingering(stream).await;
    }
}

/// How a connection's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed, failed, or does not take its replies: nothing more to deliver.
    PeerGone,
    /// The server ends it (a drain, a refusal, a time-out, `Connection: close`) with its
    /// replies written, and the client may still be sending.
    ServerCloses,
}

/// Half-closes `stream` (its replies, then FIN) and reads and drops what the client still
/// sends until it closes too, for at most [`LINGER`]. A close with unread input makes the
/// kernel answer with a reset and drop the replies not yet delivered: a drain cut the last
/// reply of a client whose pipeline was still arriving (`server_drain`, under load).
async fn close_lingering(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut scratch = Vec::with_capacity(4096);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((Ok(n), buf)) = monoio::time::timeout(left, stream.read(scratch)).await else {
            return;
        };
        if n == 0 {
            return;
        }
        scratch = buf;
        scratch.clear();
    }
}

/// Writes a refusal's `out`; the connection then ends: the server's close, or the client's
/// if it does not take the reply.
async fn written_then(stream: &mut TcpStream, out: Vec<u8>) -> End {
    match monoio::time::timeout(WRITE_TIMEOUT, stream.write_all(out)).await {
        Ok((Ok(_), _)) => End::ServerCloses,
        _ => End::PeerGone,
    }
}

/// The connection loop: read, answer everything complete, write once.
///
/// The read buffer grows only when a read has filled it (by bytes received, never by what a
/// header announces), each growth taken from the server's [`budget`]. A request must arrive
/// whole within the deadlines of its first byte (`Listen::head_deadline`, `body_deadline`).
async fn serve_connection<S: Session>(
    stream: &mut TcpStream,
    peer: SocketAddr,
    mut session: S,
    core: &Core,
) -> End {
    let live = &core.shared.live;
    let mut input: Vec<u8> = Vec::with_capacity(INITIAL_BUFFER_BYTES);
    // Allocated by the first answer: a connection that never completes a request holds none.
    let mut out: Vec<u8> = Vec::new();
    let mut held = budget::Held::new(&core.shared.budget);
    // The answers made and not yet taken by the client, beyond the write buffer's first size.
    let mut unsent = budget::Held::new(&core.shared.budget);
    let mut pending_more = false;
    // When the incomplete request at the end of `input` began, and whether it awaits its body.
    let mut partial: Option<(Instant, bool)> = None;
    loop {
        if !pending_more {
            if core.draining.get() {
                // Everything complete that was read is answered: close rather than wait.
                return End::ServerCloses;
            }
            if input.len() == input.capacity() {
                let refused = if input.capacity() >= session.max_buffer() {
                    Some(session::Refusal::TooLarge)
                } else {
                    let grow = input
                        .capacity()
                        .min(session.max_buffer() - input.capacity());
                    held.grow(grow)
                        .then(|| input.reserve_exact(grow))
                        .is_none()
                        .then(|| {
                            core.metrics.memory_refused();
                            session::Refusal::MemoryBudget
                        })
                };
                if let Some(why) = refused {
                    session.refuse(why, &mut out);
                    return written_then(stream, out).await;
                }
            }
            // Nothing pending: the idle time-out. Part of a request: what is left of its
            // deadline.
            let deadline = partial.map(|(since, body)| {
                let d = if body {
                    core.listen.body_deadline
                } else {
                    core.listen.head_deadline
                };
                (d, d.saturating_sub(since.elapsed()))
            });
            let wait = deadline.map_or(IDLE_TIMEOUT, |(_, left)| left);
            let len = input.len();
            let cap = input.bytes_total();
            let cancel = core.canceller.borrow().handle();
            let read = monoio::time::timeout(
                wait,
                stream.cancelable_read(input.slice_mut(len..cap), cancel),
            );
            let (res, slice) = match (read.await, deadline) {
                (Ok(r), _) => r,
                (Err(_), None) => return End::ServerCloses,
                (Err(_), Some((d, _))) => {
                    core.metrics.request_timed_out();
                    session.refuse(session::Refusal::Deadline(d), &mut out);
                    return written_then(stream, out).await;
                }
            };
            input = slice.into_inner();
            match res {
                Ok(0) | Err(_) => return End::PeerGone,
                Ok(_) => {}
            }
        }
        let started = Instant::now();
        core.spin.requests_at(started);
        // The view is borrowed only while this batch is answered (no await inside).
        let step = {
            let mut view = core.view.borrow_mut();
            let ctx = Ctx {
                generation: view.refresh(live),
                today: Date::today_jst(),
                shared: &core.shared,
                metrics: &core.metrics,
                audit: core.audit.as_ref().map(|log| session::Audit {
                    log,
                    peer: Some(peer),
                    at_us: unix_us_now(),
                }),
            };
            session.process(&input, &ctx, &mut out)
        };
        core.metrics.latency(started.elapsed(), step.requests);
        input.drain(..step.consumed);
        if input.is_empty() && input.capacity() > INITIAL_BUFFER_BYTES {
            // A large request (a batch, a claims file) has been answered: give its memory
            // back before its answer is written, which may wait on a slow reader.
            input = Vec::with_capacity(INITIAL_BUFFER_BYTES);
            held.release();
        }
        pending_more = step.more;
        partial = match partial {
            _ if input.is_empty() || step.more => None,
            // The same request as before, still incomplete: its clock runs on.
            Some((since, _)) if step.consumed == 0 => Some((since, step.awaiting_body)),
            _ => Some((started, step.awaiting_body)),
        };
        if !out.is_empty() {
            // Counted until the client has taken it: a client that does not read holds its
            // answer here (the kernel's part is bounded by `SEND_BUFFER_BYTES`) until
            // `WRITE_TIMEOUT`, and the budget refuses what comes meanwhile.
            unsent.hold(out.capacity().saturating_sub(INITIAL_BUFFER_BYTES));
            let written = monoio::time::timeout(WRITE_TIMEOUT, stream.write_all(out)).await;
            let (res, buf) = match written {
                Ok(r) => r,
                Err(_) => return End::PeerGone,
            };
            if res.is_err() {
                return End::PeerGone;
            }
            out = reused_or_released(buf);
            unsent.release();
        }
        if step.close {
            return End::ServerCloses;
        }
    }
}

/// The write buffer after its answer went out: kept for the next answer while it is of its
/// first size, else freed (a connection idle after a large answer holds none of it; the next
/// answer allocates again).
fn reused_or_released(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.capacity() > INITIAL_BUFFER_BYTES {
        return Vec::new();
    }
    buf.clear();
    buf
}
