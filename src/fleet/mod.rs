//! The fleet: generations published to S3-compatible object storage, replicas that pull,
//! verify and seal them, and one pointer object that says which generation every replica
//! serves.
//!
//! ```text
//! PREFIX/segments/<name>.seg             segment files, content-named, shared by generations
//! PREFIX/layers/<name>                   layer files, content-named, shared by generations
//! PREFIX/main/<xxh3>.shk                 main files, by the xxh3 the manifest gives them: a
//!                                        change generation shares its parent's
//! PREFIX/generations/<id>/index.shk      the main file, in stores published before `main/`
//! PREFIX/generations/<id>/report.json    the build report
//! PREFIX/generations/<id>/manifest.json  every file's size and xxh3; written last
//! PREFIX/pointer.json                    the fleet's live and previous generation
//! PREFIX/policy.json                     the promote policy (`policy`; none: manual)
//! PREFIX/replicas/<replica id>.json      what each replica holds ready and serves
//! ```
//!
//! A generation is in the store once its manifest is (every file it names went up before
//! it); it is live once the pointer names it.
//! The pointer is only ever replaced by a conditional write (If-Match on the e-tag read), so
//! two operators cannot both move it from the same state.

pub mod command;
pub mod download;
mod error;
pub mod follow;
pub mod health;
pub use crate::generations::manifest;
pub mod pointer;
pub mod policy;
pub mod publish;
pub mod remote;
pub mod replica;
pub mod retention;
pub mod trouble;
mod url;

pub use error::FleetError;
pub use health::FollowHealth;
pub use manifest::Manifest;
pub use pointer::Pointer;
pub use remote::Remote;
pub use replica::ReplicaState;
pub use url::{StoreConfig, StoreUrl};

/// Object names under the store's prefix.
pub mod keys {
    pub const POINTER: &str = "pointer.json";
    pub const POLICY: &str = "policy.json";
    pub const SEGMENTS: &str = "segments";
    pub const GENERATIONS: &str = "generations";
    pub const REPLICAS: &str = "replicas";
    pub const MANIFEST: &str = "manifest.json";

    pub const LAYERS: &str = "layers";
    pub const MAIN: &str = "main";
    /// Every prefix of files kept once by their content, for every generation naming them.
    pub const CONTENT: [&str; 3] = [SEGMENTS, LAYERS, MAIN];

    /// A main file by its xxh3 (16 hex digits, as its manifest entry gives it): a change
    /// generation's main file is its parent's, so it is uploaded once for both.
    pub fn main_file(xxh3: &str) -> String {
        format!("{MAIN}/{xxh3}.shk")
    }

    pub fn segment(name: &str) -> String {
        format!("{SEGMENTS}/{name}")
    }

    /// A shared file (segment or layer file) by its path in a generation directory
    /// (`segments/<name>`, `layers/<name>`): the same path in the store.
    pub fn shared(path: &str) -> String {
        path.to_owned()
    }

    pub fn generation_file(id: &str, name: &str) -> String {
        format!("{GENERATIONS}/{id}/{name}")
    }

    pub fn manifest(id: &str) -> String {
        generation_file(id, MANIFEST)
    }

    pub fn replica(id: &str) -> String {
        format!("{REPLICAS}/{id}.json")
    }
}

/// Seconds since the Unix epoch, for the times objects record.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A replica id: what names its state object. ASCII letters, digits, `-`, `_`, `.`.
pub fn valid_replica_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !id.starts_with('.')
}
