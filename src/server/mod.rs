//! `shikaku serve`: a thread-per-core server speaking RESP and HTTP (docs/api.md).
//!
//! One monoio runtime per core on io_uring (epoll when the kernel refuses io_uring, said in
//! the log at start), each pinned to its core with its own `SO_REUSEPORT` listeners, so the
//! kernel spreads connections over the cores and a connection lives on one core. The index
//! is shared read-only ([`Live`]); there are no locks and no shared atomics written on the
//! query path (per-core counters, summed when `/metrics` is read). A connection reads into a
//! reused buffer, answers every complete request in it, and writes the answers with one
//! write. While requests keep coming a core polls instead of sleeping (`spin`).
//!
//! Draining ([`Server::drain`], SIGTERM in `shikaku serve`): each core stops accepting (its
//! listeners close, so the kernel sends new connections to another process on the same
//! ports), answers every request it has read, closes each connection instead of reading it
//! again, and ends when none is left or after [`limits::DRAIN_TIMEOUT`]. A request the
//! server has read is answered; one it has not read is never half-answered.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shikaku::server::{serve, Live, ServeConfig};
//! let index = shikaku::generations::Store::new("data").open_current(shikaku::domain::PersonKey::demo())?;
//! let live = std::sync::Arc::new(Live::new(index)?);
//! let server = serve(ServeConfig::default(), live.clone())?;
//! println!("RESP on {}, HTTP on {}", server.resp_addr(), server.http_addr());
//! // Later (reload): live.publish(new_index)?;
//! server.join();
//! # Ok(()) }
//! ```

pub mod audit;
pub mod auth;
pub mod budget;
mod connection;
mod descriptors;
#[cfg(test)]
mod digit_tests;
pub mod http;
pub mod limits;
pub mod live;
pub mod metrics;
mod reload;
pub mod resp;
mod run;
pub mod session;
mod spin;
pub mod supervise;
pub mod systemd;
#[cfg(test)]
mod tests;

pub use auth::{AuthTable, Identity, Role};
pub use live::{Generation, Live, LiveView};
pub use reload::Reloader;
pub use run::{serve_until_signal, RunError};

use crate::domain::Date;
use limits::*;
use metrics::{CoreMetrics, Protocol};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncWriteRentExt, CancelableAsyncReadRent, Canceller};
use monoio::net::{TcpListener, TcpStream};
use session::{Ctx, Session, Shared};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// RESP listener (port 0: any free port, the same on every core).
    pub resp: SocketAddr,
    /// HTTP listener.
    pub http: SocketAddr,
    /// Worker threads (cores); 0 means one per available core.
    pub threads: usize,
    /// Clients and their tokens; `None` lets anyone in, and then only loopback addresses
    /// may be listened on.
    pub auth: Option<AuthTable>,
    /// Pin worker `i` to core `i` (modulo the cores available).
    pub pin: bool,
    /// The I/O driver of every core's runtime.
    pub driver: Driver,
    /// How long a core keeps polling after a request before it sleeps (`spin`); zero never
    /// polls. Polling spares the client's core a wake-up per request; on a shared virtual
    /// machine a core that never sleeps may be descheduled by the host instead.
    pub poll_window: std::time::Duration,
    /// Where each core appends its audit log ([`audit`]); `None` keeps none.
    pub audit_dir: Option<std::path::PathBuf>,
    /// Most bytes all connections' read buffers may hold beyond their first size
    /// ([`budget`]); past it a request that needs more is refused (503, `-ERR`).
    pub memory_budget_bytes: usize,
    /// A request's head (HTTP request line and headers, a RESP command) must arrive whole
    /// within this of its first byte, else the connection is answered 408 / `-ERR` and closed.
    pub head_deadline: std::time::Duration,
    /// A request's body must arrive whole within this of the request's first byte.
    pub body_deadline: std::time::Duration,
    /// Connections a core serves at once; `None` derives it from `RLIMIT_NOFILE`, so the
    /// refusal at the limit comes before descriptors run out (past that, a reserved
    /// descriptor refuses new connections).
    pub max_connections_per_core: Option<usize>,
}

