//! shikaku: a high-throughput eligibility lookup engine for Japan's online eligibility
//! confirmation. See ARCHITECTURE.md for the map of the modules.

pub mod build;
pub mod cli;
pub mod demo;
pub mod domain;
pub mod format;
pub mod generations;
pub mod index;
pub mod load;
pub mod query;
mod runtime;
pub mod server;
pub mod snapshot;
