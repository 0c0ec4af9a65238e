//! HTTP/1.1 (docs/api.md): keep-alive and pipelining; requests parsed by `httparse` (zero-copy,
//! no allocation), responses written by hand into the connection's output buffer.
//!
//! Endpoints: `POST /v1/card`, `POST /v1/person` (JSON body), `POST /v1/batch` (JSON array, or
//! `Content-Type: text/csv` in UTF-8 or CP932), `POST /v1/claims` (a claims file; CSV rows, or
//! JSON with `Accept: application/json`), `GET /v1/generation`, `GET /healthz` (no authentication, for
//! load balancers), `GET /metrics` (role `admin`). Errors are `{"error": "..."}` with 400
//! (malformed), 401 (no or invalid token), 403 (role), 404, 405, 413 (body, chunks or batch
//! too large), 417 (an `Expect` other than `100-continue`), 421 (without `--auth`, a host
//! that is not loopback: `head.rs`), 431 (headers too large), 501 (a transfer coding other
//! than `chunked`) or 503. A malformed request whose framing is intact keeps the connection
//! open; a broken frame or a refused head closes it.
//!
//! A body comes with `Content-Length` or `Transfer-Encoding: chunked` (RFC 9112 7.1: every
//! HTTP/1.1 recipient must read it; clients streaming a batch use it). A request with both is
//! refused (400), as a request-smuggling guard; chunk extensions are skipped and trailers
//! read and ignored.
//!
//! An individual number never travels in a URL: a query string holding `individual_number`
//! or a run of 12 digits is refused (and never logged).

use super::auth::{Identity, Role};
use super::limits::*;
use super::metrics::{self, Kind, Protocol, Via};
use super::session::{Ctx, Refusal, Session, Step};
use crate::domain::text::write_decimal;
use crate::domain::InstitutionCode;
use crate::query::answer::{self, GroupQuery};
use crate::query::batch::{self, BatchError, Slot};
use crate::query::write_json_str;
use crate::query::{Query, QueryKind};
use std::ops::Range;

mod chunked;
mod claims;
mod endpoints;
mod head;
use chunked::{scan_chunked, ChunkError};
use endpoints::Handler;
use head::{read_head, Head, Hosts};

/// An HTTP connection.
#[derive(Default)]
pub struct HttpSession {
    /// The last `Authorization` credential accepted on this connection and whom it names, so
    /// a keep-alive client is not re-hashed on every request.
    auth_cache: Option<(Vec<u8>, Identity)>,
    /// Reused for response bodies.
    body: Vec<u8>,
    /// `100 Continue` already sent for the request at the start of the buffer.
    continue_sent: bool,
    /// The data ranges of a chunked body's chunks, and the body put together: reused.
    chunk_ranges: Vec<Range<usize>>,
    chunked_body: Vec<u8>,
}

/// A response to write: status, body (in the session's scratch) and framing.
struct Reply {
    status: u16,
    content_type: &'static str,
    extra: &'static str,
}

impl Reply {
    fn json(status: u16) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            extra: "",
        }
    }
}

/// A request refused before its framing was understood: answered, then the connection closes.
fn fatal(out: &mut Vec<u8>, status: u16, msg: &str, step: &mut Step, ctx: &Ctx<'_>) {
    let mut body = Vec::with_capacity(msg.len() + 16);
    write_error_body(&mut body, msg);
    write_head(out, status, "application/json", "", body.len(), false);
    out.extend_from_slice(&body);
    ctx.metrics.protocol_error(Protocol::Http);
    step.close = true;
}

