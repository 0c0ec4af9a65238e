//! Client authentication (docs/api.md): institutions, their hashed tokens and roles.
//!
//! # The auth file (`shikaku serve --auth FILE`)
//!
//! UTF-8 text, one institution per line, three fields separated by white space:
//!
//! ```text
//! # institution_code  role   blake3(token), 64 hex digits
//! 0110113719          query  5d1c0e0c3b2f6a4b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b
//! ```
//!
//! - `institution_code`: the 医療機関コード (10 digits, Luhn check digit; docs/api.md#institution-code), at most
//!   once per file.
//! - `role`: `query` (eligibility queries and `/v1/generation`) or `admin` (everything a
//!   `query` client may do, plus `/metrics` and the administrative endpoints).
//! - the token is never stored: the file holds the hex BLAKE3 hash of it. Tokens are 256-bit
//!   random secrets made by `shikaku auth-line`, so a fast unsalted hash is enough (there is
//!   nothing to brute-force); a leaked file reveals no token.
//! - `#` starts a comment; blank lines are ignored.
//!
//! Clients present `<institution_code>:<token>`: over HTTP as `Authorization: Bearer
//! <institution_code>:<token>`, over RESP as `AUTH <institution_code> <token>` (or
//! `AUTH <institution_code>:<token>`, or `HELLO 3 AUTH <institution_code> <token>`).
//! Tokens never appear in a log.

