//! What a server or replica checks before it serves a generation, decided once per
//! generation: a valid signature by a key this process trusts over a manifest that names
//! these files means the builder deep-checked these bytes, so only checksums are checked
//! (every byte against the signed manifest, and the index's own checksums); anything else
//! (no signature, an unknown key, a bad signature) gets the full deep check. A manifest whose
//! files differ from the generation's, under a good signature, is refused.

use super::{bytes_of_hex, PublicKey, SignatureFile, TrustedKeys, MANIFEST_BYTES_MAX};
use super::{KeyId, MANIFEST_FILE, SIGNATURE_FILE, SIGNATURE_FORMAT};
use crate::format::{FormatError, SEGMENTS_DIR};
use crate::generations::manifest::{parse_hex, Manifest};
use crate::generations::INDEX_FILE;
use crate::index::{ExpectedFiles, FileHash, MappedIndex, VerifiedSegments, Verify};
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// How a generation was verified before serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Signed by this trusted key: checksums checked here, the structure by the builder.
    Signed(KeyId),
    /// Deep-checked here, and why no signature was taken.
    Unsigned(Unsigned),
}

/// Why a generation was not taken as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsigned {
    /// This process trusts no key (`serve --trusted-keys` not given).
    NoTrustedKeys,
    /// The generation directory has no `manifest.sig` (or no manifest), or the index is not
    /// from a directory.
    NoSignature,
    /// Signed by a key this process does not trust.
    UnknownKey(KeyId),
    /// The signature file is unreadable or malformed, or does not verify.
    BadSignature(String),
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::Signed(key) => write!(f, "signed by trusted key {key}: checksums checked"),
            Trust::Unsigned(why) => write!(f, "deep-checked: {why}"),
        }
    }
}

impl fmt::Display for Unsigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsigned::NoTrustedKeys => f.write_str("no trusted keys configured"),
            Unsigned::NoSignature => f.write_str("not signed"),
            Unsigned::UnknownKey(key) => write!(f, "signed by {key}, a key not trusted here"),
            Unsigned::BadSignature(why) => write!(f, "bad signature: {why}"),
        }
    }
}

impl Trust {
    /// A short word for `/healthz` and `/metrics`: `signed` or `deep`.
    pub fn label(&self) -> &'static str {
        match self {
            Trust::Signed(_) => "signed",
            Trust::Unsigned(_) => "deep",
        }
    }

    /// The trusted key, when signed.
    pub fn key(&self) -> Option<&KeyId> {
        match self {
            Trust::Signed(key) => Some(key),
            Trust::Unsigned(_) => None,
        }
    }
}

static TRUSTED: OnceLock<TrustedKeys> = OnceLock::new();

/// The keys this process trusts from now on (`serve --trusted-keys`): set once, at start.
/// Returns false if they were set already.
pub fn set_trusted_keys(keys: TrustedKeys) -> bool {
    TRUSTED.set(keys).is_ok()
}

/// The keys this process trusts; none unless [`set_trusted_keys`] said.
pub fn trusted_keys() -> &'static TrustedKeys {
    static NONE: OnceLock<TrustedKeys> = OnceLock::new();
    TRUSTED
        .get()
        .unwrap_or_else(|| NONE.get_or_init(TrustedKeys::none))
}

/// Verifies `index` as its signature allows: checksums only if it is signed by a key of
/// `trusted` over a manifest of these files, else the full deep check; segment files `known`
/// holds are taken as verified either way.
pub fn verify_generation(
    index: &MappedIndex,
    trusted: &TrustedKeys,
    known: &VerifiedSegments,
) -> Result<(Trust, Verify), FormatError> {
    // Cold, the pages come in read ahead rather than a fault at a time.
    index.read_ahead(known);
    match signed_manifest(index.dir(), trusted) {
        Ok((key, manifest)) => {
            let expected = expected_files(&manifest, index.generation())?;
            let v = index.verify_checksums(&expected, known)?;
            Ok((Trust::Signed(key), v))
        }
        Err(why) => Ok((Trust::Unsigned(why), index.verify_new(known)?)),
    }
}

