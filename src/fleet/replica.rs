//! A replica's state object, `replicas/<id>.json`: which generations it holds ready (downloaded,
//! verified, sealed), which it serves, and when it last said so. `fleet promote` reads them
//! all to decide whether the fleet can move.

use super::remote::{Bucket, Put};
use super::{keys, FleetError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub format: u32,
    pub replica: String,
    /// Sealed generations it could serve at once, oldest first.
    pub ready: Vec<String>,
    /// The generation it serves.
    pub live: Option<String>,
    /// When this was written (ms since the Unix epoch).
    pub at_ms: u64,
    /// Why it is not keeping up, when it is not (a download or verification that failed).
    pub trouble: Option<String>,
}

impl ReplicaState {
    pub fn holds(&self, id: &str) -> bool {
        self.ready.iter().any(|g| g == id)
    }

    pub fn write(&self, remote: &dyn Bucket) -> Result<(), FleetError> {
        let key = keys::replica(&self.replica);
        let body = serde_json::to_vec(self).expect("a replica state serializes");
        remote
            .put(&key, body.into(), Put::Overwrite)?
            .map_err(|_| FleetError::PointerRace)?;
        Ok(())
    }

    /// Every registered replica's state, by id. An unreadable one is an error naming it:
    /// promoting past a replica whose state cannot be read would leave it behind unseen.
    pub fn read_all(remote: &dyn Bucket) -> Result<Vec<ReplicaState>, FleetError> {
        let mut out = Vec::new();
        for listed in remote.list(keys::REPLICAS)?.objects {
            let Some(got) = remote.get(&listed.key)? else {
                continue; // removed since the listing
            };
            let state: ReplicaState =
                serde_json::from_slice(&got.bytes).map_err(|e| FleetError::BadObject {
                    key: listed.key.clone(),
                    why: format!("not a replica state: {e}; delete it if that replica is gone"),
                })?;
            out.push(state);
        }
        out.sort_by(|a, b| a.replica.cmp(&b.replica));
        Ok(out)
    }
}
