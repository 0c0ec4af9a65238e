//! What can go wrong talking to the store, reading its objects, or moving the pointer.

use crate::domain::text::quote_raw;
use crate::generations::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FleetError {
    #[error(
        "{} is not a store URL: {why} (give s3://BUCKET/PREFIX)",
        quote_raw(url)
    )]
    BadUrl { url: String, why: &'static str },
    #[error("cannot set up the object store client for {url}: {source}; check --endpoint and the AWS_* variables")]
    Client {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("store request failed ({op} {key}): {source}; the store may be down or the credentials wrong (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, --endpoint)")]
    Request {
        op: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Local(#[from] StoreError),
    #[error("object {key} is not valid: {why}")]
    BadObject { key: String, why: String },
    #[error("{file} of generation {id} does not match its manifest: {why}; it was not used")]
    Mismatch {
        id: String,
        file: String,
        why: String,
    },
    #[error(
        "generation {} is not in the store (no {key}); `shikaku fleet status` lists what is",
        quote_raw(id)
    )]
    NotInStore { id: String, key: String },
    #[error("generation {id} is incomplete in the store (no {missing}): its publish did not finish; run `shikaku publish --generation {id}` again from the builder")]
    Incomplete { id: String, missing: String },
    #[error("the data directory's file system has {free_bytes} bytes free, and generation {id} needs {needed_bytes} more; free some space or grow it")]
    NoRoom {
        id: String,
        needed_bytes: u64,
        free_bytes: u64,
    },
    #[error("the pointer changed while this command ran (another operator moved it); nothing was changed: see `shikaku fleet status` and try again")]
    PointerRace,
    #[error("no pointer yet: nothing was ever promoted; `shikaku fleet promote GEN` makes the first generation live")]
    NoPointer,
    #[error("generation {id} is not ready on enough replicas ({ready} of {needed} needed; not ready: {missing}); wait for them, or give --quorum")]
    NotReady {
        id: String,
        ready: usize,
        needed: usize,
        missing: String,
    },
    #[error("no replica has registered under replicas/ yet; start replicas with `shikaku serve --follow`, or give --quorum 0 to promote without them")]
    NoReplicas,
    #[error("the fleet is pinned to {live}; `shikaku fleet pin GEN` moves the pin, `shikaku fleet promote GEN --unpin` promotes and unpins")]
    Pinned { live: String },
    #[error("the store's endpoint {endpoint:?} is not an http:// or https:// URL with a host (give e.g. --endpoint http://127.0.0.1:9000, or set AWS_ENDPOINT_URL)")]
    Endpoint { endpoint: String },
    #[error("the fleet is pinned to {live}: a rollback would leave the pin; `shikaku fleet promote GEN --unpin` moves the fleet to GEN (the previous generation, say) and unpins")]
    PinnedRollback { live: String },
    #[error("no generation was live before {live}, so there is nothing to roll back to")]
    NothingBefore { live: String },
    #[error("generation {id} is already live")]
    AlreadyLive { id: String },
}

impl FleetError {
    pub(crate) fn request<'a>(
        op: &'static str,
        key: &'a str,
    ) -> impl FnOnce(object_store::Error) -> Self + 'a {
        move |source| FleetError::Request {
            op,
            key: key.to_owned(),
            source,
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| FleetError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// A failure the store may get over (down, slow, throttling): worth trying again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, FleetError::Request { source, .. } if !matches!(source,
            object_store::Error::NotFound { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }))
    }
}

impl From<crate::generations::manifest::ManifestError> for FleetError {
    fn from(e: crate::generations::manifest::ManifestError) -> FleetError {
        use crate::generations::manifest::ManifestError;
        match e {
            ManifestError::Store(e) => FleetError::Local(e),
            ManifestError::Io { path, source } => FleetError::Io { path, source },
            ManifestError::Bad { key, why } => FleetError::BadObject { key, why },
        }
    }
}
