pub mod domain;
pub mod snapshot;
