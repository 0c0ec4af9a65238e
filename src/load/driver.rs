//! The load loop: one monoio runtime per load thread, driving its share of the connections.
//!
//! Each connection has a writer task and a reader task sharing one FIFO of slots (intended
//! time, workload item): the first `sent` slots are on the wire, in order, and replies come
//! back in the same order (RESP pipelining), so the reader pops the front for each reply.
//! Closed loop: the writer refills the FIFO to the pipeline depth whenever a reply frees a
//! slot, stamping each request with its send time. Open loop: the thread's pacer appends
//! slots at their timetable times whatever the replies, and the writer sends them while
//! fewer than the cap are outstanding. Everything a thread shares lives in `Rc`/`Cell`: the
//! runtime is single-threaded, and no borrow is held across an `.await`.

use super::resp::{encode_command, parse_reply, Reply, MAX_REPLY_BYTES};
use super::schedule::OpenSchedule;
use super::workload::EXPECT_PONG;
use super::{LoadError, Stats, Workload};
use crate::runtime::{Notify, Relay};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// Initial read buffer of a connection; it doubles for a reply that does not fit.
const READ_BUF: usize = 64 << 10;
/// Open loop: requests queued beyond the outstanding cap before new ones are dropped.
pub const MAX_BACKLOG: usize = 65_536;
/// A connection (with AUTH) must be up within this time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// With requests outstanding and no reply for this long, the run gives up on them.
const STALL_TIMEOUT_NS: u64 = 10_000_000_000;
/// The pacer sleeps on a timer only when the next request is further off than this: monoio's
/// timers have 1 ms resolution, so nearer deadlines are met by yielding to the other tasks.
const SPIN_NS: u64 = 3_000_000;

/// What every thread of a run shares: the plan, the clock origin, and the start gate.
pub struct RunShared {
    pub workload: Arc<Workload>,
    pub addr: SocketAddr,
    pub auth: Option<(String, String)>,
    pub threads: usize,
    /// Total connections; thread t gets every T-th.
    pub connections: usize,
    /// Closed loop: the pipeline depth. Open loop: the outstanding cap per connection.
    pub cap: usize,
    /// Closed loop: send `cap` requests at once and the next batch only when all are
    /// answered (redis-benchmark's -P), instead of refilling each slot as its reply comes.
    pub batch: bool,
    /// Open loop's total rate; `None` for closed loop.
    pub rate: Option<f64>,
    pub warmup_ns: u64,
    pub duration_ns: Option<u64>,
    /// Measured requests of the whole run (split between threads).
    pub requests: Option<u64>,
    pub origin: Instant,
    /// Threads connect, then all start together; a thread that failed to connect says so
    /// here so the others stop instead of running a partial load.
    pub gate: Barrier,
    pub setup_failed: AtomicBool,
    pub setup_error: Mutex<Option<LoadError>>,
}

impl RunShared {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn connections_of(&self, t: usize) -> usize {
        self.connections / self.threads + usize::from(t < self.connections % self.threads)
    }

    fn requests_of(&self, t: usize) -> Option<u64> {
        let n = self.threads as u64;
        self.requests.map(|k| k / n + u64::from((t as u64) < k % n))
    }
}

/// Result of one thread: its counters and when it started measuring.
pub struct ThreadResult {
    pub stats: Stats,
    pub measure_start_ns: u64,
}

/// Runs thread `t`'s share of the load on its own runtime.
pub fn run_thread(shared: &RunShared, t: usize) -> Result<ThreadResult, LoadError> {
    let n = shared.connections_of(t);
    let entries = (4 * n).clamp(256, 32_768).next_power_of_two() as u32;
    // The server's ring settings (`runtime::tuned_runtime`): a reply arriving while this thread
    // runs is queued for its next entry into the kernel (it enters after every round of
    // tasks) instead of interrupting it, an interrupt the replying server would pay for. A
    // kernel that refuses them gets the default ring: the load runs the same, only dearer.
    let built = crate::runtime::tuned_runtime(entries, |_| {});
    let mut rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            // The other threads wait at the gate: let them through, to stop.
            shared.setup_failed.store(true, Ordering::SeqCst);
            shared.gate.wait();
            return Err(LoadError::Runtime(e));
        }
    };
    rt.block_on(thread_main(shared, t, n))
}

