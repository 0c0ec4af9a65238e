//! The operator's signing key (a private key file, mode 0400, never overwritten, like the
//! person key) and the public keys a server or replica trusts.

use super::{bytes_of_hex, hex_of, SigningError};
use ed25519_dalek::{SigningKey as Secret, VerifyingKey};
use std::fmt;
use std::path::Path;

/// The first word of a signing key file: a person key file (bare hex) given by mistake is
/// refused, not used as a signing key.
const SECRET_PREFIX: &str = "shikaku-ed25519-signing-key";
/// How a public key is written: in the trusted-keys file, in `manifest.sig`, on the console.
const PUBLIC_PREFIX: &str = "ed25519:";

/// The operator's private signing key.
pub struct SigningKey(Secret);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public())
    }
}

impl SigningKey {
    /// Reads a key file `shikaku signing-key new` wrote.
    pub fn load(path: &Path) -> Result<SigningKey, SigningError> {
        let text = std::fs::read_to_string(path).map_err(|source| SigningError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let seed = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .and_then(|rest| bytes_of_hex::<32>(rest.trim()))
            .ok_or_else(|| SigningError::BadKeyFile {
                path: path.to_path_buf(),
                line: 1,
                why: format!("not a signing key (`{SECRET_PREFIX}` and 64 hex digits; `shikaku signing-key new` makes one)"),
            })?;
        Ok(SigningKey(Secret::from_bytes(&seed)))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub(super) fn secret(&self) -> &Secret {
        &self.0
    }
}

/// Writes a new random signing key to `path` (which must not exist), mode 0400, synced;
/// returns its public key, which the servers and replicas are then told to trust.
pub fn new_key_file(path: &Path) -> Result<PublicKey, SigningError> {
    let key = Secret::from_bytes(&crate::keyfile::random_bytes()?);
    let text = format!("{SECRET_PREFIX} {}\n", hex_of(&key.to_bytes()));
    crate::keyfile::write_private(path, &text).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => SigningError::Exists(path.to_path_buf()),
        _ => SigningError::Write {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    Ok(PublicKey(key.verifying_key()))
}

/// A public key, shown as `ed25519:` and 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(super) VerifyingKey);

impl PublicKey {
    /// `ed25519:` and 64 lowercase hex digits; `None` for anything else or for bytes that
    /// are no point of the curve.
    pub fn parse(text: &str) -> Option<PublicKey> {
        let bytes = bytes_of_hex::<32>(text.strip_prefix(PUBLIC_PREFIX)?)?;
        VerifyingKey::from_bytes(&bytes).ok().map(PublicKey)
    }

    pub fn id(&self) -> KeyId {
        KeyId(hex_of(&self.0.to_bytes()[..8]))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", hex_of(&self.0.to_bytes()))
    }
}

/// A key's short name in logs, `/healthz` and `/metrics`: the first 8 bytes of the public
/// key in hex (the start of what `shikaku signing-key new` printed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", self.0)
    }
}

/// The public keys whose signatures this process accepts: a trusted-keys file has one
/// `ed25519:<64 hex>` per line, optionally followed by a comment; `#` lines and blank lines
/// are skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    /// Trusts no key: every generation gets the deep check.
    pub fn none() -> TrustedKeys {
        TrustedKeys(Vec::new())
    }

    pub fn of(keys: impl IntoIterator<Item = PublicKey>) -> TrustedKeys {
        TrustedKeys(keys.into_iter().collect())
    }

    pub fn load(path: &Path) -> Result<TrustedKeys, SigningError> {
        let text = std::fs::read_to_string(path).map_err(|source| SigningError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The keys in `text` (a file at `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<TrustedKeys, SigningError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(word) = line.split_whitespace().next() else {
                continue;
            };
            if word.starts_with('#') {
                continue;
            }
            let key = PublicKey::parse(word).ok_or_else(|| SigningError::BadKeyFile {
                path: path.to_path_buf(),
                line: i + 1,
                why: format!(
                    "{} is not a public key (`ed25519:` and 64 hex digits, as `shikaku signing-key new` printed)",
                    crate::domain::text::quote_raw(word)
                ),
            })?;
            keys.push(key);
        }
        Ok(TrustedKeys(keys))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn find(&self, key: &PublicKey) -> Option<&PublicKey> {
        self.0.iter().find(|k| *k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_signing_key_is_private_reads_back_and_is_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let public = new_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o400);
        assert_eq!(SigningKey::load(&path).unwrap().public(), public);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(matches!(new_key_file(&path), Err(SigningError::Exists(_))));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_ne!(new_key_file(&dir.path().join("other.key")).unwrap(), public);
        assert_eq!(PublicKey::parse(&public.to_string()), Some(public));
    }

    fn check_trusted(text: &str, expected: Result<usize, usize>) {
        let got = TrustedKeys::parse(text, Path::new("trusted"));
        match (got, expected) {
            (Ok(keys), Ok(n)) => assert_eq!(keys.0.len(), n, "{text}"),
            (Err(SigningError::BadKeyFile { line, .. }), Err(l)) => assert_eq!(line, l, "{text}"),
            (got, _) => panic!("{text}: {got:?}"),
        }
    }

    #[test]
    fn trusted_keys_files_checked() {
        let a = Secret::from_bytes(&[1; 32]).verifying_key();
        let a = PublicKey(a).to_string();
        check_trusted("", Ok(0));
        check_trusted(&format!("# builder\n{a} builder-1\n\n{a}\n"), Ok(2));
        check_trusted(
            &format!("{a}\nshikaku-ed25519-signing-key {}\n", "0".repeat(64)),
            Err(2),
        );
        check_trusted(&a.replace("ed25519:", ""), Err(1));
        check_trusted(&a.to_uppercase().replace("ED25519", "ed25519"), Err(1));
        check_trusted(&a[..a.len() - 2], Err(1));
    }

    #[test]
    fn a_person_key_file_is_not_a_signing_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("person.key");
        crate::keyfile::create(&path).unwrap();
        assert!(matches!(
            SigningKey::load(&path),
            Err(SigningError::BadKeyFile { .. })
        ));
    }
}