/// Which kernel interface the runtimes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Driver {
    /// io_uring when the kernel offers it, else epoll.
    #[default]
    Auto,
    #[value(help = "epoll: as fast as io_uring at pipelining depth 1, slower at depth 16")]
    /// epoll: about as fast as io_uring at pipelining depth 1 since io_uring runs with
    /// cooperative task running (104k vs 107k requests/s on one core; 94k vs 67k before),
    /// slower at depth 16 (perf/RESULTS.md).
    Epoll,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            resp: SocketAddr::from(([127, 0, 0, 1], 7379)),
            http: SocketAddr::from(([127, 0, 0, 1], 7380)),
            threads: 0,
            auth: None,
            pin: true,
            driver: Driver::Auto,
            poll_window: spin::SPIN_WINDOW,
            audit_dir: None,
            memory_budget_bytes: budget::DEFAULT_MEMORY_BUDGET_BYTES,
            head_deadline: HEAD_DEADLINE,
            body_deadline: BODY_DEADLINE,
            max_connections_per_core: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("refusing to listen on {0}, which is not a loopback address, without --auth: anyone could query; give --auth FILE or listen on 127.0.0.1")]
    OpenToTheWorld(SocketAddr),
    #[error("cannot start the runtime of core {core}: {source}")]
    Runtime {
        core: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("RESP and HTTP are both given {0}: give each its own port")]
    SameAddress(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("worker thread {0} died while starting")]
    Thread(usize),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// A running server.
pub struct Server {
    resp: SocketAddr,
    http: SocketAddr,
    live: Arc<Live>,
    reload: Arc<std::sync::atomic::AtomicBool>,
    draining: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// The RESP address actually bound (port resolved).
    pub fn resp_addr(&self) -> SocketAddr {
        self.resp
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The flag `POST /admin/reload` sets; give it to a [`Reloader`] (and to SIGHUP).
    pub fn reload_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.reload.clone()
    }

    /// The flag that drains the server when set: give it to a signal handler (SIGTERM).
    pub fn drain_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.draining.clone()
    }

    /// Starts draining: stop accepting, answer what was read, close (see the module docs).
    /// [`Server::join`] returns once every core is done.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Waits for the worker threads: they serve until drained.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Fails when a fixed port of `addrs` is taken, or two of them are one port. The cores'
/// listeners share their ports through `SO_REUSEPORT`, which would as well let them join
/// another server's listeners on the same port (a second `shikaku serve`, or RESP and HTTP
/// given one address): the kernel would split the connections between the two, silently. A
/// plain listener on each port first, all held at once, refuses that; port 0 needs no check.
fn claim_ports(addrs: [SocketAddr; 2]) -> Result<(), ServeError> {
    if addrs[0] == addrs[1] && addrs[0].port() != 0 {
        return Err(ServeError::SameAddress(addrs[0]));
    }
    let mut held = Vec::with_capacity(addrs.len());
    for addr in addrs.into_iter().filter(|a| a.port() != 0) {
        let probe = claim_port(addr).map_err(|source| ServeError::Bind { addr, source })?;
        held.push(probe);
    }
    Ok(())
}