impl Session for HttpSession {
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
            let mut headers = [httparse::EMPTY_HEADER; HTTP_MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let head_len = match req.parse(frame) {
                Ok(httparse::Status::Complete(n)) if n <= HTTP_MAX_HEADER_BYTES => n,
                Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => {
                    fatal(out, 431, &format!("request headers exceed {HTTP_MAX_HEADERS} headers or {HTTP_MAX_HEADER_BYTES} bytes"), &mut step, ctx);
                    break;
                }
                Ok(httparse::Status::Partial) => {
                    if frame.len() > HTTP_MAX_HEADER_BYTES {
                        fatal(
                            out,
                            431,
                            &format!("request headers exceed {HTTP_MAX_HEADER_BYTES} bytes"),
                            &mut step,
                            ctx,
                        );
                    }
                    break;
                }
                Err(e) => {
                    fatal(
                        out,
                        400,
                        &format!("malformed HTTP request: {e}"),
                        &mut step,
                        ctx,
                    );
                    break;
                }
            };
            let hosts = if ctx.shared.auth.is_some() {
                Hosts::Any
            } else {
                Hosts::Loopback
            };
            let head = match read_head(&req, &frame[..head_len], hosts) {
                Ok(h) => h,
                Err(e) => {
                    fatal(out, e.status(), &e.to_string(), &mut step, ctx);
                    break;
                }
            };
            let (limit, max_chunks) = endpoints::body_limits(path_of(head.target));
            // The size announced is not quoted: it is the client's digits, and may be an
            // individual number.
            let too_large = || {
                format!(
                    "request body exceeds the limit of {limit} bytes for {}",
                    path_of(head.target)
                )
            };
            if head.content_length > limit {
                fatal(out, 413, &too_large(), &mut step, ctx);
                break;
            }
            // Under --auth, credentials are checked before a body is read, whether or not
            // it has arrived yet (so the answer does not depend on how reads fall): refused,
            // the body is never read, and the connection cannot go on.
            if head.chunked || head.content_length > 0 {
                if let Some(reply) = self.refuse_before_body(&head, ctx) {
                    self.write_reply_head(out, &reply, false);
                    out.extend_from_slice(&self.body);
                    step.close = true;
                    break;
                }
            }
            let framed = if head.chunked {
                scan_chunked(
                    &frame[head_len..],
                    limit,
                    max_chunks,
                    &mut self.chunk_ranges,
                )
            } else {
                let total = head_len + head.content_length;
                Ok((frame.len() >= total).then_some(head.content_length))
            };
            let body_span = match framed {
                Ok(Some(n)) => n,
                Ok(None) => {
                    if head.expect_continue && !self.continue_sent {
                        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                        self.continue_sent = true;
                    }
                    step.awaiting_body = true;
                    break;
                }
                Err(ChunkError::TooLarge(_)) => {
                    fatal(out, 413, &too_large(), &mut step, ctx);
                    break;
                }
                Err(e) => {
                    fatal(out, e.status(), &e.to_string(), &mut step, ctx);
                    break;
                }
            };
            let total = head_len + body_span;
            self.continue_sent = false;
            step.consumed += total;
            step.requests += 1;
            let keep_alive = !head.close && (!head.http10 || head.keep_alive);
            if head.chunked {
                // Moved out for the call, as `respond` borrows the session.
                let mut body = std::mem::take(&mut self.chunked_body);
                body.clear();
                for r in &self.chunk_ranges {
                    body.extend_from_slice(&frame[head_len..][r.clone()]);
                }
                self.respond(&head, &body, keep_alive, ctx, out);
                if body.capacity() <= INITIAL_BUFFER_BYTES {
                    self.chunked_body = body;
                }
                self.chunk_ranges.shrink_to(INITIAL_CHUNK_RANGES);
            } else {
                self.respond(&head, &frame[head_len..total], keep_alive, ctx, out);
            }
            if !keep_alive {
                step.close = true;
                break;
            }
        }
        ctx.metrics.requests(Protocol::Http, step.requests);
        step
    }

    fn max_buffer(&self) -> usize {
        HTTP_MAX_REQUEST_BYTES
    }

    fn refuse(&mut self, why: Refusal, out: &mut Vec<u8>) {
        match why {
            Refusal::TooLarge => refusal(out, 413, "request too large"),
            Refusal::MemoryBudget => refusal_with(
                out,
                503,
                RETRY_AFTER,
                "server busy: its memory for request bodies is spent; try again later",
            ),
            Refusal::Deadline(d) => refusal(
                out,
                408,
                &format!("request not received whole within {} s", d.as_secs()),
            ),
        }
    }
}

