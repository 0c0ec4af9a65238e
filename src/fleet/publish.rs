//! `shikaku publish`: uploads a local generation to the store. Segment files the store already
//! has (same name, same size: the name is the content's checksum) are not sent again, so a
//! nightly build with a few insurers changed sends about those few. Order: segments, main
//! file, manifest, report. A generation is in the store once its manifest is, so a publish
//! killed part way leaves nothing a replica would take, and running it again sends only what
//! is still missing. Uploading is not making live: that is `shikaku fleet promote`.

use super::manifest::Manifest;
use super::remote::{Put, Remote};
use super::{keys, FleetError};
use crate::generations::{Store, INDEX_FILE, REPORT_FILE};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Published {
    pub generation: String,
    pub files: usize,
    pub bytes: u64,
    pub uploaded_files: usize,
    pub uploaded_bytes: u64,
    /// The manifest was already in the store (an earlier publish finished).
    pub already: bool,
}

/// Uploads generation `id` (or the live one) from `store` to `remote`.
pub fn publish(
    remote: &Remote,
    store: &Store,
    id: Option<&str>,
) -> Result<(Published, Duration), FleetError> {
    let started = Instant::now();
    let id = match id {
        Some(id) => id.to_owned(),
        None => store.live()?,
    };
    let manifest = Manifest::of_local(store, &id)?;
    let mut out = Published {
        generation: id.clone(),
        files: manifest.files.len(),
        bytes: manifest.bytes(),
        ..Published::default()
    };
    let manifest_key = keys::manifest(&id);
    if let Some(there) = remote.get(&manifest_key)? {
        let there = Manifest::parse(&there.bytes, &manifest_key, &id)?;
        if there != manifest {
            return Err(FleetError::BadObject {
                key: manifest_key,
                why: format!("the store holds a different generation {id} than this data directory; generation ids name one build"),
            });
        }
        out.already = true;
    }
    let dir = store.generation_dir(&id);
    let in_store: HashMap<String, u64> = remote
        .list(keys::SEGMENTS)?
        .into_iter()
        .filter_map(|l| {
            let name = l
                .key
                .strip_prefix(&format!("{}/", keys::SEGMENTS))?
                .to_owned();
            Some((name, l.bytes))
        })
        .collect();
    for (name, file) in manifest.segments() {
        if in_store.get(name) == Some(&file.bytes) {
            continue;
        }
        tracing::debug!(segment = name, bytes = file.bytes, "uploading");
        out.uploaded_bytes += remote.upload_file(&keys::segment(name), &dir.join(&file.path))?;
        out.uploaded_files += 1;
    }
    send_missing(remote, &manifest, &dir, INDEX_FILE, &mut out)?;
    if !out.already {
        // Remote PUTs are atomic: the manifest appears whole, after every file it names.
        remote
            .put(&manifest_key, manifest.to_json().into(), Put::Overwrite)?
            .map_err(|_| FleetError::PointerRace)?;
    }
    send_missing(remote, &manifest, &dir, REPORT_FILE, &mut out)?;
    Ok((out, started.elapsed()))
}

/// Uploads generation file `name` unless the store has it at its size (a generation is
/// immutable, so same id, same name, same size is the same file).
fn send_missing(
    remote: &Remote,
    manifest: &Manifest,
    dir: &Path,
    name: &str,
    out: &mut Published,
) -> Result<(), FleetError> {
    let Some(file) = manifest.files.iter().find(|f| f.path == name) else {
        return Ok(());
    };
    let key = keys::generation_file(&manifest.generation, name);
    if remote.head(&key)? != Some(file.bytes) {
        out.uploaded_bytes += remote.upload_file(&key, &dir.join(name))?;
        out.uploaded_files += 1;
    }
    Ok(())
}

/// The generations in the store with a manifest, oldest first.
pub fn stored_generations(remote: &Remote) -> Result<Vec<String>, FleetError> {
    let mut ids: Vec<String> = remote
        .list(keys::GENERATIONS)?
        .into_iter()
        .filter_map(|l| {
            let rest = l.key.strip_prefix(&format!("{}/", keys::GENERATIONS))?;
            let (id, file) = rest.split_once('/')?;
            (file == keys::MANIFEST && crate::generations::valid_id(id)).then(|| id.to_owned())
        })
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}
