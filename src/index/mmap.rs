//! The one place shikaku maps a file into memory.

use super::{FileId, Index};
use crate::domain::PersonKey;
use crate::format::{layer_sequence_of, FormatError, LAYERS_DIR, SEGMENTS_DIR};
use bytes::Bytes;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};

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
pub fn map_file(path: &Path) -> std::io::Result<memmap2::Mmap> {
    map_open(&File::open(path)?)
}

#[allow(unsafe_code)] // The mapping; see SAFETY below.
fn map_open(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: a mapped file that another process truncates would raise SIGBUS on access, and
    // one modified in place would change bytes under our borrowed views. Neither happens:
    // shikaku replaces index files only by rename (the old inode stays valid while mapped) and
    // never writes a published generation (ARCHITECTURE.md, "Architecture invariants").
    // The length check against the header in `Index::open` catches a file that was already
    // short when mapped.
    let map = unsafe { memmap2::MmapOptions::new().map(file) }?;
    // Lookups jump around gigabytes: ask for huge pages so the TLB covers more of the index.
    // Only advice; kernels or filesystems without file-backed huge pages ignore it.
    let _ = map.advise(memmap2::Advice::HugePage);
    Ok(map)
}

/// The files this process has mapped and still holds, by identity. A generation that shares
/// a file with one still open (a change generation shares all but a few with its parent, by
/// hard link; a nightly generation every unchanged insurer's) takes the same mapping instead
/// of mapping it again: at the nation a generation is 3,446 files, and mapping them anew
/// (and faulting each one's first pages in, and unmapping the old ones) was a quarter of a
/// server's swap to a change generation (183–210 ms, 129–183 ms sharing). An identity is a live inode while its
/// mapping lives (the mapping holds the inode), so it cannot name another file meanwhile;
/// published files are never written (see [`map_file`]).
static MAPPED: std::sync::Mutex<MappedFiles> = std::sync::Mutex::new(MappedFiles {
    files: None,
    swept_at: 0,
});

struct MappedFiles {
    files: Option<HashMap<FileId, Weak<memmap2::Mmap>>>,
    /// How many were held at the last sweep of the dropped ones.
    swept_at: usize,
}

/// A shared mapping as a `Bytes` owner.
struct Shared(Arc<memmap2::Mmap>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// Maps `path`, or takes the mapping of the same file this process still holds; and the
/// file's identity.
fn map_shared(path: &Path) -> std::io::Result<(Bytes, FileId)> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let id = FileId::of(&meta);
    let mut mapped = MAPPED.lock().unwrap_or_else(|p| p.into_inner());
    let mapped = &mut *mapped;
    let files = mapped.files.get_or_insert_with(HashMap::new);
    let held = files.get(&id).and_then(Weak::upgrade);
    if let Some(map) = held.filter(|m| m.len() as u64 == meta.len()) {
        return Ok((Bytes::from_owner(Shared(map)), id));
    }
    let map = Arc::new(map_open(&file)?);
    files.insert(id, Arc::downgrade(&map));
    // Forget the dropped ones now and then: each sweep at twice the count held after the
    // last, so the cost per mapping stays constant.
    if files.len() > 2 * mapped.swept_at.max(4096) {
        files.retain(|_, w| w.strong_count() > 0);
        mapped.swept_at = files.len();
    }
    Ok((Bytes::from_owner(Shared(map)), id))
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
        let (map, main_file) =
            map_shared(path).map_err(|e| OpenError::Io(path.display().to_string(), e))?;
        let segments = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(SEGMENTS_DIR);
        let mut files = Vec::new();
        let mut index =
            Index::open_with(map, key, |entry| map_segment(&segments, entry, &mut files))
                .map_err(|e| OpenError::Format(path.display().to_string(), e))?;
        index.segment_files = files;
        index.main_file = Some(main_file);
        index.path = Some(path.to_path_buf());
        add_layer_files(&mut index, path)?;
        Ok(index)
    }
}

