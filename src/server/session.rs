//! What a protocol session gets to answer a read batch, and what it reports back.

use super::audit::{AuditEntry, AuditLog, Audited, AuditedClaim};
use super::auth::AuthTable;
use super::live::{Generation, Live};
use super::metrics::{CoreMetrics, Via};
use crate::domain::{Date, InstitutionCode, Validity};
use crate::query::answer::GroupQuery;
use crate::query::QueryKind;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;

/// State shared by every core, read-only while serving.
pub struct Shared {
    pub live: Arc<Live>,
    /// `None`: no `--auth`, everyone is let in (loopback only).
    pub auth: Option<AuthTable>,
    /// Every core's counters, for `/metrics`.
    pub cores: Vec<Arc<CoreMetrics>>,
    /// Set by `POST /admin/reload`; the reloader thread acts on it.
    pub reload: Arc<std::sync::atomic::AtomicBool>,
    /// Set to drain and stop (SIGTERM, [`super::Server::drain`]); each core checks it every
    /// [`super::limits::DRAIN_CHECK`], never on the query path.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// What the connections' read buffers hold beyond their first size, server-wide.
    pub budget: super::budget::MemoryBudget,
}

/// The context of one read batch: every request in it is answered from `generation` as of
/// `today`.
pub struct Ctx<'a> {
    pub generation: &'a Generation,
    pub today: Date,
    pub shared: &'a Shared,
    pub metrics: &'a CoreMetrics,
    /// The core's audit log (`serve --audit-dir`), or `None`.
    pub audit: Option<Audit<'a>>,
}

/// A core's audit log and what every line of one read batch shares.
#[derive(Clone, Copy)]
pub struct Audit<'a> {
    pub log: &'a RefCell<AuditLog>,
    pub peer: Option<SocketAddr>,
    /// When the batch was read, in µs since the Unix epoch.
    pub at_us: i64,
}

impl Ctx<'_> {
    /// Logs an answered query in the audit log, when the server keeps one.
    #[inline]
    pub fn audit_answer(
        &self,
        via: Via,
        client: Option<InstitutionCode>,
        q: GroupQuery<'_>,
        v: Validity,
    ) {
        if self.audit.is_none() {
            return;
        }
        let (query, date) = match q {
            GroupQuery::Card(c) => (Audited::Card(c), c.date),
            GroupQuery::Person(p) => (
                Audited::Person(p, self.generation.index.person_hash(&p.individual_number)),
                p.date,
            ),
            GroupQuery::Kohi(k) => (Audited::Kohi(k), k.date),
        };
        self.audit_line(via, client, query, date.unwrap_or(self.today), Some(v));
    }

    /// Logs a malformed query (answered with an error) in the audit log, if any.
    #[inline]
    pub fn audit_malformed(
        &self,
        via: Via,
        client: Option<InstitutionCode>,
        kind: Option<QueryKind>,
    ) {
        if self.audit.is_none() {
            return;
        }
        let kind = kind.map(|k| match k {
            QueryKind::Card => "card",
            QueryKind::Person => "person",
            QueryKind::Kohi => "kohi",
        });
        self.audit_line(via, client, Audited::Malformed(kind), self.today, None);
    }

    /// Logs a checked receipt of a claims file, when the server keeps a log; `month` is the
    /// first day of its month of care (else today).
    pub fn audit_claim(
        &self,
        client: Option<InstitutionCode>,
        claim: AuditedClaim<'_>,
        month: Option<Date>,
    ) {
        if self.audit.is_some() {
            let date = month.unwrap_or(self.today);
            self.audit_line(Via::Http, client, Audited::Claim(claim), date, None);
        }
    }

    fn audit_line(
        &self,
        via: Via,
        client: Option<InstitutionCode>,
        query: Audited<'_>,
        date: Date,
        validity: Option<Validity>,
    ) {
        let Some(a) = &self.audit else {
            return;
        };
        let appended = a.log.borrow_mut().record(&AuditEntry {
            at_us: a.at_us,
            via,
            client,
            peer: a.peer,
            query,
            date,
            validity,
            generation: self.generation.id(),
        });
        self.metrics
            .audit(u64::from(appended), u64::from(!appended));
    }
}

/// The result of answering what a read delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// Bytes of the input fully handled; the caller drops them.
    pub consumed: usize,
    /// Requests answered.
    pub requests: u64,
    /// Close the connection after writing the output.
    pub close: bool,
    /// Stopped at a limit with complete requests left: answer again before reading.
    pub more: bool,
    /// The incomplete request at the end has its head and waits for its body (the body
    /// deadline applies to it, not the head deadline).
    pub awaiting_body: bool,
}

/// Why a connection is refused before its request is whole (the connection then closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The input outgrew [`Session::max_buffer`].
    TooLarge,
    /// The server's memory budget for request buffers is spent.
    MemoryBudget,
    /// The request was not whole within this deadline of its first byte.
    Deadline(std::time::Duration),
}

/// A protocol's per-connection state.
pub trait Session {
    /// Answers every complete request at the start of `input` into `out`.
    fn process(&mut self, input: &[u8], ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Step;
    /// The read buffer never grows past this; the protocol's limits keep a request below it.
    fn max_buffer(&self) -> usize;
    /// Writes the error refusing the incomplete request (the connection closes).
    fn refuse(&mut self, why: Refusal, out: &mut Vec<u8>);
}