async fn thread_main(shared: &RunShared, t: usize, n: usize) -> Result<ThreadResult, LoadError> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        match connect(shared.addr, shared.auth.as_ref()).await {
            Ok(s) => streams.push(s),
            Err(e) => {
                shared.setup_failed.store(true, Ordering::SeqCst);
                let mut slot = shared.setup_error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(e);
                break;
            }
        }
    }
    // Nothing else runs on this runtime yet, so blocking on the gate stalls nothing.
    shared.gate.wait();
    if shared.setup_failed.load(Ordering::SeqCst) {
        return Err(LoadError::Aborted);
    }
    let start = shared.now_ns();
    let th = Rc::new(ThreadState::new(shared, t, start));
    let conns: Vec<Rc<Conn>> = streams
        .into_iter()
        .map(|s| {
            let conn = Rc::new(Conn::default());
            let (rd, wr) = s.into_split();
            monoio::spawn(read_replies(th.clone(), conn.clone(), rd));
            monoio::spawn(write_requests(th.clone(), conn.clone(), wr));
            conn
        })
        .collect();
    if let Some(rate) = shared.rate {
        let sched = OpenSchedule::new(start, rate, shared.threads, t);
        pace(&th, &conns, sched).await;
        for c in &conns {
            c.close();
        }
    }
    wait_done(&th, &conns).await;
    for c in &conns {
        for slot in c.queue.borrow_mut().drain(..) {
            th.never_answered(slot.intended);
        }
    }
    let stats = th.stats.replace(Stats::default());
    Ok(ThreadResult {
        stats,
        measure_start_ns: th.measure_start,
    })
}

/// Opens one connection, with Nagle off (pipelined small requests must not wait for ACKs),
/// and authenticates it when the run has credentials.
async fn connect(
    addr: SocketAddr,
    auth: Option<&(String, String)>,
) -> Result<TcpStream, LoadError> {
    let fail = |reason: String| LoadError::Connect { addr, reason };
    let setup = async {
        let mut s = TcpStream::connect_addr(addr)
            .await
            .map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        if let Some((code, token)) = auth {
            authenticate(&mut s, code, token).await?;
        }
        Ok::<_, String>(s)
    };
    match monoio::time::timeout(CONNECT_TIMEOUT, setup).await {
        Ok(r) => r.map_err(fail),
        Err(_) => Err(fail(format!("no connection within {CONNECT_TIMEOUT:?}"))),
    }
}

async fn authenticate(s: &mut TcpStream, code: &str, token: &str) -> Result<(), String> {
    let mut cmd = Vec::new();
    encode_command(&mut cmd, &[b"AUTH", code.as_bytes(), token.as_bytes()]);
    let (res, _) = s.write_all(cmd).await;
    res.map_err(|e| format!("sending AUTH: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let len = buf.len();
        if len == buf.capacity() {
            return Err("AUTH reply too long".into());
        }
        let (res, slice) = s.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => return Err("the server closed the connection after AUTH".into()),
            Err(e) => return Err(format!("reading the AUTH reply: {e}")),
            Ok(_) => {}
        }
        match parse_reply(&buf).map_err(|e| e.to_string())? {
            None => continue,
            Some((Reply::Simple, _)) => return Ok(()),
            Some((Reply::Error, n)) => {
                let msg = String::from_utf8_lossy(&buf[1..n - 2]);
                return Err(format!("AUTH refused: {msg}"));
            }
            Some((other, _)) => return Err(format!("unexpected AUTH reply {other:?}")),
        }
    }
}

/// One request slot: when it was meant to go, and which workload item it is.
#[derive(Debug, Clone, Copy)]
struct Slot {
    intended: u64,
    /// When the request went into a write (0 until then).
    written: u64,
    item: u32,
}

/// A connection's state, shared by its reader, its writer and the thread's pacer.
#[derive(Default)]
struct Conn {
    /// Requests due, oldest first; the first `sent` of them are on the wire.
    queue: RefCell<VecDeque<Slot>>,
    sent: Cell<usize>,
    /// No more requests will be queued.
    closing: Cell<bool>,
    failed: Cell<bool>,
    writer_wake: Notify,
}

impl Conn {
    fn done(&self) -> bool {
        self.failed.get() || (self.closing.get() && self.queue.borrow().is_empty())
    }

    fn close(&self) {
        self.closing.set(true);
        self.writer_wake.notify();
    }
}

/// A thread's view of the run.
struct ThreadState {
    workload: Arc<Workload>,
    origin: Instant,
    closed: bool,
    cap: usize,
    batch: bool,
    measure_start: u64,
    end_ns: Option<u64>,
    /// Measured requests this thread may still issue (`None`: until `end_ns`).
    quota: Cell<Option<u64>>,
    /// Next workload item; threads start at different places of the workload.
    cursor: Cell<usize>,
    /// Time of the latest reply (warm-up included), to notice a stalled server.
    last_progress: Cell<u64>,
    stats: RefCell<Stats>,
}

