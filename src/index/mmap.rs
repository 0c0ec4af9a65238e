//! The one place shikaku maps a file into memory.

use super::{FileId, Index};
use crate::domain::PersonKey;
use crate::format::{layer_sequence_of, FormatError, LAYERS_DIR, SEGMENTS_DIR};
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

/// An index over read-only memory: each file's own mapping, or its part of one anonymous
/// mapping ([`Residence::Preloaded`]). Both are a `Bytes`, a pointer and a length whatever
/// owns the memory, so a read of index bytes costs the same either way: no `match` per read
/// (an enum of the two kinds cost the default path 5% per answer).
pub type MappedIndex = Index<Bytes>;

/// Where an opened generation's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Residence {
    /// Each file mapped on its own, read from the page cache (the default): shared with
    /// other processes, reclaimable, nothing copied at open.
    Mapped = 0,
    /// Every file of a generation copied into one anonymous mapping advised to use 2 MB pages
    /// (`serve --preload`). A generation's thousands of segment files, most smaller than
    /// 2 MB, are otherwise each mapped with 4 KB pages, and nearly every step of a lookup
    /// (directory slot, records, text) misses the TLB; in a virtual machine each miss is a
    /// two-level page walk. The price: the generation's bytes in anonymous memory (not shared
    /// with the page cache, never reclaimed), copied at every open, and held for each
    /// generation open at once (a reload's old and new, a replica's generations held ready).
    Preloaded = 1,
}

static RESIDENCE: AtomicU8 = AtomicU8::new(Residence::Mapped as u8);

/// How [`MappedIndex::open_file`] places every generation this process opens from now on.
/// The server sets it once at start, before its first generation.
pub fn set_residence(residence: Residence) {
    RESIDENCE.store(residence as u8, Ordering::Relaxed);
}

fn residence() -> Residence {
    match RESIDENCE.load(Ordering::Relaxed) {
        1 => Residence::Preloaded,
        _ => Residence::Mapped,
    }
}

/// Maps `path` read-only.
///
/// # Safety
///
/// This function is safe to call, but relies on an invariant of the whole program: index files
/// are immutable once published. A build writes a new file under a temporary name and renames
/// it into place; nothing ever truncates or rewrites a published file.
#[allow(unsafe_code)] // The mapping; see SAFETY below.
pub fn map_file(path: &Path) -> std::io::Result<memmap2::Mmap> {
    let file = File::open(path)?;
    // SAFETY: a mapped file that another process truncates would raise SIGBUS on access, and
    // one modified in place would change bytes under our borrowed views. Neither happens:
    // shikaku replaces index files only by rename (the old inode stays valid while mapped) and
    // never writes a published generation (ARCHITECTURE.md, "Architecture invariants").
    // The length check against the header in `Index::open` catches a file that was already
    // short when mapped.
    let map = unsafe { memmap2::MmapOptions::new().map(&file) }?;
    // Lookups jump around gigabytes: ask for huge pages so the TLB covers more of the index.
    // Only advice; kernels or filesystems without file-backed huge pages ignore it.
    let _ = map.advise(memmap2::Advice::HugePage);
    Ok(map)
}

impl MappedIndex {
    /// Maps and opens the index at `path` and the segment files beside it (in `segments/`),
    /// checking their structure (not yet their checksums); preloaded if the process says so
    /// ([`set_residence`]).
    pub fn open_file(path: &Path, key: PersonKey) -> Result<MappedIndex, OpenError> {
        match residence() {
            Residence::Mapped => Self::open_mapped(path, key),
            Residence::Preloaded => Self::open_file_preloaded(path, key),
        }
    }

