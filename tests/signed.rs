//! Signed generations: a generation signed by a trusted key is verified by its checksums
//! only; whatever else (a flipped byte, an untrusted or absent signature over a crafted file,
//! a good signature over a manifest of other files) is refused or gets the full deep check.
//! The invariant (ARCHITECTURE.md): a served generation was deep-checked by this host or
//! signed by a trusted key after the builder's deep check.

use shikaku::domain::PersonKey;
use shikaku::format::*;
use shikaku::index::{IndexFiles, MappedIndex, VerifiedSegments};
use shikaku::signing::{
    new_key_file, sign_generation, signature_file, verify_generation, PublicKey, SigningKey, Trust,
    TrustedKeys, Unsigned, MANIFEST_FILE, SIGNATURE_FILE,
};
use std::path::{Path, PathBuf};

fn key(dir: &Path, name: &str) -> (SigningKey, PublicKey) {
    let path = dir.join(name);
    let public = new_key_file(&path).unwrap();
    (SigningKey::load(&path).unwrap(), public)
}

/// `files` written as generation `id` under `root`; the index file's path.
fn write(files: &IndexFiles<Vec<u8>>, root: &Path, id: &str) -> PathBuf {
    shikaku::nightly::write_files(files, &root.join(id)).unwrap()
}

fn open(path: &Path) -> MappedIndex {
    MappedIndex::open_file(path, PersonKey::demo()).unwrap()
}

/// Verifies as a server trusting `trusted` does, with nothing known verified before.
fn verify(path: &Path, trusted: &[PublicKey]) -> Result<Trust, FormatError> {
    let trusted = TrustedKeys::of(trusted.iter().copied());
    verify_generation(&open(path), &trusted, &VerifiedSegments::default()).map(|(t, _)| t)
}

fn sample() -> IndexFiles<Vec<u8>> {
    shikaku::testing::three_cards("12")
}

/// The sample with its two persons swapped, every checksum recomputed: only the deep check
/// (persons in hash order) refuses it.
fn crafted() -> IndexFiles<Vec<u8>> {
    let mut files = sample();
    let main = &mut files.main;
    let (count, table) = (u32_at(main, 88) as usize, u64_at(main, 96) as usize);
    let entry_at = (0..count)
        .map(|i| table + i * SECTION_ENTRY_BYTES)
        .find(|&at| SectionEntry::decode(&main[at..]).kind == SectionKind::Persons as u32)
        .unwrap();
    let e = SectionEntry::decode(&main[entry_at..]);
    let persons = e.offset as usize..(e.offset + e.bytes) as usize;
    assert_eq!(persons.len(), 2 * PERSON_ENTRY_BYTES, "two persons to swap");
    let (a, b) = main[persons.clone()].split_at_mut(PERSON_ENTRY_BYTES);
    a.swap_with_slice(b);
    let sum = xxh3(&main[persons]);
    main[entry_at + 24..entry_at + 32].copy_from_slice(&sum.to_le_bytes());
    let table_end = table + count * SECTION_ENTRY_BYTES;
    let sum = xxh3(&main[table..table_end]);
    main[104..112].copy_from_slice(&sum.to_le_bytes());
    let sum = xxh3(&main[..120]);
    main[120..128].copy_from_slice(&sum.to_le_bytes());
    files
}

fn refused(got: Result<Trust, FormatError>, says: &str) {
    let err = got.expect_err("refused");
    assert!(err.to_string().contains(says), "{err}");
}

#[test]
fn a_generation_signed_by_a_trusted_key_is_checked_by_checksums_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (signer, public) = key(tmp.path(), "signing.key");
    let (_, other) = key(tmp.path(), "other.key");
    let path = write(&sample(), tmp.path(), "g-test");
    let dir = path.parent().unwrap();
    // Unsigned: deep-checked, whatever is trusted.
    assert_eq!(
        verify(&path, &[public]).unwrap(),
        Trust::Unsigned(Unsigned::NoSignature)
    );
    sign_generation(dir, "g-test", &signer).unwrap();
    assert_eq!(
        verify(&path, &[other, public]).unwrap(),
        Trust::Signed(public.id())
    );
    assert_eq!(
        verify(&path, &[other]).unwrap(),
        Trust::Unsigned(Unsigned::UnknownKey(public.id()))
    );
    assert_eq!(
        verify(&path, &[]).unwrap(),
        Trust::Unsigned(Unsigned::NoTrustedKeys)
    );
    // The signed path checked the files as the deep check found them: a segment known
    // verified by its file is not checked again, signed or not.
    let known = VerifiedSegments::default();
    let trusted = TrustedKeys::of([public]);
    let (_, first) = verify_generation(&open(&path), &trusted, &known).unwrap();
    let (_, again) = verify_generation(&open(&path), &trusted, &known).unwrap();
    assert_eq!((first.segments_verified, again.segments_known), (1, 1));
}