fn path_of(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

const NUMBER_IN_URL: &str =
    "an individual number must never be sent in a URL; send it in the JSON body of POST /v1/person";

/// Whether a query string may hold an individual number: the field name, or 12 digits in a row.
fn may_hold_individual_number(query: &str) -> bool {
    let lower_has_name = query
        .as_bytes()
        .windows(b"individual".len())
        .any(|w| w.eq_ignore_ascii_case(b"individual"));
    let mut run = 0;
    let long_digits = query.bytes().any(|b| {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        run >= 12
    });
    lower_has_name || long_digits
}

impl HttpSession {
    fn respond(
        &mut self,
        head: &Head<'_>,
        body: &[u8],
        keep_alive: bool,
        ctx: &Ctx<'_>,
        out: &mut Vec<u8>,
    ) {
        self.body.clear();
        let reply = self.route(head, body, ctx);
        if head.method == "HEAD" {
            self.write_reply_head(out, &reply, keep_alive);
        } else if out.is_empty() && self.body.len() > INITIAL_BUFFER_BYTES {
            // A large answer (a batch, a claims file's rows) is moved into `out`, its head put
            // before it, rather than copied: a copy held it twice until written.
            let mut head_bytes = Vec::with_capacity(256);
            self.write_reply_head(&mut head_bytes, &reply, keep_alive);
            let mut answer = std::mem::take(&mut self.body);
            answer.splice(0..0, head_bytes);
            *out = answer;
        } else {
            self.write_reply_head(out, &reply, keep_alive);
            out.extend_from_slice(&self.body);
        }
        if self.body.capacity() > INITIAL_BUFFER_BYTES {
            // An idle connection keeps no large answer's buffer.
            self.body = Vec::new();
        }
    }

    /// The status line and headers of `reply`, whose body is in `self.body`.
    fn write_reply_head(&self, out: &mut Vec<u8>, reply: &Reply, keep_alive: bool) {
        write_head(
            out,
            reply.status,
            reply.content_type,
            reply.extra,
            self.body.len(),
            keep_alive,
        );
    }

    /// 503 with `Retry-After`: the memory budget has no room for `what` now; what others
    /// hold comes back as they are answered.
    fn busy(&mut self, what: &str) -> Reply {
        let mut r = self.error(
            503,
            &format!(
                "server busy: its memory for {what} is taken by other requests; try again later"
            ),
        );
        r.extra = RETRY_AFTER;
        r
    }

    fn error(&mut self, status: u16, msg: &str) -> Reply {
        self.body.clear();
        write_error_body(&mut self.body, msg);
        Reply::json(status)
    }

    fn route(&mut self, head: &Head<'_>, body: &[u8], ctx: &Ctx<'_>) -> Reply {
        let (path, query) = match head.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (head.target, None),
        };
        if query.is_some_and(may_hold_individual_number) {
            return self.error(400, NUMBER_IN_URL);
        }
        let Some(endpoint) = endpoints::find(path) else {
            return self.error(404, &endpoints::not_found_text());
        };
        let (allowed, needed) = (endpoint.methods, endpoint.role);
        if !allowed.contains(&head.method) {
            let mut r = self.error(405, &format!("{path} accepts {} only", allowed.join(", ")));
            r.extra = if allowed[0] == "POST" {
                "Allow: POST\r\n"
            } else {
                "Allow: GET, HEAD\r\n"
            };
            return r;
        }
        if endpoint.handler == Handler::Health {
            self.body
                .extend_from_slice(b"{\"status\":\"ok\",\"generation\":");
            write_json_str(&mut self.body, ctx.generation.id());
            if let Some(fleet) = ctx.shared.live.fleet.get() {
                self.body.extend_from_slice(b",\"fleet\":");
                fleet.write_json(&mut self.body, ctx.generation.id());
            }
            self.body.push(b'}');
            return Reply::json(200);
        }
        let client = match self.authenticate(head, ctx, needed) {
            Ok(identity) => identity.map(|id| id.institution),
            Err(r) => return r,
        };
        match endpoint.handler {
            // Answered above, before authentication.
            Handler::Health => Reply::json(200),
            Handler::Metrics => {
                let mut text = String::with_capacity(8192);
                let live = &ctx.shared.live;
                metrics::render(
                    &mut text,
                    &ctx.shared.cores,
                    &metrics::LiveFacts {
                        generation: ctx.generation.id(),
                        epoch: ctx.generation.epoch,
                        verified: ctx.generation.trust.label(),
                        built_on: ctx.generation.index.header().built_on,
                        reload_refusals: live
                            .reload_refusals
                            .load(std::sync::atomic::Ordering::Relaxed),
                        refused_now: live.last_refusal.lock().is_ok_and(|r| r.is_some()),
                        background_panics: live.background_panics.counts(),
                        buffered_bytes: ctx.shared.budget.held_bytes(),
                        budget_bytes: ctx.shared.budget.limit_bytes(),
                    },
                );
                if let Some(fleet) = live.fleet.get() {
                    fleet.write_metrics(&mut text, ctx.generation.id());
                }
                self.body.extend_from_slice(text.as_bytes());
                Reply {
                    status: 200,
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    extra: "",
                }
            }
            Handler::Generation => {
                self.write_generation(ctx);
                Reply::json(200)
            }
            Handler::Reload => {
                // The reloader thread does the work (opening and verifying takes a while, not
                // for a core's event loop); GET /v1/generation shows the outcome.
                ctx.shared
                    .reload
                    .store(true, std::sync::atomic::Ordering::Release);
                self.body
                    .extend_from_slice(b"{\"reload\":\"requested\",\"serving\":");
                write_json_str(&mut self.body, ctx.generation.id());
                self.body.push(b'}');
                Reply::json(202)
            }
            Handler::Query(kind) => self.single(body, kind, ctx, client),
            Handler::Claims => self.claims(head, body, ctx, client),
            Handler::Batch => self.batch(head, body, ctx, client),
        }
    }

    /// Under `--auth`, the refusal of a request with a body, before the body is read, when
    /// its URL holds what may be an individual number or its credentials do not pass for its
    /// endpoint: nothing of a body is held for a client that has not authenticated. `None`
    /// lets the body be read.
    fn refuse_before_body(&mut self, head: &Head<'_>, ctx: &Ctx<'_>) -> Option<Reply> {
        ctx.shared.auth.as_ref()?;
        // Said first, as when the body is read: the URL is wrong whoever sends it.
        let query = head.target.split_once('?').map(|(_, q)| q);
        if query.is_some_and(may_hold_individual_number) {
            return Some(self.error(400, NUMBER_IN_URL));
        }
        let endpoint = endpoints::find(path_of(head.target))?;
        if !endpoint.methods.contains(&head.method) {
            return None;
        }
        self.authenticate(head, ctx, endpoint.role).err()
    }

    /// The client the request authenticates as (`None` without `--auth`), or the refusal.
    fn authenticate(
        &mut self,
        head: &Head<'_>,
        ctx: &Ctx<'_>,
        needed: Role,
    ) -> Result<Option<Identity>, Reply> {
        let Some(table) = &ctx.shared.auth else {
            return Ok(None);
        };
        let unauthorized = |s: &mut Self, msg: &str| {
            let mut r = s.error(401, msg);
            r.extra = "WWW-Authenticate: Bearer\r\n";
            r
        };
        let Some(value) = head.authorization else {
            return Err(unauthorized(
                self,
                "authentication required: send Authorization: Bearer <institution_code>:<token>",
            ));
        };
        let credential = match value.split_at_checked(7) {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"Bearer ") => rest.trim_ascii(),
            _ => {
                return Err(unauthorized(
                    self,
                    "the Authorization header must be Bearer <institution_code>:<token>",
                ))
            }
        };
        let identity = match &self.auth_cache {
            Some((cached, id)) if cached.as_slice() == credential => *id,
            _ => match table.check_pair(credential) {
                Some(id) => {
                    self.auth_cache = Some((credential.to_vec(), id));
                    id
                }
                None => {
                    ctx.metrics.auth_refused(Protocol::Http);
                    super::auth::log_refused(Protocol::Http, credential);
                    return Err(unauthorized(self, "invalid institution code or token"));
                }
            },
        };
        if !identity.role.allows(needed) {
            return Err(self.error(
                403,
                &format!(
                    "role {} may not use this endpoint; it needs role {}",
                    identity.role.as_str(),
                    needed.as_str()
                ),
            ));
        }
        Ok(Some(identity))
    }

    fn single(
        &mut self,
        body: &[u8],
        kind: QueryKind,
        ctx: &Ctx<'_>,
        client: Option<InstitutionCode>,
    ) -> Reply {
        let metric_kind = Kind::of(Some(kind));
        match batch::parse_single(body, kind) {
            Ok(mut q) => {
                // The institution asking is the authenticated client when there is one.
                if let (Query::Kohi(k), Some(c)) = (&mut q, client) {
                    k.institution = Some(c);
                }
                let v = answer::answer(&ctx.generation.index, &q, ctx.today, &mut self.body);
                ctx.metrics.query(Via::Http, metric_kind, Some(v));
                ctx.audit_answer(Via::Http, client, GroupQuery::of(&q), v);
                Reply::json(200)
            }
            Err(e) => {
                ctx.metrics.query(Via::Http, metric_kind, None);
                ctx.audit_malformed(Via::Http, client, Some(kind));
                answer::write_error(&mut self.body, &e);
                Reply::json(400)
            }
        }
    }

    fn batch(
        &mut self,
        head: &Head<'_>,
        body: &[u8],
        ctx: &Ctx<'_>,
        client: Option<InstitutionCode>,
    ) -> Reply {
        let index = &ctx.generation.index;
        let mut observe = |slot: Slot<'_>| match slot {
            Slot::Answered(q, v) => {
                ctx.metrics
                    .query(Via::Batch, Kind::of(Some(q.kind())), Some(v));
                ctx.audit_answer(Via::Batch, client, GroupQuery::of(q), v);
            }
            Slot::Malformed(kind) => {
                ctx.metrics.query(Via::Batch, Kind::of(kind), None);
                ctx.audit_malformed(Via::Batch, client, kind);
            }
        };
        // The answer is made only when the budget has room for it: made, it is held until
        // its client reads it.
        let room = |queries: usize| {
            let fits = ctx
                .shared
                .budget
                .has_room(queries.saturating_mul(BATCH_ANSWER_BYTES));
            if !fits {
                ctx.metrics.memory_refused();
            }
            fits
        };
        // The institution asking is the authenticated client when there is one.
        let asking = |query: &mut Result<Query, _>| {
            if let (Ok(Query::Kohi(k)), Some(c)) = (query, client) {
                k.institution = Some(c);
            }
        };
        let result = if head.csv {
            batch::parse_csv(body).map(|mut rows| {
                rows.iter_mut().for_each(|row| asking(&mut row.query));
                room(rows.len()).then(|| {
                    batch::write_csv_answers(index, &rows, ctx.today, &mut self.body, &mut observe);
                    "text/csv; charset=utf-8"
                })
            })
        } else {
            batch::parse_json(body).map(|mut queries| {
                queries.iter_mut().for_each(|item| asking(&mut item.query));
                room(queries.len()).then(|| {
                    batch::write_json_answers(
                        index,
                        &queries,
                        ctx.today,
                        &mut self.body,
                        &mut observe,
                    );
                    "application/json"
                })
            })
        };
        match result {
            Ok(None) => self.busy("answers"),
            Ok(Some(content_type)) => Reply {
                status: 200,
                content_type,
                extra: "",
            },
            Err(e @ BatchError::TooMany(_)) => self.error(413, &e.to_string()),
            Err(e) => self.error(400, &e.to_string()),
        }
    }

    fn write_generation(&mut self, ctx: &Ctx<'_>) {
        let g = ctx.generation;
        let h = g.index.header();
        let b = &mut self.body;
        b.extend_from_slice(b"{\"id\":");
        write_json_str(b, g.id());
        b.extend_from_slice(b",\"epoch\":");
        write_decimal(b, g.epoch);
        b.extend_from_slice(b",\"built_on\":\"");
        h.built_on.write_iso(b);
        b.extend_from_slice(b"\",\"insurers\":");
        write_decimal(b, u64::from(h.insurer_count));
        b.extend_from_slice(b",\"records\":");
        write_decimal(b, h.record_count);
        b.extend_from_slice(b",\"persons\":");
        write_decimal(b, h.person_count);
        b.extend_from_slice(b",\"verified\":");
        write_json_str(b, g.trust.label());
        b.extend_from_slice(b",\"signed_by\":");
        match g.trust.key() {
            Some(key) => write_json_str(b, &key.to_string()),
            None => b.extend_from_slice(b"null"),
        }
        b.extend_from_slice(b",\"last_reload_refused\":");
        match ctx
            .shared
            .live
            .last_refusal
            .lock()
            .ok()
            .and_then(|r| r.clone())
        {
            Some(why) => write_json_str(b, &why),
            None => b.extend_from_slice(b"null"),
        }
        if let Some(fleet) = ctx.shared.live.fleet.get() {
            b.extend_from_slice(b",\"fleet\":");
            fleet.write_json(b, g.id());
        }
        b.push(b'}');
    }
}

