//! The HTTP endpoints as one table: path, methods, role, body limit, handler and help. The
//! body limits, the method and role checks, the 404 text and the dispatch all read it, so an
//! endpoint is one line here and one not listed is a 404, never another endpoint's handler.

use super::super::auth::Role;
use super::super::limits::*;
use crate::query::QueryKind;

/// What answers an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handler {
    Health,
    Metrics,
    Generation,
    Reload,
    /// One query of a kind, its inputs in a JSON body.
    Query(QueryKind),
    Batch,
    Claims,
}

/// One endpoint.
#[derive(Debug)]
pub(super) struct Endpoint {
    pub path: &'static str,
    /// The first is the one an `Allow` header and the 404 text name it by.
    pub methods: &'static [&'static str],
    pub role: Role,
    pub body_max_bytes: usize,
    pub chunks_max: usize,
    pub handler: Handler,
    /// What it does, for docs and the help of a wrong request.
    #[allow(dead_code)]
    pub help: &'static str,
}

const GET: &[&str] = &["GET", "HEAD"];
const POST: &[&str] = &["POST"];

const fn endpoint(
    path: &'static str,
    methods: &'static [&'static str],
    role: Role,
    handler: Handler,
    help: &'static str,
) -> Endpoint {
    let (body_max_bytes, chunks_max) = match handler {
        Handler::Batch => (HTTP_MAX_BATCH_BODY_BYTES, HTTP_MAX_CHUNKS),
        Handler::Claims => (HTTP_MAX_CLAIMS_BODY_BYTES, HTTP_MAX_CLAIMS_CHUNKS),
        _ => (HTTP_MAX_QUERY_BODY_BYTES, HTTP_MAX_CHUNKS),
    };
    Endpoint {
        path,
        methods,
        role,
        body_max_bytes,
        chunks_max,
        handler,
        help,
    }
}

/// Every endpoint, in the order the 404 text lists them.
pub(super) const ENDPOINTS: [Endpoint; 9] = [
    endpoint(
        "/healthz",
        GET,
        Role::Query,
        Handler::Health,
        "liveness and the generation served",
    ),
    endpoint(
        "/metrics",
        GET,
        Role::Admin,
        Handler::Metrics,
        "Prometheus metrics",
    ),
    endpoint(
        "/v1/generation",
        GET,
        Role::Query,
        Handler::Generation,
        "the generation served",
    ),
    endpoint(
        "/v1/card",
        POST,
        Role::Query,
        Handler::Query(QueryKind::Card),
        "card query",
    ),
    endpoint(
        "/v1/person",
        POST,
        Role::Query,
        Handler::Query(QueryKind::Person),
        "person query",
    ),
    endpoint(
        "/v1/kohi",
        POST,
        Role::Query,
        Handler::Query(QueryKind::Kohi),
        "public-expense query",
    ),
    endpoint(
        "/v1/batch",
        POST,
        Role::Query,
        Handler::Batch,
        "batch of card and person queries",
    ),
    endpoint(
        "/v1/claims",
        POST,
        Role::Query,
        Handler::Claims,
        "claims file pre-check",
    ),
    endpoint(
        "/admin/reload",
        POST,
        Role::Admin,
        Handler::Reload,
        "reload the live generation",
    ),
];

/// The endpoint at `path`, if there is one.
pub(super) fn find(path: &str) -> Option<&'static Endpoint> {
    ENDPOINTS.iter().find(|e| e.path == path)
}

/// The body limits of a request to `path`: its endpoint's, or a single query's for a path
/// that is none (it is refused anyway, after its body is read).
pub(super) fn body_limits(path: &str) -> (usize, usize) {
    find(path).map_or((HTTP_MAX_QUERY_BODY_BYTES, HTTP_MAX_CHUNKS), |e| {
        (e.body_max_bytes, e.chunks_max)
    })
}

/// `no such endpoint; see GET /healthz, …, POST /v1/card, …`, from the table.
pub(super) fn not_found_text() -> String {
    let mut text = String::from("no such endpoint; see");
    let mut method = "";
    for (i, e) in ENDPOINTS.iter().enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        text.push_str(sep);
        if e.methods[0] != method {
            method = e.methods[0];
            text.push_str(method);
            text.push(' ');
        }
        text.push_str(e.path);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_each_endpoint_once_and_lists_them_all() {
        for (i, e) in ENDPOINTS.iter().enumerate() {
            assert!(
                ENDPOINTS[i + 1..].iter().all(|o| o.path != e.path),
                "{}",
                e.path
            );
        }
        assert_eq!(
            not_found_text(),
            "no such endpoint; see GET /healthz, /metrics, /v1/generation, POST /v1/card, /v1/person, /v1/kohi, /v1/batch, /v1/claims, /admin/reload"
        );
        assert!(find("/v1/nothing").is_none());
        assert_eq!(body_limits("/v1/batch").0, HTTP_MAX_BATCH_BODY_BYTES);
    }
}
