//! Running out of file descriptors without hanging clients. Each core keeps one descriptor in
//! reserve; when an accept fails for want of descriptors (`EMFILE`, `ENFILE`), it closes the
//! reserve, accepts the connection waiting, answers it a refusal, closes it and takes the
//! reserve back, so a client hears "try again later" at once instead of waiting in the
//! kernel's queue. It is logged once per [`LOG_EVERY`] and counted in `/metrics`.
//!
//! The per-core connection limit is derived from `RLIMIT_NOFILE` (soft limit raised to the
//! hard one first), so the ordinary refusal at the limit comes before descriptors run out.

use super::limits::MAX_CONNECTIONS_PER_CORE;
use std::fs::File;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often running out of descriptors is logged while it goes on.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Descriptors kept free of connections: the listeners, reserves, rings and audit logs of
/// every core, the files a reload opens (one at a time), the log.
fn headroom(threads: usize) -> u64 {
    64 + 8 * threads as u64
}

/// The connection limit of each of `threads` cores, and the descriptor limit it comes from.
/// Raises the soft `RLIMIT_NOFILE` to the hard limit, then leaves what is open now and
/// [`headroom`] aside.
pub fn connections_per_core(threads: usize) -> (usize, u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    let soft = limit.current.unwrap_or(u64::MAX);
    let open = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count() as u64);
    let spare = soft.saturating_sub(open + headroom(threads));
    let per_core = (spare / threads.max(1) as u64).clamp(1, MAX_CONNECTIONS_PER_CORE as u64);
    (per_core as usize, soft)
}

/// A core's listener: the one its runtime accepts on, and a second handle to the same socket
/// (a `dup`) for taking a connection by hand when descriptors run out.
pub fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<(monoio::net::TcpListener, Shed)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Non-blocking, as monoio makes its own listeners: the hand-taken accept must not wait.
    socket.set_nonblocking(true)?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    // Inherited by every connection accepted: bounds what the kernel queues for a client that
    // does not read (`limits::SEND_BUFFER_BYTES`).
    socket.set_send_buffer_size(super::limits::SEND_BUFFER_BYTES)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    let listener: std::net::TcpListener = socket.into();
    let spare = listener.try_clone()?;
    Ok((
        monoio::net::TcpListener::from_std(listener)?,
        Shed {
            listener: spare,
            reserve: reserve(),
            logged_at: None,
            refused_since_log: 0,
        },
    ))
}

fn reserve() -> Option<File> {
    File::open("/dev/null").ok()
}

/// Whether `e` says the process or the system is out of descriptors.
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// What a core needs to refuse connections when it has no descriptor left.
pub struct Shed {
    listener: std::net::TcpListener,
    reserve: Option<File>,
    logged_at: Option<Instant>,
    refused_since_log: u64,
}

impl Shed {
    /// Frees the reserve, takes the next waiting connection, writes it `refusal` and closes
    /// it, then takes the reserve back. Whether a connection was refused (`false`: none was
    /// waiting, or the reserve is gone).
    pub fn refuse_one(&mut self, refusal: &[u8]) -> bool {
        if self.reserve.take().is_none() {
            self.reserve = reserve();
            return false;
        }
        let refused = match self.listener.accept() {
            Ok((mut stream, _)) => {
                // Best effort and never waiting: the refusal fits the socket's send buffer.
                // What the client sent is read first, so closing sends FIN rather than RST
                // (which could discard the refusal before the client reads it).
                let _ = stream.set_nonblocking(true);
                let _ = stream.read(&mut [0u8; 1024]);
                let _ = stream.write_all(refusal);
                let _ = stream.shutdown(std::net::Shutdown::Write);
                true
            }
            Err(_) => false,
        };
        self.reserve = reserve();
        if refused {
            self.refused_since_log += 1;
        }
        refused
    }

    /// Logs the refusals, at most once per [`LOG_EVERY`].
    pub fn log(&mut self, core: usize, now: Instant) {
        if self
            .logged_at
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return;
        }
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        tracing::warn!(
            core,
            refused = self.refused_since_log,
            nofile = soft.unwrap_or(u64::MAX),
            "out of file descriptors: new connections are refused (503 / -ERR) until some close; raise RLIMIT_NOFILE (ulimit -n) or lower the load (logged at most every {} s)",
            LOG_EVERY.as_secs()
        );
        self.logged_at = Some(now);
        self.refused_since_log = 0;
    }
}