/// `{"error": msg}`, any run of 12 or more digits in `msg` masked: a last guard, should a
/// message ever quote a client's bytes unmasked.
fn write_error_body(out: &mut Vec<u8>, msg: &str) {
    out.extend_from_slice(b"{\"error\":");
    write_json_str(out, &crate::domain::text::mask_digit_runs(msg));
    out.push(b'}');
}

/// The reason phrase of `status` (RFC 9110 section 15); empty for a code it does not define,
/// which the grammar allows.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The status line and headers of a response with a body of `len` bytes.
pub fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &str,
    len: usize,
    keep_alive: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    write_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: shikaku\r\nContent-Type: ");
    out.extend_from_slice(content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    write_decimal(out, len as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra.as_bytes());
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A whole response for a connection refused before any request (over the per-core limit).
pub fn refusal(out: &mut Vec<u8>, status: u16, msg: &str) {
    refusal_with(out, status, "", msg);
}

/// [`refusal`] with `extra` header lines.
fn refusal_with(out: &mut Vec<u8>, status: u16, extra: &str, msg: &str) {
    let mut body = Vec::new();
    write_error_body(&mut body, msg);
    write_head(out, status, "application/json", extra, body.len(), false);
    out.extend_from_slice(&body);
}

/// Sent with every `503` of a spent memory budget: what the other requests hold comes back
/// as they are answered, so a retry after a second may be let in.
const RETRY_AFTER: &str = "Retry-After: 1\r\n";

/// A batch answer's bytes per query, as written for an eligible card (about 420 bytes in
/// JSON; CSV is shorter): a batch is answered only when the budget has this much room.
const BATCH_ANSWER_BYTES: usize = 512;

/// The chunk ranges a connection keeps between requests (16 bytes each).
const INITIAL_CHUNK_RANGES: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn individual_numbers_in_urls() {
        assert!(may_hold_individual_number("individual_number=1"));
        assert!(may_hold_individual_number("x=123456789018"));
        assert!(may_hold_individual_number("INDIVIDUAL=1"));
        assert!(!may_hold_individual_number("date=2026-11-24"));
    }

    #[test]
    fn heads() {
        let mut out = Vec::new();
        write_head(&mut out, 404, "application/json", "", 2, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nServer: shikaku\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
        // Every status the server answers with has its own phrase (202 was "Error").
        for (status, phrase) in [
            (200, "OK"),
            (202, "Accepted"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (413, "Content Too Large"),
            (417, "Expectation Failed"),
            (421, "Misdirected Request"),
            (431, "Request Header Fields Too Large"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
        ] {
            assert_eq!(reason(status), phrase, "{status}");
        }
        assert_eq!(reason(299), "");
    }
}