/// How long a start waits for a port that is still held. The holder is most often the
/// previous run of this very server: a process killed with io_uring requests in flight (an
/// accept on its listener) releases its sockets only when the kernel tears its rings down,
/// moments after it exits, and later on a busy machine. A restart then waits instead of
/// failing; another program on the port is still refused, after the wait.
pub const PORT_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// Binds `addr` alone (std sets SO_REUSEADDR, so connections in TIME_WAIT from a previous
/// run do not count, and not SO_REUSEPORT, so any listener already on the port refuses this
/// one), waiting up to [`PORT_RELEASE_WAIT`] while the port is in use.
pub fn claim_port(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let started = Instant::now();
    let mut said = false;
    loop {
        match std::net::TcpListener::bind(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && started.elapsed() < PORT_RELEASE_WAIT =>
            {
                if !said {
                    tracing::warn!(%addr, "the port is in use (a previous run still closing?); waiting up to {} s for it", PORT_RELEASE_WAIT.as_secs());
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            bound => return bound,
        }
    }
}

/// Whether the kernel gives us io_uring (else the runtimes fall back to epoll).
pub fn io_uring_available() -> bool {
    monoio::utils::detect_uring()
}

/// Starts the workers and returns once every core listens.
pub fn serve(config: ServeConfig, live: Arc<Live>) -> Result<Server, ServeError> {
    if config.auth.is_none() {
        for addr in [config.resp, config.http] {
            if !addr.ip().is_loopback() {
                return Err(ServeError::OpenToTheWorld(addr));
            }
        }
    }
    claim_ports([config.resp, config.http])?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if config.threads == 0 {
        cpus
    } else {
        config.threads
    };
    let driver = match config.driver {
        Driver::Epoll => "epoll (chosen with --driver epoll)",
        Driver::Auto if io_uring_available() => "io_uring",
        Driver::Auto => "epoll (the kernel refused io_uring)",
    };
    let (fitting, nofile) = descriptors::connections_per_core(threads);
    let max_connections = config.max_connections_per_core.unwrap_or(fitting);
    if max_connections > fitting {
        tracing::warn!(
            max_connections,
            fitting,
            nofile,
            "more connections per core than the descriptor limit leaves room for: past it, new connections are refused from a reserved descriptor"
        );
    }
    tracing::info!(
        threads,
        driver,
        max_connections_per_core = max_connections,
        nofile,
        memory_budget_bytes = config.memory_budget_bytes,
        "starting workers"
    );
    let mut audit_logs = open_audit_logs(config.audit_dir.as_deref(), threads)?.into_iter();
    let shared = Arc::new(Shared {
        live: live.clone(),
        auth: config.auth.clone(),
        cores: (0..threads)
            .map(|_| Arc::new(CoreMetrics::default()))
            .collect(),
        reload: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        draining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        budget: budget::MemoryBudget::new(config.memory_budget_bytes),
    });
    let (mut resp, mut http) = (config.resp, config.http);
    let mut handles = Vec::with_capacity(threads);
    for core in 0..threads {
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = shared.clone();
        let pin = config.pin.then_some(core % cpus);
        let driver = config.driver;
        let listen = Listen {
            resp,
            http,
            poll_window: config.poll_window,
            max_connections,
            head_deadline: config.head_deadline,
            body_deadline: config.body_deadline,
        };
        let audit = audit_logs.next();
        let handle = std::thread::Builder::new()
            .name(format!("shikaku-core-{core}"))
            .spawn(move || worker(core, pin, driver, listen, shared, audit, tx))
            .map_err(|source| ServeError::Runtime { core, source })?;
        let (r, h) = rx.recv().map_err(|_| ServeError::Thread(core))??;
        // Core 0 resolves port 0; the others bind the same ports.
        (resp, http) = (r, h);
        handles.push(handle);
    }
    tracing::info!(%resp, %http, generation = %live.load().id(), auth = config.auth.is_some(), "serving");
    Ok(Server {
        resp,
        http,
        live,
        reload: shared.reload.clone(),
        draining: shared.draining.clone(),
        threads: handles,
    })
}

/// One audit log per core when `dir` is given (none otherwise), each file opened now so a
/// directory that cannot be written stops the start.
fn open_audit_logs(
    dir: Option<&std::path::Path>,
    threads: usize,
) -> Result<Vec<audit::AuditLog>, ServeError> {
    let Some(dir) = dir else {
        tracing::info!("audit log: off (serve --audit-dir DIR keeps one)");
        return Ok(Vec::new());
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let started = audit::start_stamp(now);
    let logs = (0..threads)
        .map(|core| audit::AuditLog::create(dir, &started, core))
        .collect::<Result<Vec<_>, _>>()?;
    tracing::info!(dir = %dir.display(), first = %logs[0].path().display(), "audit log: on");
    Ok(logs)
}

type Started = Result<(SocketAddr, SocketAddr), ServeError>;

/// What a core serves on, and how it waits.
#[derive(Clone, Copy)]
struct Listen {
    resp: SocketAddr,
    http: SocketAddr,
    poll_window: std::time::Duration,
    /// Connections this core serves at once; the next is refused.
    max_connections: usize,
    head_deadline: std::time::Duration,
    body_deadline: std::time::Duration,
}

fn worker(
    core: usize,
    pin: Option<usize>,
    driver: Driver,
    listen: Listen,
    shared: Arc<Shared>,
    audit: Option<audit::AuditLog>,
    started: std::sync::mpsc::Sender<Started>,
) {
    if let Some(cpu) = pin {
        if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
            tracing::warn!(core, cpu, "cannot pin to the core: {e:?}");
        }
    }
    // The two drivers make runtimes of different types; the core's work is the same.
    let built = match driver {
        Driver::Auto => crate::runtime::tuned_runtime(URING_ENTRIES, |e| {
            tracing::warn!(
                core,
                "io_uring with cooperative task running refused ({e}); using the default ring"
            );
        })
        .map(|mut rt| rt.block_on(run_core(core, listen, shared, audit, started.clone()))),
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(run_core(core, listen, shared, audit, started.clone()))),
    };
    if let Err(source) = built {
        let _ = started.send(Err(ServeError::Runtime { core, source }));
    }
}

/// One core: bind its listeners, report them, then accept and serve until drained.
async fn run_core(
    core: usize,
    listen: Listen,
    shared: Arc<Shared>,
    audit: Option<audit::AuditLog>,
    started: std::sync::mpsc::Sender<Started>,
) {
    {
        let bind = |addr: SocketAddr| {
            descriptors::bind(addr, 4096)
                .and_then(|l| Ok((l.0.local_addr()?, l)))
                .map_err(|source| ServeError::Bind { addr, source })
        };
        let listeners = bind(listen.resp).and_then(|r| Ok((r, bind(listen.http)?)));
        let ((resp_addr, resp_l), (http_addr, http_l)) = match listeners {
            Ok(l) => l,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let _ = started.send(Ok((resp_addr, http_addr)));
        let background = shared.live.background_count();
        let core = Rc::new(Core {
            index: core,
            metrics: shared.cores[core].clone(),
            view: RefCell::new(shared.live.view()),
            shared,
            connections: Cell::new(0),
            listen,
            next_client: Cell::new(1),
            spin: spin::Spin::new(listen.poll_window, background),
            draining: Cell::new(false),
            canceller: RefCell::new(Canceller::new()),
            audit: audit.map(RefCell::new),
        });
        core.spin.start();
        monoio::spawn(refresh_loop(core.clone()));
        if core.audit.is_some() {
            monoio::spawn(audit_flush_loop(core.clone()));
        }
        monoio::spawn(accept_loop(resp_l, Protocol::Resp, core.clone()));
        monoio::spawn(accept_loop(http_l, Protocol::Http, core.clone()));
        drain_when_told(&core).await;
        if let Some(log) = &core.audit {
            log.borrow_mut().flush();
        }
    }
}

/// Waits for the server to be drained, then drains this core: no accepting, no reading; the
/// connections finish what they read and close. Returns when none is left, or after
/// [`DRAIN_TIMEOUT`] (the runtime then drops what remains).
async fn drain_when_told(core: &Core) {
    while !core
        .shared
        .draining
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        monoio::time::sleep(DRAIN_CHECK).await;
    }
    core.draining.set(true);
    // Every accept and read waiting on this core's handle ends now (a read that already
    // completed keeps its bytes); no new one starts, as both loops check `draining`.
    let canceller = core.canceller.replace(Canceller::new());
    canceller.cancel();
    tracing::info!(
        core = core.index,
        connections = core.connections.get(),
        "draining"
    );
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while core.connections.get() > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_CHECK).await;
    }
    let left = core.connections.get();
    if left > 0 {
        tracing::warn!(
            core = core.index,
            connections = left,
            "drain time-out: closing the rest"
        );
    } else {
        tracing::info!(core = core.index, "drained");
    }
}

