//! Signed generations: after its deep read-back check, a builder holding the operator's
//! signing key writes the generation's manifest (every file's size and xxh3) and an ed25519
//! signature over it into the generation directory. A server or replica that trusts the key
//! then checks only that every byte matches the signed manifest (and the index's own
//! checksums); anything else gets the full deep check (`trust.rs`). Keys and their files are
//! in `keys.rs`; FORMAT.md gives the bytes.

mod keys;
mod trust;

pub use keys::{new_key_file, KeyId, PublicKey, SigningKey, TrustedKeys};
pub use trust::{set_trusted_keys, trusted_keys, verify_generation, Trust, Unsigned};

use crate::generations::manifest::Manifest;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use crate::generations::{MANIFEST_FILE, SIGNATURE_FILE};
/// What is signed is this, then the manifest's bytes: a signature made for another purpose
/// with the same key can never pass for a manifest's.
pub const SIGNED_PREFIX: &[u8] = b"shikaku generation manifest v1\n";
pub const SIGNATURE_FORMAT: u32 = 1;
/// A manifest or signature file longer than this is refused unread (a manifest names at most
/// [`crate::generations::manifest::FILES_MAX`] files of about 120 bytes each).
pub const MANIFEST_BYTES_MAX: u64 = 32 << 20;

#[derive(Debug, Error)]
pub enum SigningError {
    #[error("{0} already exists: a signing key is never overwritten (the public key the servers trust would no longer match it); choose a new file name")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line}: {why}")]
    BadKeyFile {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error(transparent)]
    Random(#[from] crate::keyfile::KeyFileError),
    #[error("the manifest of generation {id}: {source}")]
    Manifest {
        id: String,
        #[source]
        source: Box<crate::generations::manifest::ManifestError>,
    },
}

/// `manifest.sig`: who signed, and the signature over [`SIGNED_PREFIX`] and `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    pub format: u32,
    /// Always `ed25519`.
    pub algorithm: String,
    /// The signer's public key, `ed25519:` and 64 lowercase hex digits.
    pub public_key: String,
    /// 128 lowercase hex digits: the 64 signature bytes.
    pub signature: String,
}

/// The bytes a manifest's signature is over.
pub fn signed_bytes(manifest_json: &[u8]) -> Vec<u8> {
    [SIGNED_PREFIX, manifest_json].concat()
}

/// Writes generation directory `dir`'s manifest (its index, segment files and report, as
/// they are now) and its signature by `key`, each synced: the manifest first, so a crash
/// leaves a manifest without a signature (a generation deep-checked on open), never a
/// signature without its manifest. Returns the manifest.
pub fn sign_generation(dir: &Path, id: &str, key: &SigningKey) -> Result<Manifest, SigningError> {
    sign_generation_sharing(dir, id, key, None)
}

/// [`sign_generation`] for a change generation: the files it shares with its parent (in
/// `parent`, signed) take the entries of the parent's manifest, so signing costs what the
/// generation wrote, not the nation's bytes. A parent without a readable manifest shares
/// nothing: every file is hashed.
pub fn sign_generation_sharing(
    dir: &Path,
    id: &str,
    key: &SigningKey,
    parent: Option<&Path>,
) -> Result<Manifest, SigningError> {
    let parent_manifest = parent.and_then(|p| {
        let bytes = std::fs::read(p.join(MANIFEST_FILE)).ok()?;
        Some((p, serde_json::from_slice::<Manifest>(&bytes).ok()?))
    });
    let shared = parent_manifest.as_ref().map(|(p, m)| (*p, m));
    let manifest =
        Manifest::of_dir_sharing(dir, id, shared).map_err(|e| SigningError::Manifest {
            id: id.to_owned(),
            source: Box::new(e),
        })?;
    let json = manifest.to_json();
    let sig_json = signature_file(&json, key);
    write_synced(&dir.join(MANIFEST_FILE), &json)?;
    write_synced(&dir.join(SIGNATURE_FILE), &sig_json)?;
    Ok(manifest)
}

/// The bytes of `manifest.sig` for the manifest bytes `json`, signed by `key`.
pub fn signature_file(json: &[u8], key: &SigningKey) -> Vec<u8> {
    let signature = key.secret().sign(&signed_bytes(json));
    let file = SignatureFile {
        format: SIGNATURE_FORMAT,
        algorithm: "ed25519".into(),
        public_key: key.public().to_string(),
        signature: hex_of(&signature.to_bytes()),
    };
    let mut out = serde_json::to_vec_pretty(&file).expect("a signature serializes");
    out.push(b'\n');
    out
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SigningError> {
    use std::io::Write;
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|source| SigningError::Write {
            path: path.to_path_buf(),
            source,
        })
}

pub(crate) fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `N` bytes from exactly `2N` lowercase hex digits.
pub(crate) fn bytes_of_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * N
        || !digits
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}
