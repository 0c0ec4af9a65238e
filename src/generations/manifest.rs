//! A generation's manifest: every file it is made of, with its size and xxh3, so a replica can
//! check what it downloaded before it seals it. Segment files live once in the store
//! (`segments/<name>`) and are named in the manifest as they are in a generation directory
//! (`segments/<name>`).

use super::{valid_id, Store, StoreError, INDEX_FILE, REPORT_FILE};
use crate::format::{layer_sequence_of, LAYERS_DIR, SEGMENTS_DIR};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;

/// What a generation is (`report.json`'s and the manifest's `generation_kind`): a `base` (a
/// main file and segments) or a `layer` (a change generation: its parent's files and one more
/// layer file, `nightly::layer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GenerationKind {
    #[default]
    Base,
    Layer,
}

impl GenerationKind {
    pub const BASE: &'static str = "base";
    pub const LAYER: &'static str = "layer";

    pub fn as_str(self) -> &'static str {
        match self {
            GenerationKind::Base => Self::BASE,
            GenerationKind::Layer => Self::LAYER,
        }
    }

    pub fn parse(s: &str) -> Option<GenerationKind> {
        match s {
            Self::BASE => Some(GenerationKind::Base),
            Self::LAYER => Some(GenerationKind::Layer),
            _ => None,
        }
    }
}