    /// [`Self::open_file`] with the generation copied into one anonymous mapping with 2 MB
    /// pages ([`Residence::Preloaded`]), whatever the process-wide setting.
    pub fn open_file_preloaded(path: &Path, key: PersonKey) -> Result<MappedIndex, OpenError> {
        let mapped = Self::open_mapped(path, key.clone())?;
        preload(mapped, key, path).map_err(|e| match e {
            Preload::Io(e) => OpenError::Io(path.display().to_string(), e),
            Preload::Format(e) => OpenError::Format(path.display().to_string(), e),
        })
    }

    /// [`Self::open_file`] with each file mapped on its own.
    fn open_mapped(path: &Path, key: PersonKey) -> Result<MappedIndex, OpenError> {
        let map = map_file(path).map_err(|e| OpenError::Io(path.display().to_string(), e))?;
        let segments = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(SEGMENTS_DIR);
        let mut files = Vec::new();
        let mut index = Index::open_with(Bytes::from_owner(map), key, |entry| {
            map_segment(&segments, entry, &mut files)
        })
        .map_err(|e| OpenError::Format(path.display().to_string(), e))?;
        index.segment_files = files;
        index.main_file = std::fs::metadata(path).ok().map(|m| FileId::of(&m));
        index.path = Some(path.to_path_buf());
        add_layer_files(&mut index, path)?;
        Ok(index)
    }
}