impl ThreadState {
    fn new(shared: &RunShared, t: usize, start: u64) -> ThreadState {
        let measure_start = start + shared.warmup_ns;
        ThreadState {
            workload: shared.workload.clone(),
            origin: shared.origin,
            closed: shared.rate.is_none(),
            cap: shared.cap,
            batch: shared.batch,
            measure_start,
            end_ns: shared.duration_ns.map(|d| measure_start + d),
            quota: Cell::new(shared.requests_of(t)),
            cursor: Cell::new(t * shared.workload.len() / shared.threads),
            last_progress: Cell::new(start),
            stats: RefCell::new(Stats::default()),
        }
    }

    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn next_item(&self) -> u32 {
        let i = self.cursor.get();
        let next = i + 1;
        self.cursor
            .set(if next == self.workload.len() { 0 } else { next });
        // Workload::load caps the length far below u32::MAX.
        i as u32
    }

    /// May a request intended at `intended` be issued? Counts it against the quota when it
    /// falls in the measured part of the run.
    fn take(&self, intended: u64) -> bool {
        if self.end_ns.is_some_and(|end| intended >= end) {
            return false;
        }
        if intended >= self.measure_start {
            if let Some(q) = self.quota.get() {
                if q == 0 {
                    return false;
                }
                self.quota.set(Some(q - 1));
            }
        }
        true
    }

    /// Closed loop: tops the connection's queue up to the pipeline depth (in batch mode only
    /// once it is empty), stamped now.
    fn fill_closed(&self, conn: &Conn) {
        if conn.closing.get() {
            return;
        }
        let mut q = conn.queue.borrow_mut();
        if q.len() >= self.cap || (self.batch && !q.is_empty()) {
            return;
        }
        let now = self.now_ns();
        while q.len() < self.cap {
            if !self.take(now) {
                conn.closing.set(true);
                break;
            }
            q.push_back(Slot {
                intended: now,
                written: 0,
                item: self.next_item(),
            });
        }
    }

    /// Open loop: queues the request intended at `intended` on `conn`, whatever its replies.
    fn dispatch(&self, conn: &Conn, intended: u64) {
        if conn.failed.get() {
            return self.never_answered(intended);
        }
        let mut q = conn.queue.borrow_mut();
        if q.len() >= self.cap + MAX_BACKLOG {
            self.stats.borrow_mut().dropped += 1;
            // Counted apart as well: it was never even sent.
            return self.never_answered(intended);
        }
        let mut stats = self.stats.borrow_mut();
        if q.len() >= self.cap {
            stats.cap_hits += 1;
        }
        q.push_back(Slot {
            intended,
            written: 0,
            item: self.next_item(),
        });
        conn.writer_wake.notify();
    }

    /// A request intended at `intended` will get no answer: unanswered, and when it falls in
    /// the measured part, timed as never answered.
    fn never_answered(&self, intended: u64) {
        let mut stats = self.stats.borrow_mut();
        if intended >= self.measure_start {
            stats.record_never_answered();
        } else {
            stats.unanswered += 1;
        }
    }

    /// Appends the queued requests not yet sent, up to the cap outstanding, to `buf`.
    /// Stamps them written now.
    fn encode_unsent(&self, conn: &Conn, buf: &mut Vec<u8>) {
        let mut q = conn.queue.borrow_mut();
        let first = conn.sent.get();
        let mut sent = first;
        let now = self.now_ns();
        while sent < q.len() && sent < self.cap {
            let slot = &mut q[sent];
            slot.written = now.max(slot.intended);
            buf.extend_from_slice(self.workload.request(slot.item as usize));
            sent += 1;
        }
        conn.sent.set(sent);
        self.stats.borrow_mut().sent += (sent - first) as u64;
    }

    /// Takes every complete reply at the front of `buf`, matching each with the oldest
    /// request on the wire; returns the bytes consumed.
    fn take_replies(&self, conn: &Conn, buf: &[u8]) -> Result<usize, String> {
        let now = self.now_ns();
        let mut stats = self.stats.borrow_mut();
        let mut q = conn.queue.borrow_mut();
        let mut at = 0;
        while let Some((reply, n)) = parse_reply(&buf[at..]).map_err(|e| e.to_string())? {
            let sent = conn.sent.get();
            let slot = match q.pop_front() {
                Some(s) if sent > 0 => s,
                _ => return Err("a reply came with no request outstanding".into()),
            };
            conn.sent.set(sent - 1);
            stats.replies += 1;
            if slot.intended >= self.measure_start {
                stats.measured += 1;
                stats.record_reply(slot.intended, slot.written, now);
                stats.last_reply_ns = now;
            }
            match reply {
                Reply::Answer(v) if v == self.workload.expected(slot.item as usize) => {
                    stats.right += 1
                }
                Reply::Answer(_) => stats.wrong += 1,
                Reply::Simple
                    if self.workload.expected(slot.item as usize) == EXPECT_PONG
                        && &buf[at + 1..at + n - 2] == b"PONG" =>
                {
                    stats.right += 1
                }
                Reply::Error => stats.note_error(&buf[at + 1..at + n - 2]),
                _ => stats.unexpected += 1,
            }
            at += n;
        }
        if at > 0 {
            self.last_progress.set(now);
        }
        Ok(at)
    }