/// A manifest that cannot be made or read (the fleet reports these as its own errors).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {why}")]
    Bad { key: String, why: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub const MANIFEST_FORMAT: u32 = 1;
/// More files than this (one per insurer, plus two) is refused: no delivery has that many.
pub const FILES_MAX: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path within the generation directory: `index.shk`, `report.json`, `segments/<name>`.
    pub path: String,
    pub bytes: u64,
    /// xxh3-64 of the whole file, 16 lowercase hex digits.
    pub xxh3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub generation: String,
    pub files: Vec<FileEntry>,
    /// `layer` (a change generation on `parent`) or `base`, from the generation's report;
    /// absent in manifests of older builds, which count as bases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_kind: Option<String>,
    /// The generation live where it was built when it was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// The lineage fields of a `report.json`.
#[derive(Deserialize)]
struct ReportLineage {
    generation_kind: Option<String>,
    parent: Option<String>,
}

impl Manifest {
    /// The manifest of local generation `id`: its main file, segment files and report.
    pub fn of_local(store: &Store, id: &str) -> Result<Manifest, ManifestError> {
        if !store.list()?.iter().any(|g| g == id) {
            return Err(StoreError::UnknownGeneration {
                id: id.to_owned(),
                dir: store.generations_dir().display().to_string(),
            }
            .into());
        }
        Manifest::of_dir(&store.generation_dir(id), id)
    }

    /// The manifest of the generation `id` in directory `dir` (sealed or still being built):
    /// its main file, segment files and report, each hashed now.
    pub fn of_dir(dir: &Path, id: &str) -> Result<Manifest, ManifestError> {
        Manifest::of_dir_sharing(dir, id, None)
    }

    /// [`Manifest::of_dir`], but a file that is the very file (a hard link: same device and
    /// inode) `shared`'s directory holds under the same path takes that manifest's entry
    /// instead of being read again: a change generation hashes only what it wrote.
    pub fn of_dir_sharing(
        dir: &Path,
        id: &str,
        shared: Option<(&Path, &Manifest)>,
    ) -> Result<Manifest, ManifestError> {
        let mut paths = vec![INDEX_FILE.to_owned()];
        let seg_dir = dir.join(SEGMENTS_DIR);
        if seg_dir.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&seg_dir)
                .map_err(io_error(&seg_dir))?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| valid_segment_name(n))
                .collect();
            names.sort();
            paths.extend(names.iter().map(|n| format!("{SEGMENTS_DIR}/{n}")));
        }
        let layer_dir = dir.join(LAYERS_DIR);
        if layer_dir.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&layer_dir)
                .map_err(io_error(&layer_dir))?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| layer_sequence_of(n).is_some())
                .collect();
            names.sort();
            paths.extend(names.iter().map(|n| format!("{LAYERS_DIR}/{n}")));
        }
        let mut lineage = ReportLineage {
            generation_kind: None,
            parent: None,
        };
        let report = dir.join(REPORT_FILE);
        if report.is_file() {
            paths.push(REPORT_FILE.to_owned());
            let bytes = std::fs::read(&report).map_err(io_error(&report))?;
            // A report that does not parse names no lineage: the generation counts as a base.
            lineage = serde_json::from_slice(&bytes).unwrap_or(lineage);
        }
        // Every core: a national generation is tens of gigabytes.
        use rayon::prelude::*;
        let files = paths
            .par_iter()
            .map(
                |p| match shared.and_then(|(from, m)| shared_entry(dir, from, m, p)) {
                    Some(e) => Ok(e),
                    None => entry(dir, p),
                },
            )
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Manifest {
            format: MANIFEST_FORMAT,
            generation: id.to_owned(),
            files,
            generation_kind: lineage.generation_kind,
            parent: lineage.parent,
        })
    }

    /// Whether it is a layer (a change generation) on generation `parent`.
    pub fn is_layer_on(&self, parent: &str) -> bool {
        self.generation_kind.as_deref() == Some(GenerationKind::LAYER) && self.is_child_of(parent)
    }

    /// Whether it was built on generation `parent`.
    pub fn is_child_of(&self, parent: &str) -> bool {
        self.parent.as_deref() == Some(parent)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        out.push(b'\n');
        out
    }

    /// Parses and checks a manifest read from `key`: format, id, every path one a generation
    /// may hold (nothing that could climb out of the directory), hashes well-formed.
    pub fn parse(bytes: &[u8], key: &str, id: &str) -> Result<Manifest, ManifestError> {
        let bad = |why: String| ManifestError::Bad {
            key: key.to_owned(),
            why,
        };
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a manifest: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(bad(format!(
                "format {} (this shikaku reads format {MANIFEST_FORMAT}; upgrade it)",
                m.format
            )));
        }
        if m.generation != id || !valid_id(&m.generation) {
            return Err(bad(format!(
                "it names generation {}",
                crate::domain::text::quote_raw(&m.generation)
            )));
        }
        if m.files.len() > FILES_MAX {
            return Err(bad(format!(
                "{} files, more than {FILES_MAX}",
                m.files.len()
            )));
        }
        if m.files.first().map(|f| f.path.as_str()) != Some(INDEX_FILE) {
            return Err(bad(format!("its first file is not {INDEX_FILE}")));
        }
        if let Some(kind) = m
            .generation_kind
            .as_deref()
            .filter(|k| GenerationKind::parse(k).is_none())
        {
            return Err(bad(format!(
                "generation_kind {} is neither {} nor {}",
                crate::domain::text::quote_raw(kind),
                GenerationKind::BASE,
                GenerationKind::LAYER
            )));
        }
        if let Some(parent) = m.parent.as_deref().filter(|p| !valid_id(p)) {
            return Err(bad(format!(
                "parent {} is not a generation id",
                crate::domain::text::quote_raw(parent)
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in m.files.iter().enumerate() {
            let ok_path = f.path == INDEX_FILE
                || f.path == REPORT_FILE
                || f.path
                    .strip_prefix("segments/")
                    .is_some_and(valid_segment_name)
                || f.path
                    .strip_prefix("layers/")
                    .is_some_and(|n| layer_sequence_of(n).is_some());
            if !ok_path {
                return Err(bad(format!(
                    "file {} has path {}",
                    i + 1,
                    crate::domain::text::quote_raw(&f.path)
                )));
            }
            if parse_hex(&f.xxh3).is_none() {
                return Err(bad(format!(
                    "file {} ({}) has xxh3 {}, not 16 hex digits",
                    i + 1,
                    f.path,
                    crate::domain::text::quote_raw(&f.xxh3)
                )));
            }
            if !seen.insert(f.path.as_str()) {
                return Err(bad(format!("file {} appears twice", f.path)));
            }
        }
        Ok(m)
    }

    /// The main file's entry (the first, as `parse` and `of_dir` make sure).
    pub fn main_file(&self) -> Option<&FileEntry> {
        self.files.first().filter(|f| f.path == INDEX_FILE)
    }

    /// The segment files' names (without `segments/`).
    pub fn segments(&self) -> impl Iterator<Item = (&str, &FileEntry)> {
        self.files
            .iter()
            .filter_map(|f| f.path.strip_prefix("segments/").map(|n| (n, f)))
    }

    /// The files named by their content and shared between generations (segment files and
    /// layer files): kept in the store under their path, once for every generation.
    pub fn shared(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().filter(|f| is_shared(&f.path))
    }

    /// Total bytes of all files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// `m`'s entry of `rel` when `dir/rel` is a hard link of `from/rel` and has its size.
fn shared_entry(dir: &Path, from: &Path, m: &Manifest, rel: &str) -> Option<FileEntry> {
    use std::os::unix::fs::MetadataExt;
    let e = m.files.iter().find(|e| e.path == rel)?;
    let (a, b) = (
        std::fs::metadata(dir.join(rel)).ok()?,
        std::fs::metadata(from.join(rel)).ok()?,
    );
    (a.dev() == b.dev() && a.ino() == b.ino() && a.len() == e.bytes).then(|| e.clone())
}

fn entry(dir: &Path, rel: &str) -> Result<FileEntry, ManifestError> {
    let path = dir.join(rel);
    let (bytes, xxh3) = file_xxh3(&path).map_err(io_error(&path))?;
    Ok(FileEntry {
        path: rel.to_owned(),
        bytes,
        xxh3: hex(xxh3),
    })
}

/// The size and xxh3 of a local file, read in 1 MiB pieces.
pub fn file_xxh3(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hash = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok((total, hash.digest())),
            Ok(n) => {
                total += n as u64;
                hash.update(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

pub fn hex(x: u64) -> String {
    format!("{x:016x}")
}

pub fn parse_hex(s: &str) -> Option<u64> {
    (s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| u64::from_str_radix(s, 16).ok())
    .flatten()
}

/// Whether a generation's file is one of those named by their content (`segments/`,
/// `layers/`), which the store keeps once under their path.
pub fn is_shared(path: &str) -> bool {
    path.starts_with("segments/") || path.starts_with("layers/")
}

/// A segment file's name as builds write them: `<insurer number>-<16 hex>.seg`.
pub fn valid_segment_name(name: &str) -> bool {
    name.len() <= 64
        && name.ends_with(".seg")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_json(files: &str) -> String {
        format!(r#"{{"format":1,"generation":"g1","files":[{files}]}}"#)
    }

    fn check(files: &str, ok: bool) {
        let json = manifest_json(files);
        let got = Manifest::parse(json.as_bytes(), "k", "g1");
        assert_eq!(got.is_ok(), ok, "{files}: {got:?}");
    }

    #[test]
    fn manifests_checked() {
        let index = r#"{"path":"index.shk","bytes":10,"xxh3":"0123456789abcdef"}"#;
        let seg = r#"{"path":"segments/01130012-0123456789abcdef.seg","bytes":10,"xxh3":"0123456789abcdef"}"#;
        check(index, true);
        check(&format!("{index},{seg}"), true);
        check(seg, false);
        check(&format!("{index},{index}"), false);
        check(
            &format!("{index},{}", seg.replace("segments/", "segments/../")),
            false,
        );
        check(
            &format!("{index},{}", seg.replace("segments/01130012", "../x")),
            false,
        );
        check(&index.replace("0123456789abcdef", "0123"), false);
        check(
            &index.replace("0123456789abcdef", "0123456789ABCDEF"),
            false,
        );
        check(&index.replace("index.shk", "CURRENT"), false);
        assert!(Manifest::parse(manifest_json(index).as_bytes(), "k", "g2").is_err());
        assert!(Manifest::parse(b"{", "k", "g1").is_err());
        let with = |lineage: &str| {
            let json = manifest_json(index).replace(r#""files""#, &format!("{lineage},\"files\""));
            Manifest::parse(json.as_bytes(), "k", "g1")
        };
        let layer = with(r#""generation_kind":"layer","parent":"g0""#).unwrap();
        assert!(layer.is_layer_on("g0") && !layer.is_layer_on("g1"));
        assert!(!with(r#""generation_kind":"base","parent":"g0""#)
            .unwrap()
            .is_layer_on("g0"));
        assert!(with(r#""generation_kind":"patch""#).is_err());
        assert!(with(r#""parent":"../g0""#).is_err());
    }

    /// A shared entry is taken only for a hard link of the parent's file: a file of the same
    /// path written anew (other content, same size) is hashed.
    #[test]
    fn sharing_takes_only_hard_links() {
        let root = tempfile::tempdir().unwrap();
        let (parent, child) = (root.path().join("p"), root.path().join("c"));
        for d in [&parent, &child] {
            std::fs::create_dir_all(d.join(SEGMENTS_DIR)).unwrap();
        }
        let seg = format!("{SEGMENTS_DIR}/01130012-0123456789abcdef.seg");
        std::fs::write(parent.join(INDEX_FILE), b"main").unwrap();
        std::fs::write(parent.join(&seg), b"seg1").unwrap();
        let mut known = Manifest::of_dir(&parent, "g0").unwrap();
        // A parent's manifest whose entries differ from the bytes: a shared entry shows.
        for e in &mut known.files {
            e.xxh3 = "00ff00ff00ff00ff".into();
        }
        std::fs::hard_link(parent.join(INDEX_FILE), child.join(INDEX_FILE)).unwrap();
        std::fs::write(child.join(&seg), b"seg2").unwrap();
        let got = Manifest::of_dir_sharing(&child, "g1", Some((&parent, &known))).unwrap();
        let xxh3 = |p: &str| got.files.iter().find(|e| e.path == p).unwrap().xxh3.clone();
        assert_eq!(xxh3(INDEX_FILE), "00ff00ff00ff00ff");
        assert_eq!(xxh3(&seg), hex(xxhash_rust::xxh3::xxh3_64(b"seg2")));
    }
}
