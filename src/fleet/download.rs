//! A replica's download of one generation: every file into `DATA/tmp/<id>` (a segment, layer
//! or main file a local generation holds is hard-linked instead, a file already there from a download
//! killed part way is kept), each checked against the manifest, the index as a whole against
//! every checksum of its own, then sealed as a local build does. Before it starts it checks
//! that what it will fetch fits on the file system, and says so when it does not, rather than
//! fill the disk the served generation lives on.

use super::manifest::is_shared;
use super::manifest::{hex, FileEntry, Manifest};
use super::remote::Bucket;
use super::{keys, FleetError};
use crate::domain::PersonKey;
use crate::format::{LAYERS_DIR, SEGMENTS_DIR};
use crate::generations::{Store, INDEX_FILE, MANIFEST_FILE, SIGNATURE_FILE};
use crate::index::MappedIndex;
use crate::server::live::VerifiedIndex;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What one download did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub downloaded_files: usize,
    pub downloaded_bytes: u64,
    /// Segment files taken from a local generation by hard link (after checking them).
    pub linked_files: usize,
    /// Files found complete in `DATA/tmp/<id>` from an interrupted download.
    pub resumed_files: usize,
    /// Bytes of files found part downloaded there, kept (the rest asked for by range).
    pub resumed_bytes: u64,
}

/// How the free space of a directory's file system is learnt (a test gives its own).
pub type FreeBytes = fn(&Path) -> std::io::Result<u64>;

/// The bytes an unprivileged process may still write on `dir`'s file system.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Downloads the generation `manifest` describes into `DATA/tmp/<id>`, checks it, seals it.
/// `between_files` runs before each file and between pieces of one (at least every few
/// MiB, so a caller watching the pointer is not held up by a large file). The caller holds
/// the data directory's lock.
pub fn download(
    remote: &dyn Bucket,
    store: &Store,
    manifest: &Manifest,
    key: &PersonKey,
    between_files: &mut dyn FnMut(),
) -> Result<Fetched, FleetError> {
    let to = Destination {
        store,
        serving: None,
    };
    download_verified(remote, to, manifest, key, free_bytes, between_files).map(|(f, _)| f)
}

/// Where a download goes: the replica's store, and the server's generations when the
/// replica serves (a change generation of the one served opens as its child, reading only
/// its new layers: `MappedIndex::open_file_after`).
pub struct Destination<'a> {
    pub store: &'a Store,
    pub serving: Option<&'a crate::server::live::Live>,
}