/// One core's state, shared by its tasks (single-threaded: `Rc` and `Cell`).
struct Core {
    index: usize,
    shared: Arc<Shared>,
    /// This core's copy of the live generation: one per core, not per connection, so an old
    /// generation is let go as soon as each core has moved on.
    view: RefCell<LiveView>,
    metrics: Arc<CoreMetrics>,
    connections: Cell<usize>,
    listen: Listen,
    next_client: Cell<u64>,
    spin: Rc<spin::Spin>,
    /// The server is draining: accept and read no more.
    draining: Cell<bool>,
    /// Cancels this core's waiting accepts and reads when it starts draining.
    canceller: RefCell<Canceller>,
    /// Borrowed only while a read batch is answered or the buffer written (no await inside).
    audit: Option<RefCell<audit::AuditLog>>,
}

/// Writes the core's buffered audit lines at least every [`audit::AUDIT_FLUSH_EVERY`].
async fn audit_flush_loop(core: Rc<Core>) {
    while let Some(log) = &core.audit {
        monoio::time::sleep(audit::AUDIT_FLUSH_EVERY).await;
        log.borrow_mut().flush();
    }
}

fn unix_us_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Moves an idle core to a newly published generation, so the old one is released.
/// Gives back the memory of connections closed since the last look (their buffers, their
/// answers), which the allocator would otherwise keep until this core allocates again.
async fn refresh_loop(core: Rc<Core>) {
    let (mut open_before, mut fell_before) = (0, false);
    loop {
        monoio::time::sleep(live::VIEW_REFRESH).await;
        core.view.borrow_mut().refresh(&core.shared.live);
        let open = core.connections.get();
        let fell = open < open_before;
        // Once more after the fall has stopped: what the last closing tasks freed.
        if fell || fell_before {
            crate::allocator::collect_freed_memory();
        }
        (open_before, fell_before) = (open, fell);
    }
}