    fn fail(&self, conn: &Conn, what: &str) {
        if !conn.failed.replace(true) {
            self.stats.borrow_mut().note_failure(what);
        }
        conn.writer_wake.notify();
    }
}

async fn write_requests(th: Rc<ThreadState>, conn: Rc<Conn>, mut wr: OwnedWriteHalf<TcpStream>) {
    let mut buf = Vec::with_capacity(16 << 10);
    loop {
        if conn.failed.get() {
            return;
        }
        if th.closed {
            th.fill_closed(&conn);
        }
        th.encode_unsent(&conn, &mut buf);
        if buf.is_empty() {
            if conn.closing.get() && conn.sent.get() == conn.queue.borrow().len() {
                return;
            }
            conn.writer_wake.notified().await;
            continue;
        }
        let (res, b) = wr.write_all(buf).await;
        buf = b;
        buf.clear();
        if let Err(e) = res {
            th.fail(&conn, &format!("write: {e}"));
            return;
        }
    }
}

async fn read_replies(th: Rc<ThreadState>, conn: Rc<Conn>, mut rd: OwnedReadHalf<TcpStream>) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BUF);
    loop {
        if buf.len() == buf.capacity() {
            // The parser rejects replies over MAX_REPLY_BYTES, so this stays bounded.
            if buf.capacity() > 2 * MAX_REPLY_BYTES {
                th.fail(&conn, "reply buffer overflow");
                return;
            }
            buf.reserve(buf.capacity());
        }
        let len = buf.len();
        let (res, slice) = rd.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        if conn.failed.get() {
            return;
        }
        match res {
            Ok(0) if conn.done() => return,
            Ok(0) => {
                th.fail(&conn, "the server closed the connection");
                return;
            }
            Err(e) => {
                th.fail(&conn, &format!("read: {e}"));
                return;
            }
            Ok(_) => {}
        }
        match th.take_replies(&conn, &buf) {
            Ok(used) => {
                buf.drain(..used);
            }
            Err(e) => {
                th.fail(&conn, &e);
                return;
            }
        }
        conn.writer_wake.notify();
    }
}

/// Open loop: hands each request to its connection at its intended time, round-robin, until
/// the run's end or quota. Never waits for replies.
async fn pace(th: &ThreadState, conns: &[Rc<Conn>], sched: OpenSchedule) {
    let n = conns.len() as u64;
    let relay = Rc::new(Relay::default());
    relay.start();
    let mut k = 0u64;
    loop {
        let due = sched.due_by(th.now_ns());
        while k < due {
            let intended = sched.intended(k);
            if !th.take(intended) {
                return;
            }
            th.dispatch(&conns[(k % n) as usize], intended);
            k += 1;
        }
        if conns.iter().all(|c| c.failed.get()) {
            // The rest of the timetable is due all the same, and none of it will be answered.
            while th.take(sched.intended(k)) {
                th.never_answered(sched.intended(k));
                k += 1;
            }
            return;
        }
        let wait = sched.intended(k).saturating_sub(th.now_ns());
        if wait > SPIN_NS {
            monoio::time::sleep(Duration::from_nanos(wait - SPIN_NS / 2)).await;
        } else {
            relay.yield_now().await;
        }
    }
}

/// Waits until every connection is done, stopping the issue of requests at the run's end and
/// giving up when the server stops answering.
async fn wait_done(th: &ThreadState, conns: &[Rc<Conn>]) {
    // An open-loop run at a low rate may have had no reply for long before this point.
    th.last_progress
        .set(th.last_progress.get().max(th.now_ns()));
    loop {
        let now = th.now_ns();
        if th.end_ns.is_some_and(|end| now >= end) {
            for c in conns.iter().filter(|c| !c.closing.get()) {
                c.close();
            }
        }
        if conns.iter().all(|c| c.done()) {
            return;
        }
        if now.saturating_sub(th.last_progress.get()) > STALL_TIMEOUT_NS {
            let failures = conns.iter().filter(|c| !c.done());
            for c in failures {
                th.fail(c, "no reply for 10 s; giving up");
            }
            return;
        }
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
}
