//! RESP2/RESP3 (the Redis protocol), docs/api.md.
//!
//! The session: commands parsed by [`parse_command`] and answered, queries in groups. The parser
//! has its own file.
//!
//! Commands: one table, `commands::COMMANDS` (name, who may run it, argument counts, handler,
//! and the row docs/api.md gives it); queries wait in `queued` for their group.
//!
//! Errors: `-ERR <field>: <reason>` for a malformed query (the connection stays usable),
//! `-NOAUTH Authentication required.` before authentication, `-WRONGPASS …` for a wrong
//! institution code or token, `-ERR Protocol error: …` for a broken frame (then the
//! connection closes, as Redis does).

use super::auth::Identity;
use super::limits::*;
use super::metrics::{Kind, Protocol, Via};
use super::session::{Ctx, Refusal, Session, Step};
use crate::domain::text::write_decimal;
use crate::domain::{InstitutionCode, CARD_TEXT_MAX_CHARS};
use crate::query::answer::{answer_group, GroupQuery, GroupScratch, GROUP_QUERIES};
use crate::query::QueryKind;
use crate::query::{CardFields, CardQuery, KohiFields, KohiQuery, PersonFields, PersonQuery};
use std::ops::Range;

mod commands;
mod parse;
use commands::{command_named, Access, Run};
use parse::printable;
pub use parse::{parse_command, ProtoError};

/// Room for any valid normalized symbol or number (UTF-8 takes at most 4 bytes a character),
/// so the reused buffers never grow.
const CARD_TEXT_BUFFER_BYTES: usize = CARD_TEXT_MAX_CHARS * 4;

/// A RESP connection.
pub struct RespSession {
    args: Vec<Range<usize>>,
    state: State,
}

struct State {
    proto: u8,
    identity: Option<Identity>,
    client_id: u64,
    /// Reused by the groups: the answer JSON before it is framed as a bulk string, probes.
    scratch: GroupScratch,
    /// Queries parsed and not yet answered (or their errors). Consecutive `ELIG.CARD` and
    /// `ELIG.PERSON` commands of one read are answered together, up to [`GROUP_QUERIES`] at a
    /// time, by [`answer_group`]; any other command first answers those queued, so replies
    /// keep the order of the requests.
    queued: Vec<Queued>,
    /// The normalized symbols and numbers of answered card queries, reused by the next ones.
    spare_text: Vec<(String, String)>,
    /// The same for public-expense queries' recipient numbers.
    spare_recipients: Vec<String>,
}

/// A query waiting for its group, or the error it gets instead of an answer.
enum Queued {
    Card(Result<CardQuery, String>),
    Person(Result<PersonQuery, String>),
    Kohi(Result<KohiQuery, String>),
}

impl Queued {
    fn query(&self) -> Option<GroupQuery<'_>> {
        match self {
            Queued::Card(Ok(q)) => Some(GroupQuery::Card(q)),
            Queued::Person(Ok(q)) => Some(GroupQuery::Person(q)),
            Queued::Kohi(Ok(q)) => Some(GroupQuery::Kohi(q)),
            _ => None,
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            Queued::Card(Err(e)) | Queued::Person(Err(e)) | Queued::Kohi(Err(e)) => Some(e),
            _ => None,
        }
    }

    fn kind(&self) -> QueryKind {
        match self {
            Queued::Card(_) => QueryKind::Card,
            Queued::Person(_) => QueryKind::Person,
            Queued::Kohi(_) => QueryKind::Kohi,
        }
    }
}

/// An `ELIG.KOHI payer_number recipient_number birthdate [date]`, its recipient number
/// normalized into `recipient`; the institution asking is the authenticated client's (none
/// without `--auth`: the designated-institution rule is not applied).
fn parse_kohi(
    a: &Args<'_>,
    client: Option<InstitutionCode>,
    recipient: String,
) -> Result<KohiQuery, String> {
    let date = match a.len() {
        5 => Some(a.text(4, "date")?),
        _ => None,
    };
    let fields = KohiFields {
        payer_number: Some(a.text(1, "payer_number")?),
        recipient_number: Some(a.text(2, "recipient_number")?),
        birthdate: Some(a.text(3, "birthdate")?),
        date,
        institution_code: None,
    };
    let mut q = KohiQuery::parse_reusing(&fields, recipient).map_err(|e| e.to_string())?;
    q.institution = client;
    Ok(q)
}