/// [`download`], giving also the index as it was verified (its mapping stays valid through
/// the seal, which renames its directory); `free` tells the room there is.
pub fn download_verified(
    remote: &dyn Bucket,
    Destination { store, serving }: Destination,
    manifest: &Manifest,
    key: &PersonKey,
    free: FreeBytes,
    between_files: &mut dyn FnMut(),
) -> Result<(Fetched, VerifiedIndex), FleetError> {
    let id = &manifest.generation;
    let tmp = store.tmp_dir().join(id);
    for sub in [SEGMENTS_DIR, LAYERS_DIR] {
        let dir = tmp.join(sub);
        fs::create_dir_all(&dir).map_err(FleetError::io(&dir))?;
    }
    let local = local_shared(store)?;
    // A change generation's main file is its base's: linked when a local generation holds
    // the very file (size and xxh3), looked for once (hashing it is a pass over the file).
    let local_main = match manifest.main_file() {
        Some(f) if !matches_entry(&tmp.join(INDEX_FILE), f)? => same_local_main(store, f)?,
        _ => None,
    };
    require_room(manifest, &tmp, &local, local_main.as_deref(), free)?;
    let mut out = Fetched::default();
    let mismatch = |file: &str, why: String| FleetError::Mismatch {
        id: id.clone(),
        file: file.to_owned(),
        why,
    };
    for f in &manifest.files {
        between_files();
        let dest = tmp.join(&f.path);
        if matches_entry(&dest, f)? {
            out.resumed_files += 1;
            continue;
        }
        let shared = is_shared(&f.path);
        let main = f.path == INDEX_FILE;
        let local_shared = local.get(&f.path).filter(|_| shared);
        let linkable = match (local_main.as_ref().filter(|_| main), local_shared) {
            (Some(from), _) => Some(from.clone()),
            (None, Some(from)) if same_size(from, f)? => Some(from.clone()),
            (None, _) => None,
        };
        if let Some(from) = linkable {
            let _ = fs::remove_file(&dest);
            fs::hard_link(&from, &dest).map_err(FleetError::io(&dest))?;
            out.linked_files += 1;
            continue;
        }
        let object = match (shared, main) {
            (true, _) => keys::shared(&f.path),
            (false, true) => main_object(remote, id, f)?,
            (false, false) => keys::generation_file(id, &f.path),
        };
        let part = PathBuf::from(format!("{}.part", dest.display()));
        let got = remote.download_file(&object, &part, f.bytes, between_files)?;
        let (bytes, xxh3) = (got.bytes, got.xxh3);
        if bytes != f.bytes || hex(xxh3) != f.xxh3 {
            let _ = fs::remove_file(&part);
            return Err(mismatch(
                &f.path,
                format!(
                    "{bytes} bytes with xxh3 {}, the manifest says {} bytes with xxh3 {}",
                    hex(xxh3),
                    f.bytes,
                    f.xxh3
                ),
            ));
        }
        fs::rename(&part, &dest).map_err(FleetError::io(&dest))?;
        if main {
            // The next change generation, which shares it, links it without reading it.
            hashed(&dest, bytes, xxh3);
        }
        out.downloaded_files += 1;
        out.downloaded_bytes += bytes - got.resumed_bytes;
        out.resumed_bytes += got.resumed_bytes;
    }
    place_signature(remote, id, &tmp)?;
    // The files match the manifest; the index must also hold together and pass every
    // checksum of its own, and the deep check unless a trusted key signed the manifest
    // (`crate::signing::verify_generation`), before it is sealed.
    let index_path = tmp.join(INDEX_FILE);
    // What is served now (not when the download began: a rollback meanwhile moved it).
    let serving = serving.map(|live| live.load());
    let index = match &serving {
        Some(parent) => MappedIndex::open_file_after(&index_path, key.clone(), &parent.index),
        None => MappedIndex::open_file(&index_path, key.clone()),
    };
    drop(serving);
    let index = index.map_err(|e| mismatch(INDEX_FILE, e.to_string()))?;
    let index = VerifiedIndex::verify(index).map_err(|e| mismatch(INDEX_FILE, e.to_string()))?;
    if index.id() != id {
        return Err(mismatch(
            INDEX_FILE,
            format!(
                "it is generation {}",
                crate::domain::text::quote_raw(index.id())
            ),
        ));
    }
    store.seal(id)?;
    Ok((out, index))
}

/// Puts the store's `manifest.sig` of generation `id`, with the manifest's bytes as the
/// store holds them (what the signature covers), beside the downloaded files in `tmp`; none
/// there leaves none here (a signature left by an earlier attempt is removed). Whether the
/// signature is good, and by a trusted key, is the verification's to find.
fn place_signature(remote: &dyn Bucket, id: &str, tmp: &Path) -> Result<(), FleetError> {
    let (sig_path, manifest_path) = (tmp.join(SIGNATURE_FILE), tmp.join(MANIFEST_FILE));
    let signed = match remote.get(&keys::generation_file(id, SIGNATURE_FILE))? {
        Some(sig) => remote
            .get(&keys::manifest(id))?
            .map(|manifest| (sig.bytes, manifest.bytes)),
        None => None,
    };
    match signed {
        Some((sig, manifest)) => {
            fs::write(&manifest_path, &manifest).map_err(FleetError::io(&manifest_path))?;
            fs::write(&sig_path, &sig).map_err(FleetError::io(&sig_path))?;
        }
        None => {
            let _ = fs::remove_file(&sig_path);
            let _ = fs::remove_file(&manifest_path);
        }
    }
    Ok(())
}

/// Refuses a download that cannot fit: the bytes of every file neither in `tmp` at its size
/// already nor a local segment, layer or main file to link, against the free space of `tmp`'s file system.
fn require_room(
    manifest: &Manifest,
    tmp: &Path,
    local: &HashMap<String, PathBuf>,
    local_main: Option<&Path>,
    free: FreeBytes,
) -> Result<(), FleetError> {
    let needed_bytes: u64 = manifest
        .files
        .iter()
        .filter(|f| fs::metadata(tmp.join(&f.path)).map_or(true, |m| m.len() != f.bytes))
        .filter(|f| !(is_shared(&f.path) && local.contains_key(&f.path)))
        .filter(|f| !(local_main.is_some() && f.path == INDEX_FILE))
        .map(|f| f.bytes)
        .sum();
    let free_bytes = free(tmp).map_err(FleetError::io(tmp))?;
    if needed_bytes > free_bytes {
        return Err(FleetError::NoRoom {
            id: manifest.generation.clone(),
            needed_bytes,
            free_bytes,
        });
    }
    Ok(())
}

