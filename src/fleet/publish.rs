//! `shikaku publish`: uploads a local generation to the store. Segment, layer and main files
//! the store already has (same name, same size: the name is the content's checksum) are not
//! sent again, so a nightly build with a few insurers changed sends about those few, and a
//! change generation (a layer over its parent's main file) sends its layer file, its delta
//! segments, its report and its manifest. Order: segments and layers, main file, report,
//! manifest. A generation is in the store once its manifest is, and the manifest
//! goes up last, so a publish killed part way leaves nothing a replica would take, and running
//! it again sends only what is still missing. (Before, the report went up after the manifest:
//! a publish killed between them left a generation replicas waited on forever; they now step
//! over such a one, see `follow`.) Uploading is not making live: that is `shikaku fleet
//! promote`.

use super::manifest::Manifest;
use super::remote::{Bucket, Put, Remote};
use super::{keys, FleetError};
use crate::generations::{Store, INDEX_FILE, MANIFEST_FILE, REPORT_FILE, SIGNATURE_FILE};
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
        // The files say whether it is the same build (an older shikaku wrote no lineage).
        if there.files != manifest.files {
            return Err(FleetError::BadObject {
                key: manifest_key,
                why: format!("the store holds a different generation {id} than this data directory; generation ids name one build"),
            });
        }
        out.already = true;
    }
    let dir = store.generation_dir(&id);
    let mut in_store: HashMap<String, u64> = HashMap::new();
    for prefix in [keys::SEGMENTS, keys::LAYERS] {
        let listed = remote.list(prefix)?;
        for key in &listed.unnamable {
            tracing::warn!(
                "skipped object {} in the store: an empty, `.` or `..` segment or a control character; delete it",
                super::trouble::shown_key(key)
            );
        }
        in_store.extend(listed.objects.into_iter().map(|l| (l.key, l.bytes)));
    }
    // Segment and layer files are kept once under their path (their name is their content).
    for file in manifest.shared() {
        if in_store.get(&keys::shared(&file.path)) == Some(&file.bytes) {
            continue;
        }
        tracing::debug!(file = file.path, bytes = file.bytes, "uploading");
        out.uploaded_bytes +=
            remote.upload_file(&keys::shared(&file.path), &dir.join(&file.path))?;
        out.uploaded_files += 1;
    }
    send_main(remote, &manifest, &dir, &mut out)?;
    send_missing(remote, &manifest, &dir, REPORT_FILE, &mut out)?;
    if !out.already {
        let json = match signed_manifest(&dir, &manifest)? {
            Some((json, sig)) => {
                // Before the manifest, so a replica that sees the generation sees its signature.
                remote
                    .put(
                        &keys::generation_file(&id, SIGNATURE_FILE),
                        sig.into(),
                        Put::Overwrite,
                    )?
                    .map_err(|_| FleetError::PointerRace)?;
                json
            }
            None => manifest.to_json(),
        };
        // Last: PUTs are atomic, so the manifest appears whole, after every file it names.
        remote
            .put(&manifest_key, json.into(), Put::Overwrite)?
            .map_err(|_| FleetError::PointerRace)?;
    }
    Ok((out, started.elapsed()))
}

/// A signed manifest's bytes and its signature's.
type Signed = (Vec<u8>, Vec<u8>);

/// The generation's signed manifest (as the builder wrote it, byte for byte what its
/// signature covers) and signature, if it was signed; a signed manifest that no longer
/// describes the files is an error, not something to publish.
fn signed_manifest(dir: &Path, manifest: &Manifest) -> Result<Option<Signed>, FleetError> {
    let sig_path = dir.join(SIGNATURE_FILE);
    if !sig_path.is_file() {
        return Ok(None);
    }
    let manifest_path = dir.join(MANIFEST_FILE);
    let json = std::fs::read(&manifest_path).map_err(FleetError::io(&manifest_path))?;
    let sig = std::fs::read(&sig_path).map_err(FleetError::io(&sig_path))?;
    let key = manifest_path.display().to_string();
    if Manifest::parse(&json, &key, &manifest.generation)? != *manifest {
        return Err(FleetError::BadObject {
            key,
            why: "the signed manifest does not describe the generation's files; it was changed after it was signed".into(),
        });
    }
    Ok(Some((json, sig)))
}