impl MappedIndex {
    /// Asks the kernel to read the files of the generation that `known` does not hold as
    /// verified into the page cache (`POSIX_FADV_WILLNEED`), main file first, then the
    /// segments in table order, on a thread of its own that ends when it has asked for all:
    /// a verification about to read them all then finds the next files read ahead in large
    /// requests while it checks the ones before, instead of faulting them in a page-cache
    /// miss at a time. A change generation's files but its new ones are known (and skipped
    /// by the verification too): asking for all 3,446 of the nation's at every swap was a
    /// fifth of a server's CPU samples in a profile of change after change. Only advice: a
    /// file that cannot be opened or advised is left to the faults.
    pub fn read_ahead(&self, known: &super::VerifiedSegments) {
        let (Some(main), Some(dir)) = (&self.path, self.dir()) else {
            return;
        };
        let main = (!self.main_known(known)).then(|| main.clone());
        let files: Vec<std::path::PathBuf> = main
            .into_iter()
            .chain(
                self.segments_not_known(known)
                    .into_iter()
                    .map(|i| dir.join(SEGMENTS_DIR).join(&self.segments[i].file_name)),
            )
            .collect();
        if files.is_empty() {
            return;
        }
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
    let (map, id) = map_shared(&path).map_err(missing)?;
    files.push(id);
    Ok(map)
}

/// The layer files of the generation whose main file is `main_path` (`layers/`, in sequence
/// order), stacked on `index` with their delta segments, each file mapped on its own.
fn add_layer_files(index: &mut MappedIndex, main_path: &Path) -> Result<(), OpenError> {
    let names = layer_names(main_path)?;
    add_layers(index, main_path, &names)
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

/// The names of the layer files beside the main file `main_path`, in sequence order.
fn layer_names(main_path: &Path) -> Result<Vec<String>, OpenError> {
    let dir = main_path.parent().unwrap_or_else(|| Path::new("."));
    let layers = dir.join(LAYERS_DIR);
    let names = match std::fs::read_dir(&layers) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OpenError::Io(shown(&layers), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
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
    Ok(numbered.into_iter().map(|(_, name)| name).collect())
}

/// Stacks the layer files `names` (in `main_path`'s `layers/`) on `index`, in order.
fn add_layers(
    index: &mut MappedIndex,
    main_path: &Path,
    names: &[String],
) -> Result<(), OpenError> {
    let dir = main_path.parent().unwrap_or_else(|| Path::new("."));
    let (layers, segments) = (dir.join(LAYERS_DIR), dir.join(SEGMENTS_DIR));
    for name in names {
        let path = layers.join(name);
        let (map, id) = map_shared(&path).map_err(|e| OpenError::Io(shown(&path), e))?;
        let mut files = Vec::new();
        index
            .add_layer(map, |entry| map_segment(&segments, entry, &mut files))
            .map_err(|e| OpenError::Format(shown(&path), e))?;
        index.segment_files.extend(files);
        index.layers_read += 1;
        if let Some(l) = index.layers.as_mut() {
            l.set_top_file(name.clone(), id);
        }
    }
    Ok(())
}

impl MappedIndex {
    /// [`Self::open_file`] for a generation that may be a child of `parent`, an index this
    /// process holds (a server's live generation, a change build's parent): when its main
    /// file is `parent`'s (the same inode) and its layer files begin with all of `parent`'s
    /// (the same names and inodes), it starts from a clone of `parent`, the base's tables and
    /// the layers folded so far, and opens only the layers past them. Folding every layer
    /// again took most of a swap's 180 ms at the nation after a dozen change files, and
    /// grows with the day's layers; a clone copies the folded tables. Anything else (another
    /// base, a layer not `parent`'s, a process that preloads) is opened whole.
    pub fn open_file_after(
        path: &Path,
        key: PersonKey,
        parent: &MappedIndex,
    ) -> Result<MappedIndex, OpenError> {
        match Self::layers_past(path, &key, parent) {
            Some(Ok(names)) => Self::stack(path, parent.clone(), &names),
            Some(Err(e)) => Err(e),
            None if Self::same_base(path, &key, parent) => {
                Self::stack(path, parent.base_only(), &layer_names(path)?)
            }
            None => Self::open_file(path, key),
        }
    }

    /// [`Self::open_file_after`] for a caller that is done with `parent` (a watch's last
    /// build, which the next build opens as the live generation): it becomes the child, so
    /// not even its tables are copied.
    pub fn open_file_from(
        path: &Path,
        key: PersonKey,
        parent: MappedIndex,
    ) -> Result<MappedIndex, OpenError> {
        match Self::layers_past(path, &key, &parent) {
            Some(Ok(names)) => Self::stack(path, parent, &names),
            Some(Err(e)) => Err(e),
            None if Self::same_base(path, &key, &parent) => {
                Self::stack(path, parent.base_only(), &layer_names(path)?)
            }
            None => {
                drop(parent);
                Self::open_file(path, key)
            }
        }
    }

    /// Whether the generation at `path` stacks on the same base as `parent` (its main file,
    /// by device and inode, and the same key) though it is not `parent`'s child (a merge of
    /// `parent`'s layers, a rollback to an older change generation): it opens from the base's
    /// tables `parent` holds, and reads every layer of its own.
    fn same_base(path: &Path, key: &PersonKey, parent: &MappedIndex) -> bool {
        let main = std::fs::metadata(path).map(|m| FileId::of(&m));
        residence() == Residence::Mapped
            && parent.key.fingerprint() == key.fingerprint()
            && main.is_ok_and(|m| parent.main_file == Some(m))
    }

    /// `parent` as the index at `path`, with its layer files `names` stacked on it.
    fn stack(
        path: &Path,
        mut index: MappedIndex,
        names: &[String],
    ) -> Result<MappedIndex, OpenError> {
        let started = std::time::Instant::now();
        index.path = Some(path.to_path_buf());
        index.layers_read = 0;
        add_layers(&mut index, path, names)?;
        let ms = started.elapsed().as_millis() as u64;
        tracing::debug!(path = %path.display(), ms, layers_read = names.len(), "opened as a child of a generation held");
        Ok(index)
    }

    /// The names of the layer files of the generation at `path` past `parent`'s, when it is
    /// a child of `parent` (see [`Self::open_file_after`]); `None` when it is not.
    fn layers_past(
        path: &Path,
        key: &PersonKey,
        parent: &MappedIndex,
    ) -> Option<Result<Vec<String>, OpenError>> {
        if residence() != Residence::Mapped || parent.key.fingerprint() != key.fingerprint() {
            return None;
        }
        let main = FileId::of(&std::fs::metadata(path).ok()?);
        if parent.main_file != Some(main) {
            return None;
        }
        let mut names = match layer_names(path) {
            Ok(names) => names,
            Err(e) => return Some(Err(e)),
        };
        let held: Vec<Option<&(String, FileId)>> = parent
            .layers
            .as_ref()
            .map_or_else(Vec::new, |l| l.file_ids().collect());
        if held.len() > names.len() {
            return None;
        }
        let layers = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(LAYERS_DIR);
        for (held, name) in held.iter().zip(&names) {
            let (held_name, held_id) = (*held)?;
            let id = FileId::of(&std::fs::metadata(layers.join(name)).ok()?);
            if held_name != name || *held_id != id {
                return None;
            }
        }
        Some(Ok(names.split_off(held.len())))
    }
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
    /// A file this process still holds mapped is not mapped again: a generation sharing it
    /// (by hard link) reads the very same mapping; a copy, another inode, gets its own.
    #[test]
    fn a_file_held_is_mapped_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::nightly::write_files(&three_cards("12"), dir.path()).unwrap();
        let first = MappedIndex::open_file(&path, PersonKey::demo()).unwrap();
        let linked = dir.path().join("linked");
        let copied = dir.path().join("copied");
        let (linked_main, copied_main) = (
            copy_generation(dir.path(), &linked, true),
            copy_generation(dir.path(), &copied, false),
        );
        let shared = MappedIndex::open_file(&linked_main, PersonKey::demo()).unwrap();
        let own = MappedIndex::open_file(&copied_main, PersonKey::demo()).unwrap();
        for ((a, b), c) in first
            .segments
            .iter()
            .zip(&shared.segments)
            .zip(&own.segments)
        {
            assert_eq!(a.bytes.as_ptr(), b.bytes.as_ptr(), "{}", a.file_name);
            assert_ne!(a.bytes.as_ptr(), c.bytes.as_ptr(), "{}", a.file_name);
            assert_eq!(a.bytes.as_ref(), c.bytes.as_ref());
        }
        // The main files were copied in both: their own mappings.
        assert_ne!(first.main.as_ptr(), shared.main.as_ptr());
        assert_eq!(
            first.main_file,
            MappedIndex::open_file(&path, PersonKey::demo())
                .unwrap()
                .main_file
        );
        // Once nothing holds them, the files are mapped anew, and read the same.
        drop((first, shared));
        let again = MappedIndex::open_file(&path, PersonKey::demo()).unwrap();
        again.verify().unwrap();
        assert_eq!(again.segment_count(), own.segment_count());
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