/// Whether `path` exists with the size and xxh3 of `entry`.
fn matches_entry(path: &Path, entry: &FileEntry) -> Result<bool, FleetError> {
    match fs::metadata(path) {
        Ok(m) if m.len() == entry.bytes => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(FleetError::io(path)(e)),
    }
    let (_, xxh3) = super::remote::file_xxh3(path)?;
    Ok(hex(xxh3) == entry.xxh3)
}

/// Whether a sealed generation's segment or layer file `path` is the one `entry` names: the
/// same path (its name is its content's checksum) at the same size. It is not read again:
/// it was checked against a manifest or built here when it came, a sealed generation's files
/// are never written, and the server verified it (`VerifiedSegments` knows it by inode from
/// then on). Before, every one was hashed again for each generation: 175 MB and 7 s of a
/// change generation's 7.4 s on a replica at 1M persons.
fn same_size(path: &Path, entry: &FileEntry) -> Result<bool, FleetError> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.len() == entry.bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FleetError::io(path)(e)),
    }
}

/// A file as this process last hashed or wrote it: device, inode, size and modification
/// time. A sealed generation's main file is never written after it is sealed, so while
/// these stay the same its xxh3 does.
type FileStamp = (u64, u64, u64, i64, i64);

fn stamp(meta: &fs::Metadata) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

/// The xxh3 of main files this process hashed or downloaded, by their stamp: a change
/// generation's main file is its parent's, and a national one is 3.6 GB to hash.
static MAIN_XXH3: std::sync::LazyLock<std::sync::Mutex<HashMap<FileStamp, u64>>> =
    std::sync::LazyLock::new(Default::default);

/// Records that `path`, of `bytes` bytes, has xxh3 `xxh3`.
fn hashed(path: &Path, bytes: u64, xxh3: u64) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    if meta.len() != bytes {
        return;
    }
    if let Ok(mut known) = MAIN_XXH3.lock() {
        // Main files of generations long gone are not worth keeping: a few at a time are.
        if known.len() >= 64 {
            known.clear();
        }
        known.insert(stamp(&meta), xxh3);
    }
}

/// Whether main file `path` has the size and xxh3 of `entry`, hashing it only if this
/// process has not hashed it before.
fn main_matches(path: &Path, entry: &FileEntry) -> Result<bool, FleetError> {
    let meta = match fs::metadata(path) {
        Ok(m) if m.len() == entry.bytes => m,
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(FleetError::io(path)(e)),
    };
    let known = MAIN_XXH3
        .lock()
        .ok()
        .and_then(|k| k.get(&stamp(&meta)).copied());
    let xxh3 = match known {
        Some(x) => x,
        None => {
            let (bytes, x) = super::remote::file_xxh3(path)?;
            hashed(path, bytes, x);
            x
        }
    };
    Ok(hex(xxh3) == entry.xxh3)
}

/// Where the store keeps generation `id`'s main file: under its content (`main/<xxh3>.shk`),
/// or, published before `main/`, in the generation's own directory.
fn main_object(remote: &dyn Bucket, id: &str, entry: &FileEntry) -> Result<String, FleetError> {
    let key = keys::main_file(&entry.xxh3);
    let listed = remote.list(keys::MAIN)?;
    match listed.objects.iter().any(|l| l.key == key) {
        true => Ok(key),
        false => Ok(keys::generation_file(id, INDEX_FILE)),
    }
}

/// A local generation's main file with the size and xxh3 of `entry`, if there is one.
fn same_local_main(store: &Store, entry: &FileEntry) -> Result<Option<PathBuf>, FleetError> {
    for id in store.list()?.into_iter().rev() {
        let path = store.generation_dir(&id).join(INDEX_FILE);
        if main_matches(&path, entry)? {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Segment and layer files of the local generations, by their path in a generation
/// directory (`segments/<name>`, `layers/<name>`; the newest generation's copy).
fn local_shared(store: &Store) -> Result<HashMap<String, PathBuf>, FleetError> {
    let mut out = HashMap::new();
    for id in store.list()? {
        for sub in [SEGMENTS_DIR, LAYERS_DIR] {
            let dir = store.generation_dir(&id).join(sub);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(|e| e.ok()) {
                if let Ok(name) = e.file_name().into_string() {
                    out.insert(format!("{sub}/{name}"), e.path());
                }
            }
        }
    }
    Ok(out)
}