use super::metrics::Protocol;
use crate::domain::InstitutionCode;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use thiserror::Error;

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Query,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "query" => Some(Role::Query),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Query => "query",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` allows (admin includes query).
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// An authenticated client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub institution: InstitutionCode,
    pub role: Role,
}

#[derive(Debug, Error)]
pub enum AuthFileError {
    #[error("cannot read auth file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("auth file {path} line {line}: {reason}")]
    Line {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("auth file {path} lists no institution")]
    Empty { path: String },
}

/// The institutions allowed in, from the auth file.
#[derive(Debug, Clone, Default)]
pub struct AuthTable {
    entries: HashMap<InstitutionCode, ([u8; 32], Role)>,
}

/// Tokens are at most this long; anything longer is refused without hashing.
pub const MAX_TOKEN_BYTES: usize = 256;

impl AuthTable {
    pub fn load(path: &Path) -> Result<AuthTable, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let table = AuthTable::parse(&text).map_err(|(line, reason)| AuthFileError::Line {
            path: path.display().to_string(),
            line,
            reason,
        })?;
        if table.entries.is_empty() {
            return Err(AuthFileError::Empty {
                path: path.display().to_string(),
            });
        }
        Ok(table)
    }

    /// Parses the file's text; an error gives the line number and the reason.
    pub fn parse(text: &str) -> Result<AuthTable, (usize, String)> {
        let mut entries = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [code, role, hash] = fields[..] else {
                return Err((
                    i + 1,
                    format!(
                        "expected 3 fields (institution_code role token_hash), found {}",
                        fields.len()
                    ),
                ));
            };
            let code = InstitutionCode::parse(code)
                .map_err(|e| (i + 1, format!("institution code: {e}")))?;
            let role = Role::parse(role)
                .ok_or_else(|| (i + 1, format!("role must be query or admin, not {role:?}")))?;
            let hash = parse_hash(hash)
                .ok_or_else(|| (i + 1, "token hash must be 64 hex digits".to_owned()))?;
            if entries.insert(code, (hash, role)).is_some() {
                return Err((i + 1, format!("institution {code} is listed twice")));
            }
        }
        Ok(AuthTable { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks an institution code and token; `None` when either is wrong (the caller cannot
    /// tell which, nor can a timing difference in the comparison tell it).
    pub fn check(&self, institution: &[u8], token: &[u8]) -> Option<Identity> {
        if token.len() > MAX_TOKEN_BYTES || institution.len() != 10 {
            return None;
        }
        let code = InstitutionCode::parse(std::str::from_utf8(institution).ok()?).ok()?;
        let (stored, role) = self.entries.get(&code)?;
        let hash = hash_token(token);
        let diff = stored
            .iter()
            .zip(hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then_some(Identity {
            institution: code,
            role: *role,
        })
    }

    /// Checks a `<institution_code>:<token>` credential.
    pub fn check_pair(&self, credential: &[u8]) -> Option<Identity> {
        let colon = credential.iter().position(|&b| b == b':')?;
        self.check(&credential[..colon], &credential[colon + 1..])
    }
}

/// The stored form of a token: BLAKE3.
pub fn hash_token(token: &[u8]) -> [u8; 32] {
    *blake3::hash(token).as_bytes()
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token (64 hex digits from the OS's random source) and the auth file line
/// that admits it.
pub fn new_entry(institution: InstitutionCode, role: Role) -> std::io::Result<(String, String)> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    let token = hex(&secret);
    let line = format!(
        "{} {} {}",
        institution,
        role.as_str(),
        hex(&hash_token(token.as_bytes()))
    );
    Ok((token, line))
}

/// Refused credentials are logged at most once per this, per core: someone guessing must not
/// flood the log (`shikaku_auth_refused_total` counts every one).
pub const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(1);

/// When this core last logged refused credentials, and how many it refused since unlogged.
#[derive(Debug, Default)]
struct RefusalLog {
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    /// Notes a refusal at `now`: `Some(refusals left unlogged before it)` when it is to be
    /// logged, `None` when it is only counted.
    fn note(&mut self, now: Instant) -> Option<u64> {
        if self
            .logged_at
            .is_some_and(|at| now.duration_since(at) < REFUSALS_LOGGED_EVERY)
        {
            self.unlogged += 1;
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

thread_local! {
    /// A core is a thread: its log limit needs no lock.
    static REFUSALS: RefCell<RefusalLog> = RefCell::default();
}

/// Logs refused credentials (at most one line per [`REFUSALS_LOGGED_EVERY`] on this core,
/// with the refusals not logged before it): the protocol and the institution code presented,
/// never the token. `presented` is the institution code, or the whole `<code>:<token>`.
pub fn log_refused(protocol: Protocol, presented: &[u8]) {
    let Some(unlogged) = REFUSALS.with_borrow_mut(|log| log.note(Instant::now())) else {
        return;
    };
    tracing::warn!(
        protocol = protocol.as_str(),
        institution = shown_institution(presented),
        unlogged_before = unlogged,
        "credentials refused (a wrong institution code or token; logged at most once a second per core, shikaku_auth_refused_total counts all)"
    );
}

/// The institution code of what a client presented, when it has the shape of one (10 digits);
/// anything else may be a token sent in its place, and is not shown.
fn shown_institution(presented: &[u8]) -> &str {
    let code = presented.split(|&b| b == b':').next().unwrap_or_default();
    match std::str::from_utf8(code) {
        Ok(c) if c.len() == 10 && c.bytes().all(|b| b.is_ascii_digit()) => c,
        _ => "(not an institution code)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_at_most_once_a_second() {
        let start = Instant::now();
        let mut log = RefusalLog::default();
        for (ms, expected) in [
            (0, Some(0)),
            (10, None),
            (999, None),
            (1000, Some(2)),
            (1500, None),
            (2000, Some(1)),
            (9000, Some(0)),
        ] {
            let now = start + Duration::from_millis(ms);
            assert_eq!(log.note(now), expected, "at {ms} ms");
        }
    }

    #[test]
    fn only_an_institution_code_is_shown() {
        let token = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
        for (presented, shown) in [
            ("0110113719".to_owned(), "0110113719"),
            (format!("0110113719:{token}"), "0110113719"),
            ("0110113718:x".to_owned(), "0110113718"),
            (token.to_owned(), "(not an institution code)"),
            ("1234567890".repeat(2), "(not an institution code)"),
            ("123456789012:x".to_owned(), "(not an institution code)"),
            (String::new(), "(not an institution code)"),
        ] {
            assert_eq!(
                shown_institution(presented.as_bytes()),
                shown,
                "{presented}"
            );
        }
    }

    #[test]
    fn entries_round_trip() {
        let code = InstitutionCode::parse("0110113719").unwrap();
        let (token, line) = new_entry(code, Role::Admin).unwrap();
        assert_eq!(token.len(), 64);
        let table = AuthTable::parse(&format!("# comment\n\n{line}  # admin\n")).unwrap();
        let id = table.check(b"0110113719", token.as_bytes()).unwrap();
        assert_eq!(id.role, Role::Admin);
        assert_eq!(
            table.check_pair(format!("0110113719:{token}").as_bytes()),
            Some(id)
        );
        assert_eq!(table.check(b"0110113719", b"wrong"), None);
        assert_eq!(table.check(b"0110113718", token.as_bytes()), None);
        assert_eq!(table.check_pair(token.as_bytes()), None);
    }

    #[test]
    fn file_errors_name_the_line() {
        let check = |text: &str, line: usize, needle: &str| {
            let (l, reason) = AuthTable::parse(text).unwrap_err();
            assert_eq!(l, line, "{text}");
            assert!(reason.contains(needle), "{reason}");
        };
        let h = "0".repeat(64);
        check("0110113719 query", 1, "3 fields");
        check(&format!("\n0110113718 query {h}"), 2, "institution code");
        check(&format!("0110113719 root {h}"), 1, "role");
        check("0110113719 query abc", 1, "64 hex");
        check(
            &format!("0110113719 query {h}\n0110113719 admin {h}"),
            2,
            "twice",
        );
    }
}