impl MappedIndex {
    /// Asks the kernel to read every file of the generation into the page cache
    /// (`POSIX_FADV_WILLNEED`), main file first, then the segments in table order, on a
    /// thread of its own that ends when it has asked for all: a verification about to read
    /// them all then finds the next files read ahead in large requests while it checks the
    /// ones before, instead of faulting them in a page-cache miss at a time. Only advice: a
    /// file that cannot be opened or advised is left to the faults.
    pub fn read_ahead(&self) {
        let (Some(main), Some(dir)) = (&self.path, self.dir()) else {
            return;
        };
        let files: Vec<std::path::PathBuf> = std::iter::once(main.clone())
            .chain(
                self.segments
                    .iter()
                    .map(|s| dir.join(SEGMENTS_DIR).join(&s.file_name)),
            )
            .collect();
        let spawned = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || {
                for path in files {
                    if let Ok(file) = File::open(&path) {
                        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::debug!("no read-ahead thread: {e}");
        }
    }
}

/// Maps the segment file of `entry` in `segments` and notes its identity in `files`.
fn map_segment(
    segments: &Path,
    entry: &crate::format::InsurerEntry,
    files: &mut Vec<FileId>,
) -> Result<Bytes, FormatError> {
    let path = segments.join(entry.segment_file_name());
    let missing = |e: std::io::Error| FormatError::MissingSegment {
        file: path.display().to_string(),
        error: e.to_string(),
    };
    let map = map_file(&path).map_err(missing)?;
    files.push(FileId::of(&std::fs::metadata(&path).map_err(missing)?));
    Ok(Bytes::from_owner(map))
}

/// The layer files of the generation whose main file is `main_path` (`layers/`, in sequence
/// order), stacked on `index` with their delta segments, each file mapped on its own.
fn add_layer_files(index: &mut MappedIndex, main_path: &Path) -> Result<(), OpenError> {
    let dir = main_path.parent().unwrap_or_else(|| Path::new("."));
    let layers = dir.join(LAYERS_DIR);
    let shown = |p: &Path| p.display().to_string();
    let names = match std::fs::read_dir(&layers) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OpenError::Io(shown(&layers), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(OpenError::Io(shown(&layers), e)),
    };
    let mut numbered = Vec::with_capacity(names.len());
    for name in names {
        let seq = layer_sequence_of(&name).ok_or_else(|| {
            OpenError::Format(
                shown(&layers),
                FormatError::Malformed(format!("{name:?} is not a layer file's name")),
            )
        })?;
        numbered.push((seq, name));
    }
    numbered.sort();
    let segments = dir.join(SEGMENTS_DIR);
    for (_, name) in numbered {
        let path = layers.join(&name);
        let map = map_file(&path).map_err(|e| OpenError::Io(shown(&path), e))?;
        let mut files = Vec::new();
        index
            .add_layer(Bytes::from_owner(map), |entry| {
                map_segment(&segments, entry, &mut files)
            })
            .map_err(|e| OpenError::Format(shown(&path), e))?;
        index.segment_files.extend(files);
    }
    Ok(())
}

enum Preload {
    Io(std::io::Error),
    Format(FormatError),
}

/// `mapped`'s files copied into one anonymous mapping with 2 MB pages, and opened again over
/// it (see [`Residence::Preloaded`]): the second open checks the copy's structure as the
/// first checked the files'.
fn preload(mut mapped: MappedIndex, key: PersonKey, path: &Path) -> Result<MappedIndex, Preload> {
    const HUGE_PAGE_BYTES: usize = 2 << 20;
    let files: Vec<(&str, &[u8])> = std::iter::once(("", mapped.main.as_ref()))
        .chain(
            mapped
                .segments
                .iter()
                .map(|s| (s.file_name.as_str(), s.bytes.as_ref())),
        )
        .collect();
    // Each file at a cache-line boundary; the layout's readers expect nothing stricter.
    let mut at = 0;
    let mut ranges = HashMap::with_capacity(files.len());
    for (name, bytes) in &files {
        ranges.insert(name.to_string(), at..at + bytes.len());
        at = (at + bytes.len()).next_multiple_of(64);
    }
    // A length in whole huge pages, which the kernel also places on a huge-page boundary.
    let mut all =
        memmap2::MmapMut::map_anon(at.next_multiple_of(HUGE_PAGE_BYTES).max(HUGE_PAGE_BYTES))
            .map_err(Preload::Io)?;
    // Advice before the first touch, so that the copy below faults in huge pages. Only
    // advice: without transparent huge pages the copy still works, in 4 KB pages.
    let _ = all.advise(memmap2::Advice::HugePage);
    for (name, bytes) in &files {
        all[ranges[*name].clone()].copy_from_slice(bytes);
    }
    drop(files);
    // The copy is of these files: a process that verified one knows the copy by it too.
    let mut segment_files = std::mem::take(&mut mapped.segment_files);
    segment_files.truncate(mapped.base_insurers());
    let main_file = mapped.main_file;
    let layered = mapped.layer_count() > 0;
    let main_path = mapped.path.take();
    drop(mapped);
    let all = Bytes::from_owner(all.make_read_only().map_err(Preload::Io)?);
    let part = |name: &str| ranges.get(name).map(|r| all.slice(r.clone()));
    let main = part("").ok_or_else(|| {
        Preload::Format(FormatError::MissingSegment {
            file: "the main file".into(),
            error: "not among the files preloaded".into(),
        })
    })?;
    let mut index = Index::open_with(main, key, |entry| {
        let name = entry.segment_file_name();
        part(&name).ok_or_else(|| FormatError::MissingSegment {
            file: name,
            error: "not among the files preloaded".into(),
        })
    })
    .map_err(Preload::Format)?;
    index.segment_files = segment_files;
    index.main_file = main_file;
    index.path = main_path;
    if layered {
        // A change generation's layers and delta segments are small: mapped, not copied.
        add_layer_files(&mut index, path).map_err(|e| match e {
            OpenError::Io(_, e) => Preload::Io(e),
            OpenError::Format(_, e) => Preload::Format(e),
        })?;
    }
    Ok(index)
}

/// Opening an index file failed: I/O or format, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read index {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("index {0}: {1}")]
    Format(String, #[source] FormatError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::VerifiedSegments;
    use crate::testing::three_cards;

    /// A preloaded generation holds the very bytes of its files, each file's own, in one
    /// anonymous mapping: its records read back as the mapped files' do, and it verifies.
    #[test]
    fn a_preloaded_generation_reads_as_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::nightly::write_files(&three_cards("12"), dir.path()).unwrap();
        let mapped = MappedIndex::open_file(&path, PersonKey::demo()).unwrap();
        let preloaded = MappedIndex::open_file_preloaded(&path, PersonKey::demo()).unwrap();
        assert_eq!(preloaded.main.as_ref(), mapped.main.as_ref());
        assert_ne!(preloaded.main.as_ptr(), mapped.main.as_ptr());
        assert_eq!(preloaded.segments.len(), mapped.segments.len());
        for (p, m) in preloaded.segments.iter().zip(&mapped.segments) {
            assert_eq!(p.bytes.as_ref(), m.bytes.as_ref(), "{}", m.file_name);
        }
        let entries =
            |i: &MappedIndex| -> Vec<_> { i.all_records().map(|r| r.entry().unwrap()).collect() };
        assert_eq!(entries(&preloaded), entries(&mapped));
        preloaded.verify().unwrap();
    }
    /// A generation's copy of `dir`'s generation in `to`: the main file copied, each segment
    /// file hard-linked (as a nightly build shares an unchanged insurer's) or copied.
    fn copy_generation(dir: &Path, to: &Path, link_segments: bool) -> std::path::PathBuf {
        let (from, into) = (dir.join(SEGMENTS_DIR), to.join(SEGMENTS_DIR));
        std::fs::create_dir_all(&into).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let name = f.unwrap().file_name();
            if link_segments {
                std::fs::hard_link(from.join(&name), into.join(&name)).unwrap();
            } else {
                std::fs::copy(from.join(&name), into.join(&name)).unwrap();
            }
        }
        let main = to.join("index.shk");
        std::fs::copy(dir.join("index.shk"), &main).unwrap();
        main
    }

