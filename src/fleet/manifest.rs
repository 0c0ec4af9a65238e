//! A generation's manifest: every file it is made of, with its size and xxh3, so a replica can
//! check what it downloaded before it seals it. Segment files live once in the store
//! (`segments/<name>`) and are named in the manifest as they are in a generation directory
//! (`segments/<name>`).

use super::remote::file_xxh3;
use super::FleetError;
use crate::format::{layer_sequence_of, LAYERS_DIR, SEGMENTS_DIR};
use crate::generations::{valid_id, Store, INDEX_FILE, REPORT_FILE};
use serde::{Deserialize, Serialize};
use std::path::Path;

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
}

impl Manifest {
    /// The manifest of local generation `id`: its main file, segment files and report.
    pub fn of_local(store: &Store, id: &str) -> Result<Manifest, FleetError> {
        let dir = store.generation_dir(id);
        if !store.list()?.iter().any(|g| g == id) {
            return Err(crate::generations::StoreError::UnknownGeneration {
                id: id.to_owned(),
                dir: store.generations_dir().display().to_string(),
            }
            .into());
        }
        let mut files = vec![entry(&dir, INDEX_FILE)?];
        let seg_dir = dir.join(SEGMENTS_DIR);
        if seg_dir.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&seg_dir)
                .map_err(FleetError::io(&seg_dir))?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| valid_segment_name(n))
                .collect();
            names.sort();
            for name in names {
                files.push(entry(&dir, &format!("{SEGMENTS_DIR}/{name}"))?);
            }
        }
        let layer_dir = dir.join(LAYERS_DIR);
        if layer_dir.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&layer_dir)
                .map_err(FleetError::io(&layer_dir))?
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| layer_sequence_of(n).is_some())
                .collect();
            names.sort();
            for name in names {
                files.push(entry(&dir, &format!("{LAYERS_DIR}/{name}"))?);
            }
        }
        if dir.join(REPORT_FILE).is_file() {
            files.push(entry(&dir, REPORT_FILE)?);
        }
        Ok(Manifest {
            format: MANIFEST_FORMAT,
            generation: id.to_owned(),
            files,
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        out.push(b'\n');
        out
    }

    /// Parses and checks a manifest read from `key`: format, id, every path one a generation
    /// may hold (nothing that could climb out of the directory), hashes well-formed.
    pub fn parse(bytes: &[u8], key: &str, id: &str) -> Result<Manifest, FleetError> {
        let bad = |why: String| FleetError::BadObject {
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

fn entry(dir: &Path, rel: &str) -> Result<FileEntry, FleetError> {
    let (bytes, xxh3) = file_xxh3(&dir.join(rel))?;
    Ok(FileEntry {
        path: rel.to_owned(),
        bytes,
        xxh3: hex(xxh3),
    })
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
    }
}