#[test]
fn a_flipped_byte_in_a_signed_generation_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (signer, public) = key(tmp.path(), "signing.key");
    let path = write(&sample(), tmp.path(), "g-test");
    let dir = path.parent().unwrap();
    sign_generation(dir, "g-test", &signer).unwrap();
    let seg = std::fs::read_dir(dir.join(SEGMENTS_DIR))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for (file, at) in [(seg.as_path(), 100), (path.as_path(), 200)] {
        let good = std::fs::read(file).unwrap();
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        std::fs::write(file, &bad).unwrap();
        refused(verify(&path, &[public]), "checksum mismatch");
        std::fs::write(file, &good).unwrap();
    }
    assert_eq!(
        verify(&path, &[public]).unwrap(),
        Trust::Signed(public.id())
    );
}

#[test]
fn a_crafted_file_signed_by_an_untrusted_key_gets_the_deep_check_and_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (trusted_signer, trusted) = key(tmp.path(), "trusted.key");
    let (stranger, _) = key(tmp.path(), "stranger.key");
    let path = write(&crafted(), tmp.path(), "g-test");
    let dir = path.parent().unwrap();
    let deep = open(&path).verify().unwrap_err();
    assert!(deep.to_string().contains("not in hash order"), "{deep}");
    for unsigned in [&[][..], &[trusted][..]] {
        refused(verify(&path, unsigned), "not in hash order");
    }
    sign_generation(dir, "g-test", &stranger).unwrap();
    refused(verify(&path, &[trusted]), "not in hash order");
    // A bad signature: the stranger's manifest.sig naming the trusted key.
    let sig = std::fs::read_to_string(dir.join(SIGNATURE_FILE)).unwrap();
    let stranger_public = stranger.public().to_string();
    std::fs::write(
        dir.join(SIGNATURE_FILE),
        sig.replace(&stranger_public, &trusted.to_string()),
    )
    .unwrap();
    let index = open(&path);
    let got = verify_generation(
        &index,
        &TrustedKeys::of([trusted]),
        &VerifiedSegments::default(),
    );
    refused(got.map(|(t, _)| t), "not in hash order");
    // What the trusted key vouches for is the builder's deep check, which refused this file.
    assert!(open(&path).verify_structure().is_err());
    drop(trusted_signer);
}

#[test]
fn a_good_signature_over_a_manifest_of_other_files_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (signer, public) = key(tmp.path(), "signing.key");
    let path = write(&crafted(), tmp.path(), "g-test");
    let dir = path.parent().unwrap();
    // The signed manifest of the good sample, beside the crafted files.
    let good_path = write(&sample(), &tmp.path().join("good"), "g-test");
    sign_generation(good_path.parent().unwrap(), "g-test", &signer).unwrap();
    for f in [MANIFEST_FILE, SIGNATURE_FILE] {
        std::fs::copy(good_path.parent().unwrap().join(f), dir.join(f)).unwrap();
    }
    refused(verify(&path, &[public]), "checksum mismatch");
    // A manifest signed for another generation id.
    let other = write(&sample(), &tmp.path().join("other"), "g-test");
    let manifest = shikaku::fleet::Manifest::of_dir(other.parent().unwrap(), "g-other").unwrap();
    let json = manifest.to_json();
    std::fs::write(dir.join(MANIFEST_FILE), &json).unwrap();
    std::fs::write(dir.join(SIGNATURE_FILE), signature_file(&json, &signer)).unwrap();
    refused(verify(&path, &[public]), "is of generation");
    // A manifest naming one segment file more than the index has.
    let mut more = shikaku::fleet::Manifest::of_dir(good_path.parent().unwrap(), "g-test").unwrap();
    let mut extra = more.files[1].clone();
    extra.path = "segments/99999999-0000000000000000.seg".into();
    more.files.push(extra);
    let json = more.to_json();
    std::fs::write(good_path.parent().unwrap().join(MANIFEST_FILE), &json).unwrap();
    std::fs::write(
        good_path.parent().unwrap().join(SIGNATURE_FILE),
        signature_file(&json, &signer),
    )
    .unwrap();
    refused(verify(&good_path, &[public]), "names 2 segment files");
}