    /// A process verifies a segment file once: a generation that shares it by hard link
    /// verifies its main file and nothing else; a copy (another inode, bytes that may have
    /// been changed since) is verified whole, and a damaged copy refused though the original
    /// is known.
    #[test]
    fn a_segment_file_verified_once_is_known_by_its_inode_not_its_name() {
        let verify = |path: &Path, known: &VerifiedSegments| {
            let index = MappedIndex::open_file(path, PersonKey::demo())?;
            let preloaded = MappedIndex::open_file_preloaded(path, PersonKey::demo())?;
            let v = index
                .verify_new(known)
                .map_err(|e| OpenError::Format("".into(), e))?;
            let p = preloaded
                .verify_new(known)
                .map_err(|e| OpenError::Format("".into(), e))?;
            assert_eq!(
                p.segments_verified, 0,
                "the preloaded copy is of the same files"
            );
            Ok::<_, OpenError>((v.segments_verified, v.segments_known))
        };
        let root = tempfile::tempdir().unwrap();
        let first = root.path().join("first");
        let path = crate::nightly::write_files(&three_cards("12"), &first).unwrap();
        let segments = std::fs::read_dir(first.join(SEGMENTS_DIR)).unwrap().count();
        assert!(segments >= 1);
        let known = VerifiedSegments::default();
        assert_eq!(verify(&path, &known).unwrap(), (segments, 0));
        assert_eq!(verify(&path, &known).unwrap(), (0, segments));
        let linked = copy_generation(&first, &root.path().join("linked"), true);
        assert_eq!(verify(&linked, &known).unwrap(), (0, segments));
        let copied = copy_generation(&first, &root.path().join("copied"), false);
        let damaged = root.path().join("copied").join(SEGMENTS_DIR);
        let victim = std::fs::read_dir(&damaged)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = std::fs::read(&victim).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::remove_file(&victim).unwrap();
        std::fs::write(&victim, bytes).unwrap();
        let refused = verify(&copied, &known).unwrap_err().to_string();
        assert!(refused.contains("checksum"), "{refused}");
        // A fresh set knows nothing: `shikaku verify` checks every file.
        let fresh = VerifiedSegments::default();
        assert_eq!(verify(&linked, &fresh).unwrap(), (segments, 0));
    }
}
