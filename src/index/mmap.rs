//! The one place shikaku maps a file into memory.

use super::Index;
use crate::domain::PersonKey;
use crate::format::{FormatError, SEGMENTS_DIR};
use std::fs::File;
use std::path::Path;

/// An index over a read-only memory map.
pub type MappedIndex = Index<memmap2::Mmap>;

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
    /// checking their structure (not yet their checksums).
    pub fn open_file(path: &Path, key: PersonKey) -> Result<MappedIndex, OpenError> {
        let map = map_file(path).map_err(|e| OpenError::Io(path.display().to_string(), e))?;
        let segments = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(SEGMENTS_DIR);
        Index::open_with(map, key, |entry| {
            let name = entry.segment_file_name();
            map_file(&segments.join(&name)).map_err(|e| FormatError::MissingSegment {
                file: segments.join(&name).display().to_string(),
                error: e.to_string(),
            })
        })
        .map_err(|e| OpenError::Format(path.display().to_string(), e))
    }
}

/// Opening an index file failed: I/O or format, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read index {0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("index {0}: {1}")]
    Format(String, #[source] FormatError),
}