/// Uploads the main file under its content key (`main/<xxh3>.shk`) unless the store has it
/// there at its size (a change generation's main file is its parent's, sent with the
/// parent), or the generation was published whole before by a shikaku that kept the main
/// file under the generation's own key.
fn send_main(
    remote: &Remote,
    manifest: &Manifest,
    dir: &Path,
    out: &mut Published,
) -> Result<(), FleetError> {
    let Some(file) = manifest.main_file() else {
        return Ok(());
    };
    let key = keys::main_file(&file.xxh3);
    if remote.head(&key)? == Some(file.bytes) {
        return Ok(());
    }
    let old_key = keys::generation_file(&manifest.generation, INDEX_FILE);
    if out.already && remote.head(&old_key)? == Some(file.bytes) {
        return Ok(());
    }
    tracing::debug!(key, bytes = file.bytes, "uploading the main file");
    out.uploaded_bytes += remote.upload_file(&key, &dir.join(INDEX_FILE))?;
    out.uploaded_files += 1;
    Ok(())
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

/// What one listing of `generations/` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredGenerations {
    /// The files under each generation id, whether or not its manifest is among them.
    pub files: BTreeMap<String, BTreeSet<String>>,
    /// Keys the listing had to step over (see `remote::Listing`).
    pub unnamable: Vec<String>,
    /// The main files under `main/` (their keys) and their sizes.
    pub mains: BTreeMap<String, u64>,
}

impl StoredGenerations {
    /// The generations with a manifest, oldest first.
    pub fn ids(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|(_, files)| files.contains(keys::MANIFEST))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The files generation `id`'s manifest names in its own directory (not the shared
    /// segments) that the listing lacks; its main file is there under `main/` at its size,
    /// or (published before `main/`) in the generation's directory.
    pub fn missing(&self, manifest: &Manifest) -> Vec<String> {
        let listed = self.files.get(&manifest.generation);
        let main_there = manifest
            .main_file()
            .is_some_and(|f| self.mains.get(&keys::main_file(&f.xxh3)) == Some(&f.bytes));
        manifest
            .files
            .iter()
            .filter(|f| !super::manifest::is_shared(&f.path))
            .filter(|f| !(main_there && f.path == INDEX_FILE))
            .filter(|f| !listed.is_some_and(|l| l.contains(&f.path)))
            .map(|f| f.path.clone())
            .collect()
    }
}

/// Lists `generations/` and `main/`.
pub fn list_generations(remote: &dyn Bucket) -> Result<StoredGenerations, FleetError> {
    listed_generations(remote, remote.list(keys::GENERATIONS)?)
}

/// Lists `generations/<id>/` alone, and `main/`.
pub fn list_generations_of(remote: &dyn Bucket, id: &str) -> Result<StoredGenerations, FleetError> {
    let dir = format!("{}/{id}", keys::GENERATIONS);
    listed_generations(remote, remote.list(&dir)?)
}

fn listed_generations(
    remote: &dyn Bucket,
    listing: super::remote::Listing,
) -> Result<StoredGenerations, FleetError> {
    let mains = remote.list(keys::MAIN)?;
    let mut out = StoredGenerations {
        unnamable: [listing.unnamable, mains.unnamable].concat(),
        mains: mains
            .objects
            .into_iter()
            .map(|l| (l.key, l.bytes))
            .collect(),
        ..StoredGenerations::default()
    };
    let dir = format!("{}/", keys::GENERATIONS);
    for l in listing.objects {
        let Some((id, file)) = l.key.strip_prefix(&dir).and_then(|r| r.split_once('/')) else {
            continue;
        };
        if crate::generations::valid_id(id) {
            out.files
                .entry(id.to_owned())
                .or_default()
                .insert(file.to_owned());
        }
    }
    Ok(out)
}

/// The generations in the store with a manifest, oldest first.
pub fn stored_generations(remote: &dyn Bucket) -> Result<Vec<String>, FleetError> {
    Ok(list_generations(remote)?.ids())
}