/// The manifest of the generation in `dir`, if a key of `trusted` signed it.
fn signed_manifest(
    dir: Option<&Path>,
    trusted: &TrustedKeys,
) -> Result<(KeyId, Manifest), Unsigned> {
    if trusted.is_empty() {
        return Err(Unsigned::NoTrustedKeys);
    }
    let dir = dir.ok_or(Unsigned::NoSignature)?;
    let sig_path = dir.join(SIGNATURE_FILE);
    if !sig_path.exists() {
        return Err(Unsigned::NoSignature);
    }
    let bad = |why: String| Unsigned::BadSignature(why);
    let sig_bytes = read_small(&sig_path).map_err(bad)?;
    let sig: SignatureFile = serde_json::from_slice(&sig_bytes)
        .map_err(|e| bad(format!("{SIGNATURE_FILE} is not a signature file: {e}")))?;
    if sig.format != SIGNATURE_FORMAT || sig.algorithm != "ed25519" {
        return Err(bad(format!(
            "{SIGNATURE_FILE} is format {} with algorithm {}; this shikaku reads format {SIGNATURE_FORMAT}, ed25519",
            sig.format,
            crate::domain::text::quote_raw(&sig.algorithm)
        )));
    }
    let public = PublicKey::parse(&sig.public_key)
        .ok_or_else(|| bad(format!("{SIGNATURE_FILE} names no valid public key")))?;
    let key = trusted
        .find(&public)
        .ok_or_else(|| Unsigned::UnknownKey(public.id()))?;
    let signature = bytes_of_hex::<64>(&sig.signature)
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
        .ok_or_else(|| bad("the signature is not 128 hex digits".into()))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let json = read_small(&manifest_path).map_err(bad)?;
    key.0
        .verify_strict(&super::signed_bytes(&json), &signature)
        .map_err(|_| bad(format!("{MANIFEST_FILE} is not what {} signed", key.id())))?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| bad(format!("the signed {MANIFEST_FILE} does not parse: {e}")))?;
    Ok((key.id(), manifest))
}

fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MANIFEST_BYTES_MAX + 1).read_to_end(&mut out))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if out.len() as u64 > MANIFEST_BYTES_MAX {
        return Err(format!(
            "{} is longer than {MANIFEST_BYTES_MAX} bytes",
            path.display()
        ));
    }
    Ok(out)
}

/// The files a validly signed manifest promises: it must be of generation `id` and name the
/// main file; its segment files are checked against the index's by `verify_checksums`.
fn expected_files(manifest: &Manifest, id: &str) -> Result<ExpectedFiles, FormatError> {
    let refused =
        |why: String| FormatError::Malformed(format!("the signed {MANIFEST_FILE}: {why}"));
    if manifest.format != crate::generations::manifest::MANIFEST_FORMAT {
        return Err(refused(format!(
            "format {}, this shikaku reads format {}",
            manifest.format,
            crate::generations::manifest::MANIFEST_FORMAT
        )));
    }
    if manifest.generation != id {
        return Err(refused(format!(
            "it is of generation {}, the index is {id}",
            crate::domain::text::quote_raw(&manifest.generation)
        )));
    }
    let hash = |f: &crate::generations::manifest::FileEntry| {
        parse_hex(&f.xxh3)
            .map(|xxh3| FileHash {
                bytes: f.bytes,
                xxh3,
            })
            .ok_or_else(|| refused(format!("{} has no valid xxh3", f.path)))
    };
    let main = manifest
        .files
        .iter()
        .find(|f| f.path == INDEX_FILE)
        .ok_or_else(|| refused(format!("it does not name {INDEX_FILE}")))?;
    let mut segments = std::collections::HashMap::new();
    for (name, f) in manifest.segments() {
        if segments.insert(name.to_owned(), hash(f)?).is_some() {
            return Err(refused(format!("{SEGMENTS_DIR}/{name} appears twice")));
        }
    }
    Ok(ExpectedFiles {
        main: hash(main)?,
        segments,
    })
}