/// An `ELIG.PERSON` of 2 to 4 arguments.
fn parse_person(a: &Args<'_>) -> Result<PersonQuery, String> {
    let (date, limit) = date_and_limit(a, 2)?;
    let fields = PersonFields {
        individual_number: Some(a.text(1, "individual_number")?),
        date,
        limit_consent: limit,
    };
    PersonQuery::parse(&fields).map_err(|e| e.to_string())
}

impl RespSession {
    pub fn new(client_id: u64) -> RespSession {
        RespSession {
            args: Vec::with_capacity(RESP_MAX_ARGS),
            state: State {
                proto: 2,
                identity: None,
                client_id,
                scratch: GroupScratch::default(),
                queued: Vec::with_capacity(GROUP_QUERIES),
                spare_text: Vec::with_capacity(GROUP_QUERIES),
                spare_recipients: Vec::with_capacity(GROUP_QUERIES),
            },
        }
    }
}

impl Session for RespSession {
    fn process(&mut self, input: &[u8], ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Step {
        let mut step = Step::default();
        while step.consumed < input.len() {
            if step.requests as usize >= MAX_PIPELINE_PER_READ
                || out.len() >= MAX_PENDING_OUTPUT_BYTES
            {
                step.more = true;
                break;
            }
            let frame = &input[step.consumed..];
            match parse_command(frame, &mut self.args) {
                Ok(None) => {
                    // Under --auth nothing large is held for a client not yet authenticated:
                    // AUTH and HELLO are short.
                    if frame.len() > RESP_MAX_UNAUTHENTICATED_BYTES && !self.state.may_run(ctx) {
                        self.state.answer_queued(ctx, out);
                        ctx.metrics.protocol_error(Protocol::Resp);
                        out.extend_from_slice(b"-NOAUTH Authentication required.\r\n");
                        step.close = true;
                    }
                    break;
                }
                Err(e) => {
                    self.state.answer_queued(ctx, out);
                    ctx.metrics.protocol_error(Protocol::Resp);
                    write_error_line(out, "ERR Protocol error: ", &e.0);
                    step.close = true;
                    break;
                }
                Ok(Some(len)) => {
                    step.consumed += len;
                    if self.args.is_empty() {
                        continue;
                    }
                    step.requests += 1;
                    let args = Args::new(&frame[..len], &self.args);
                    if let Some(kind) = self.state.queueable(&args, ctx) {
                        self.state.queue(kind, &args);
                        if self.state.queued.len() == GROUP_QUERIES {
                            self.state.answer_queued(ctx, out);
                        }
                        continue;
                    }
                    self.state.answer_queued(ctx, out);
                    if self.state.dispatch(&args, ctx, out) == Flow::Close {
                        step.close = true;
                        break;
                    }
                }
            }
        }
        // Queued answers may take the output up to GROUP_QUERIES answers past
        // MAX_PENDING_OUTPUT_BYTES (each at most a few KiB): a bounded overshoot.
        self.state.answer_queued(ctx, out);
        ctx.metrics.requests(Protocol::Resp, step.requests);
        step
    }

    fn max_buffer(&self) -> usize {
        RESP_MAX_FRAME_BYTES
    }

    fn refuse(&mut self, why: Refusal, out: &mut Vec<u8>) {
        match why {
            Refusal::TooLarge => write_error_line(out, "ERR Protocol error: ", "request too large"),
            Refusal::MemoryBudget => write_error_line(
                out,
                "ERR ",
                "server busy: its memory for requests is spent; try again later",
            ),
            Refusal::Deadline(d) => write_error_line(
                out,
                "ERR Protocol error: ",
                &format!("command not received whole within {} s", d.as_secs()),
            ),
        }
    }
}

struct Args<'a> {
    buf: &'a [u8],
    /// `buf` as text when it is valid UTF-8 (every well-formed query): validated once for
    /// the whole command rather than once per argument.
    text: Option<&'a str>,
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// The arguments at `ranges` of the command `buf`.
    fn new(buf: &'a [u8], ranges: &'a [Range<usize>]) -> Args<'a> {
        Args {
            buf,
            text: std::str::from_utf8(buf).ok(),
            ranges,
        }
    }

    fn len(&self) -> usize {
        self.ranges.len()
    }

    fn get(&self, i: usize) -> &'a [u8] {
        &self.buf[self.ranges[i].clone()]
    }

    fn is(&self, i: usize, word: &str) -> bool {
        i < self.len() && self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }

    /// Argument `i` as text; `field` names it in the error.
    fn text(&self, i: usize, field: &'static str) -> Result<&'a str, String> {
        // An argument of a valid command starts and ends on character boundaries (the bytes
        // around it are ASCII framing), so `get` finds it; else check the argument alone.
        if let Some(arg) = self.text.and_then(|t| t.get(self.ranges[i].clone())) {
            return Ok(arg);
        }
        std::str::from_utf8(self.get(i)).map_err(|_| format!("{field}: is not UTF-8"))
    }
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

impl State {
    /// Runs a command that was not queued: any but a well-formed query the connection may
    /// run (`queueable`), which waits for its group.
    fn dispatch(&mut self, a: &Args<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Flow {
        let Some(c) = command_named(a.get(0)) else {
            if self.authorized(ctx, out) {
                unknown_command(a.get(0), out);
            }
            return Flow::Continue;
        };
        if c.access == Access::Authenticated && !self.authorized(ctx, out) {
            return Flow::Continue;
        }
        if !c.args.contains(&a.len()) {
            c.wrong_args(out);
            return Flow::Continue;
        }
        match c.run {
            Run::Now(handler) => handler(self, a, ctx, out),
            // Queued by `process` whenever it may run; answered alone should it get here.
            Run::Query(kind) => {
                self.queue(kind, a);
                self.answer_queued(ctx, out);
                Flow::Continue
            }
        }
    }

    /// Whether the connection may run commands.
    fn may_run(&self, ctx: &Ctx<'_>) -> bool {
        ctx.shared.auth.is_none() || self.identity.is_some()
    }

    /// [`Self::may_run`], writing `-NOAUTH` when not.
    fn authorized(&self, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> bool {
        let ok = self.may_run(ctx);
        if !ok {
            out.extend_from_slice(b"-NOAUTH Authentication required.\r\n");
        }
        ok
    }

    /// The kind of query `a` is when it is a well-formed `ELIG.CARD` or `ELIG.PERSON` this
    /// connection may run, so it can wait in `queued` for the group (any other command,
    /// including a malformed query, goes through `dispatch`).
    fn queueable(&self, a: &Args<'_>, ctx: &Ctx<'_>) -> Option<QueryKind> {
        let c = command_named(a.get(0))?;
        match c.run {
            Run::Query(kind) if c.args.contains(&a.len()) && self.may_run(ctx) => Some(kind),
            _ => None,
        }
    }

    /// Parses the query `a` of `kind` (its argument count checked) into `queued`.
    fn queue(&mut self, kind: QueryKind, a: &Args<'_>) {
        debug_assert!(self.queued.len() < GROUP_QUERIES);
        let q = match kind {
            QueryKind::Card => Queued::Card(self.parse_card(a)),
            QueryKind::Person => Queued::Person(parse_person(a)),
            QueryKind::Kohi => {
                let recipient = self
                    .spare_recipients
                    .pop()
                    .unwrap_or_else(|| String::with_capacity(CARD_TEXT_BUFFER_BYTES));
                Queued::Kohi(parse_kohi(
                    a,
                    self.identity.map(|id| id.institution),
                    recipient,
                ))
            }
        };
        self.queued.push(q);
    }

    /// An `ELIG.CARD` of 6 to 8 arguments, reusing the strings of answered queries.
    fn parse_card(&mut self, a: &Args<'_>) -> Result<CardQuery, String> {
        let (symbol, number) = self.spare_text.pop().unwrap_or_else(|| {
            (
                String::with_capacity(CARD_TEXT_BUFFER_BYTES),
                String::with_capacity(CARD_TEXT_BUFFER_BYTES),
            )
        });
        let (date, limit) = date_and_limit(a, 6)?;
        let fields = CardFields {
            insurer_number: Some(a.text(1, "insurer_number")?),
            symbol: Some(a.text(2, "symbol")?),
            number: Some(a.text(3, "number")?),
            branch: Some(a.text(4, "branch")?),
            birthdate: Some(a.text(5, "birthdate")?),
            date,
            limit_consent: limit,
        };
        CardQuery::parse_reusing(&fields, symbol, number).map_err(|e| e.to_string())
    }

    /// Answers the queued queries, in order, into `out`.
    fn answer_queued(&mut self, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
        if self.queued.is_empty() {
            return;
        }
        let queued = &self.queued;
        let queries: [Option<GroupQuery<'_>>; GROUP_QUERIES] =
            std::array::from_fn(|i| queued.get(i).and_then(Queued::query));
        let index = &ctx.generation.index;
        let client = self.identity.map(|id| id.institution);
        answer_group(
            index,
            &queries[..queued.len()],
            ctx.today,
            &mut self.scratch,
            |i, answered| {
                let kind = Kind::of(Some(queued[i].kind()));
                match (answered, queries[i]) {
                    (Some((v, json)), Some(q)) => {
                        write_bulk(out, json);
                        ctx.metrics.query(Via::Resp, kind, Some(v));
                        ctx.audit_answer(Via::Resp, client, q, v);
                    }
                    // answer_group skips exactly the slots without a query: the parse errors.
                    _ => {
                        write_error_line(out, "ERR ", queued[i].error().unwrap_or("not answered"));
                        ctx.metrics.query(Via::Resp, kind, None);
                        ctx.audit_malformed(Via::Resp, client, Some(queued[i].kind()));
                    }
                }
            },
        );
        for q in self.queued.drain(..) {
            match q {
                Queued::Card(Ok(q)) => self.spare_text.push((q.symbol, q.number)),
                Queued::Kohi(Ok(q)) => self.spare_recipients.push(q.recipient),
                _ => {}
            }
        }
    }

    fn check_credentials(
        &self,
        ctx: &Ctx<'_>,
        code: &[u8],
        token: Option<&[u8]>,
    ) -> Result<Option<Identity>, ()> {
        let Some(table) = &ctx.shared.auth else {
            return Ok(None);
        };
        let id = match token {
            Some(t) => table.check(code, t),
            None => table.check_pair(code),
        };
        if id.is_none() {
            ctx.metrics.auth_refused(Protocol::Resp);
            super::auth::log_refused(Protocol::Resp, code);
        }
        id.map(Some).ok_or(())
    }

    fn auth(&mut self, a: &Args<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
        // `AUTH code:token` or `AUTH code token` (the table allows 2 or 3 arguments).
        let token = (a.len() == 3).then(|| a.get(2));
        let checked = self.check_credentials(ctx, a.get(1), token);
        match checked {
            Ok(id) => {
                if id.is_some() {
                    self.identity = id;
                }
                out.extend_from_slice(b"+OK\r\n");
            }
            Err(()) => wrong_pass(out),
        }
    }

    fn hello(&mut self, a: &Args<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
        let mut proto = self.proto;
        if a.len() >= 2 {
            proto = match a.get(1) {
                b"2" => 2,
                b"3" => 3,
                _ => {
                    out.extend_from_slice(b"-NOPROTO unsupported protocol version\r\n");
                    return;
                }
            };
        }
        let mut i = 2;
        let mut identity = self.identity;
        while i < a.len() {
            if a.is(i, "AUTH") && i + 2 < a.len() {
                match self.check_credentials(ctx, a.get(i + 1), Some(a.get(i + 2))) {
                    Ok(Some(id)) => identity = Some(id),
                    Ok(None) => {}
                    Err(()) => return wrong_pass(out),
                }
                i += 3;
            } else if a.is(i, "SETNAME") && i + 1 < a.len() {
                i += 2;
            } else {
                write_error_line(out, "ERR ", "syntax error in HELLO option");
                return;
            }
        }
        if ctx.shared.auth.is_some() && identity.is_none() {
            out.extend_from_slice(b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <institution_code> <token> option can be used\r\n");
            return;
        }
        self.identity = identity;
        self.proto = proto;
        self.write_map_header(out, 8);
        write_bulk(out, b"server");
        write_bulk(out, b"shikaku");
        write_bulk(out, b"version");
        write_bulk(out, env!("CARGO_PKG_VERSION").as_bytes());
        write_bulk(out, b"proto");
        write_int(out, u64::from(proto));
        write_bulk(out, b"id");
        write_int(out, self.client_id);
        write_bulk(out, b"mode");
        write_bulk(out, b"standalone");
        write_bulk(out, b"role");
        write_bulk(out, b"master");
        write_bulk(out, b"modules");
        out.extend_from_slice(b"*0\r\n");
        write_bulk(out, b"generation");
        write_bulk(out, ctx.generation.id().as_bytes());
    }

    fn write_map_header(&self, out: &mut Vec<u8>, pairs: u64) {
        if self.proto == 3 {
            out.push(b'%');
            write_decimal(out, pairs);
        } else {
            out.push(b'*');
            write_decimal(out, pairs * 2);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `-ERR unknown command '…'`: the name only, never the arguments (they may hold an
/// individual number), and the name masked too: a client may send a number where the
/// command belongs.
fn unknown_command(name: &[u8], out: &mut Vec<u8>) {
    let shown: String = name.iter().take(32).map(|&b| printable(b)).collect();
    let shown = crate::domain::text::mask_digit_runs(&shown);
    write_error_line(out, "ERR ", &format!("unknown command '{shown}'"));
}

/// `[date] [LIMIT]` from argument `from` on.
fn date_and_limit<'a>(a: &Args<'a>, from: usize) -> Result<(Option<&'a str>, bool), String> {
    match a.len() - from {
        0 => Ok((None, false)),
        1 if a.is(from, "LIMIT") => Ok((None, true)),
        1 => Ok((Some(a.text(from, "date")?), false)),
        _ if a.is(from + 1, "LIMIT") => Ok((Some(a.text(from, "date")?), true)),
        _ => Err("syntax error: expected LIMIT after the date".into()),
    }
}

/// What `PING msg` and `ECHO msg` send back: the message with any run of 12 or more digits
/// masked, as in every other reply (a message that is not UTF-8 is read lossily first).
fn echoed(msg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    let text = String::from_utf8_lossy(msg);
    match crate::domain::text::mask_digit_runs(&text) {
        Cow::Borrowed(_) => Cow::Borrowed(msg),
        Cow::Owned(masked) => Cow::Owned(masked.into_bytes()),
    }
}

fn wrong_pass(out: &mut Vec<u8>) {
    out.extend_from_slice(b"-WRONGPASS invalid institution code or token\r\n");
}

/// `-<prefix><msg>\r\n`, with any CR or LF in `msg` turned into spaces, and any run of 12 or
/// more digits masked: a last guard, should a message ever quote a client's bytes unmasked.
pub fn write_error_line(out: &mut Vec<u8>, prefix: &str, msg: &str) {
    let msg = crate::domain::text::mask_digit_runs(msg);
    out.push(b'-');
    out.extend_from_slice(prefix.as_bytes());
    out.extend(
        msg.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

#[inline]
pub fn write_bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    write_decimal(out, data.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn write_int(out: &mut Vec<u8>, n: u64) {
    out.push(b':');
    write_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_one_line() {
        let mut out = Vec::new();
        write_error_line(&mut out, "ERR ", "a\r\nb");
        assert_eq!(out, b"-ERR a  b\r\n");
    }
}
