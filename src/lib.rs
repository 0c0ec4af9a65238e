//! shikaku: a high-throughput eligibility lookup engine for Japan's online eligibility
//! confirmation. See ARCHITECTURE.md for the map of the modules.

// `unsafe` is allowed only where ARCHITECTURE.md says (each site has `#[allow(unsafe_code)]`
// and a `// SAFETY:` comment; `tests/architecture.rs` checks both).
#![deny(unsafe_code)]

pub mod allocator;
pub mod claims;
pub mod cli;
pub mod demo;
pub mod domain;
pub mod fleet;
pub mod format;
pub mod generations;
pub mod index;
pub mod keyfile;
pub mod load;
pub mod nightly;
pub mod query;
mod runtime;
pub mod server;
pub mod signing;
pub mod snapshot;
#[doc(hidden)]
pub mod testing;
pub mod watch;
