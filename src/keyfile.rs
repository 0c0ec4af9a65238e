//! The person key file: 64 hex digits, the secret of the keyed hash that stands in for
//! individual numbers in an index and in the audit log. `shikaku person-key new` makes one;
//! docs/operations.md says how a key is rotated.

use crate::domain::PersonKey;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KeyFileError {
    #[error("{0} already exists: a person key is never overwritten (the generations and audit logs made with it would become unreadable); choose a new file name")]
    Exists(PathBuf),
    #[error("cannot write the person key file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the OS random source (/dev/urandom): {0}")]
    Random(#[source] std::io::Error),
}

/// A new key from the OS random source.
pub fn random_key() -> Result<PersonKey, KeyFileError> {
    Ok(PersonKey::from_bytes(random_bytes()?))
}

/// 32 bytes from the OS random source: a new secret (a person key, a signing key's seed).
pub fn random_bytes() -> Result<[u8; 32], KeyFileError> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(KeyFileError::Random)?;
    Ok(key)
}

/// Writes a new random key to `path`, which must not exist, readable by its owner only
/// (mode 0400), and synced to disk: a key lost in a crash would leave an index nobody can
/// query by individual number.
pub fn create(path: &Path) -> Result<PersonKey, KeyFileError> {
    let key = random_key()?;
    write_private(path, &format!("{}\n", key.to_hex())).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.to_path_buf()),
        _ => KeyFileError::Write {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    Ok(key)
}

/// Writes `text` to a new file at `path` (an error of kind `AlreadyExists` if there is one:
/// a secret is never overwritten), mode 0400, synced.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_reads_back_and_is_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("person.key");
        let key = create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let read = PersonKey::from_hex(&text).unwrap();
        assert_eq!(read.fingerprint(), key.fingerprint());
        assert_ne!(key.fingerprint(), PersonKey::demo().fingerprint());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400);
        assert!(matches!(create(&path), Err(KeyFileError::Exists(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // Two keys are two keys.
        let other = create(&dir.path().join("other.key")).unwrap();
        assert_ne!(other.fingerprint(), key.fingerprint());
    }
}