async fn accept_loop(
    (listener, mut shed): (TcpListener, descriptors::Shed),
    protocol: Protocol,
    core: Rc<Core>,
) {
    while !core.draining.get() {
        let cancel = core.canceller.borrow().handle();
        match listener.cancelable_accept(cancel).await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if core.connections.get() >= core.listen.max_connections {
                    core.metrics.connection_refused();
                    monoio::spawn(refuse(stream, protocol));
                    continue;
                }
                monoio::spawn(connection::connection(stream, peer, protocol, core.clone()));
            }
            Err(_) if core.draining.get() => break,
            Err(e) if descriptors::out_of_descriptors(&e) => {
                // The kernel keeps the connection queued: take it with the reserved
                // descriptor and refuse it, so its client is not left waiting.
                let mut out = Vec::new();
                refusal(protocol, "out of file descriptors", &mut out);
                if shed.refuse_one(&out) {
                    core.metrics.descriptors_refused();
                } else {
                    monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                shed.log(core.index, Instant::now());
            }
            Err(e) => {
                tracing::warn!(core = core.index, "accept failed: {e}");
                monoio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The answer to a connection refused before any request, for `why`.
fn refusal(protocol: Protocol, why: &str, out: &mut Vec<u8>) {
    match protocol {
        Protocol::Resp => resp::write_error_line(
            out,
            "ERR ",
            &format!("max number of clients reached ({why}); try again later"),
        ),
        Protocol::Http => http::refusal(
            out,
            503,
            &format!("too many connections ({why}); try again later"),
        ),
    }
}

async fn refuse(mut stream: TcpStream, protocol: Protocol) {
    let mut out = Vec::new();
    refusal(protocol, "the per-core limit", &mut out);
    let _ = monoio::time::timeout(WRITE_TIMEOUT, stream.write_all(out)).await;
}
