//! Public-expense certificates in the main file (format version 5): the payer table, the
//! certificates in (payer, recipient) order, their strings, and the person index of the
//! certificates that carry an individual number.

use super::*;
use crate::domain::{Certificate, InstitutionCode, PayerNumber, PersonHash, Sex};

pub const PAYER_ENTRY_BYTES: usize = 24;
pub const CERTIFICATE_BYTES: usize = 48;
/// A person index entry: person hash (16) and certificate index (u32).
pub const CERT_PERSON_BYTES: usize = 20;
/// An institution code in the strings: its 10 ASCII digits.
pub const INSTITUTION_BYTES: usize = 10;

/// Flags in byte `CERT_FLAGS` of a certificate.
pub const CERT_HAS_PERSON: u8 = 1;
pub const CERT_IDENTITY_UNVERIFIED: u8 = 2;
pub const CERT_HAS_COPAY_LIMIT: u8 = 4;
const CERT_FLAGS_ALL: u8 = CERT_HAS_PERSON | CERT_IDENTITY_UNVERIFIED | CERT_HAS_COPAY_LIMIT;

// Byte offsets inside a certificate.
pub const CERT_PERSON: usize = 0;
pub const CERT_HEAP: usize = 16;
pub const CERT_RECIPIENT_LEN: usize = 20;
pub const CERT_INSTITUTIONS: usize = 21;
pub const CERT_NAME_LEN: usize = 22;
pub const CERT_KANA_LEN: usize = 24;
pub const CERT_SEX: usize = 26;
pub const CERT_FLAGS: usize = 27;
pub const CERT_PAYER: usize = 28;
pub const CERT_BIRTH: usize = 32;
pub const CERT_FROM: usize = 36;
pub const CERT_TO: usize = 40;
pub const CERT_COPAY_LIMIT: usize = 44;
const _: () = assert!(CERT_COPAY_LIMIT + 4 == CERTIFICATE_BYTES);
// A recipient number is at most 20 characters of at most 4 UTF-8 bytes each.
const _: () = assert!(crate::domain::RECIPIENT_MAX_CHARS * 4 <= u8::MAX as usize);
const _: () = assert!(crate::domain::MAX_INSTITUTIONS <= u8::MAX as usize);

/// One row of the payer table, sorted by payer number. Its name lies in the certificate
/// strings; its certificates are `first..first + count` of the certificate table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayerEntry {
    pub number: PayerNumber,
    pub name_offset: u32,
    pub name_bytes: u32,
    pub first: u32,
    pub count: u32,
}

impl PayerEntry {
    pub fn encode(&self) -> [u8; PAYER_ENTRY_BYTES] {
        let mut b = [0u8; PAYER_ENTRY_BYTES];
        b[0..8].copy_from_slice(&self.number.to_key());
        b[8..12].copy_from_slice(&self.name_offset.to_le_bytes());
        b[12..16].copy_from_slice(&self.name_bytes.to_le_bytes());
        b[16..20].copy_from_slice(&self.first.to_le_bytes());
        b[20..24].copy_from_slice(&self.count.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<PayerEntry, FormatError> {
        let key: [u8; 8] = b[0..8].try_into().expect("8 bytes");
        let number = PayerNumber::from_key(key)
            .ok_or_else(|| FormatError::Malformed("payer number is not valid".into()))?;
        Ok(PayerEntry {
            number,
            name_offset: u32_at(b, 8),
            name_bytes: u32_at(b, 12),
            first: u32_at(b, 16),
            count: u32_at(b, 20),
        })
    }
}

/// A certificate in its fixed 48-byte form. Strings lie in the certificate strings at
/// `heap_offset`, in the order recipient, name, name_kana, then the institutions (10 ASCII
/// digits each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateEntry {
    pub person: Option<PersonHash>,
    pub heap_offset: u32,
    pub recipient_bytes: u8,
    pub institution_count: u8,
    pub name_bytes: u16,
    pub kana_bytes: u16,
    pub sex: Option<Sex>,
    pub identity_unverified: bool,
    pub payer: u32,
    pub birthdate: Date,
    pub valid_from: Date,
    /// Inclusive.
    pub valid_to: Option<Date>,
    pub copay_limit_yen: Option<u32>,
}

impl CertificateEntry {
    pub fn encode(&self) -> [u8; CERTIFICATE_BYTES] {
        let mut b = [0u8; CERTIFICATE_BYTES];
        let mut flags = 0;
        if let Some(p) = self.person {
            b[CERT_PERSON..CERT_PERSON + 16].copy_from_slice(&p.0);
            flags |= CERT_HAS_PERSON;
        }
        if self.identity_unverified {
            flags |= CERT_IDENTITY_UNVERIFIED;
        }
        if self.copay_limit_yen.is_some() {
            flags |= CERT_HAS_COPAY_LIMIT;
        }
        b[CERT_HEAP..CERT_HEAP + 4].copy_from_slice(&self.heap_offset.to_le_bytes());
        b[CERT_RECIPIENT_LEN] = self.recipient_bytes;
        b[CERT_INSTITUTIONS] = self.institution_count;
        b[CERT_NAME_LEN..CERT_NAME_LEN + 2].copy_from_slice(&self.name_bytes.to_le_bytes());
        b[CERT_KANA_LEN..CERT_KANA_LEN + 2].copy_from_slice(&self.kana_bytes.to_le_bytes());
        b[CERT_SEX] = self.sex.map_or(0, Sex::code);
        b[CERT_FLAGS] = flags;
        b[CERT_PAYER..CERT_PAYER + 4].copy_from_slice(&self.payer.to_le_bytes());
        b[CERT_BIRTH..CERT_BIRTH + 4].copy_from_slice(&self.birthdate.days().to_le_bytes());
        b[CERT_FROM..CERT_FROM + 4].copy_from_slice(&self.valid_from.days().to_le_bytes());
        let to = self.valid_to.map_or(NO_DATE, Date::days);
        b[CERT_TO..CERT_TO + 4].copy_from_slice(&to.to_le_bytes());
        let limit = self.copay_limit_yen.unwrap_or(0);
        b[CERT_COPAY_LIMIT..CERT_COPAY_LIMIT + 4].copy_from_slice(&limit.to_le_bytes());
        b
    }

    /// Decodes and checks the codes: sex, flags, dates in order.
    pub fn decode(b: &[u8]) -> Result<CertificateEntry, FormatError> {
        let bad = |m: String| FormatError::Malformed(m);
        let flags = b[CERT_FLAGS];
        if flags & !CERT_FLAGS_ALL != 0 {
            return Err(bad(format!("flags {flags:#x} hold unknown bits")));
        }
        let sex = match b[CERT_SEX] {
            0 => None,
            code => Some(Sex::from_code(code).ok_or_else(|| bad(format!("sex {code}")))?),
        };
        let valid_from = Date::from_days(i32_at(b, CERT_FROM));
        let valid_to = match i32_at(b, CERT_TO) {
            NO_DATE => None,
            days => Some(Date::from_days(days)),
        };
        if valid_to.is_some_and(|t| t < valid_from) {
            return Err(bad("valid_to is before valid_from".into()));
        }
        let person = (flags & CERT_HAS_PERSON != 0).then(|| {
            PersonHash(
                b[CERT_PERSON..CERT_PERSON + 16]
                    .try_into()
                    .expect("16 bytes"),
            )
        });
        Ok(CertificateEntry {
            person,
            heap_offset: u32_at(b, CERT_HEAP),
            recipient_bytes: b[CERT_RECIPIENT_LEN],
            institution_count: b[CERT_INSTITUTIONS],
            name_bytes: u16_at(b, CERT_NAME_LEN),
            kana_bytes: u16_at(b, CERT_KANA_LEN),
            sex,
            identity_unverified: flags & CERT_IDENTITY_UNVERIFIED != 0,
            payer: u32_at(b, CERT_PAYER),
            birthdate: Date::from_days(i32_at(b, CERT_BIRTH)),
            valid_from,
            valid_to,
            copay_limit_yen: (flags & CERT_HAS_COPAY_LIMIT != 0)
                .then(|| u32_at(b, CERT_COPAY_LIMIT)),
        })
    }

    /// Bytes of its strings in the certificate strings.
    pub fn strings_bytes(&self) -> u64 {
        u64::from(self.recipient_bytes)
            + u64::from(self.name_bytes)
            + u64::from(self.kana_bytes)
            + u64::from(self.institution_count) * INSTITUTION_BYTES as u64
    }
}

/// A certificate as the build gives it to the writer.
#[derive(Debug, Clone, Copy)]
pub struct CertificateInput<'a> {
    pub certificate: &'a Certificate,
    pub person: Option<PersonHash>,
    pub identity_unverified: bool,
}

/// The four certificate sections, encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedKohi {
    pub payers: Vec<u8>,
    pub certificates: Vec<u8>,
    pub strings: Vec<u8>,
    pub persons: Vec<u8>,
    pub payer_count: u32,
    pub certificate_count: u64,
}

/// Lays out `payers` (number and name, any order) and their `certificates` (any order): the
/// payers sorted by number, the certificates by (payer, recipient, the rest), each payer's
/// certificates contiguous, and the person index sorted by (hash, certificate).
pub fn encode_kohi(
    payers: &[(PayerNumber, &str)],
    certificates: &[CertificateInput<'_>],
) -> Result<EncodedKohi, FormatError> {
    let bad = |m: String| FormatError::Malformed(m);
    let mut payers: Vec<(PayerNumber, &str)> = payers.to_vec();
    payers.sort_unstable_by_key(|p| p.0);
    if let Some(w) = payers.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(bad(format!("payer {} appears twice", w[0].0)));
    }
    let mut order: Vec<&CertificateInput<'_>> = certificates.iter().collect();
    order.sort_by(|a, b| {
        (a.certificate.payer, &a.certificate.recipient, a.certificate).cmp(&(
            b.certificate.payer,
            &b.certificate.recipient,
            b.certificate,
        ))
    });
    let u32_of = |n: usize, what: &str| {
        u32::try_from(n).map_err(|_| bad(format!("{what} does not fit 32 bits")))
    };
    let mut out = EncodedKohi {
        payer_count: u32_of(payers.len(), "payer count")?,
        certificate_count: order.len() as u64,
        ..EncodedKohi::default()
    };
    let mut next = 0usize;
    let mut persons: Vec<([u8; 16], u32)> = Vec::new();
    for (p, (number, name)) in payers.iter().enumerate() {
        let name_offset = u32_of(out.strings.len(), "certificate strings")?;
        out.strings.extend_from_slice(name.as_bytes());
        let first = next;
        while let Some(c) = order.get(next).filter(|c| c.certificate.payer == *number) {
            let index = u32_of(next, "certificate count")?;
            if let Some(h) = c.person {
                persons.push((h.0, index));
            }
            let entry = certificate_entry(c, p as u32, &mut out.strings)?;
            out.certificates.extend_from_slice(&entry.encode());
            next += 1;
        }
        let entry = PayerEntry {
            number: *number,
            name_offset,
            name_bytes: u32_of(name.len(), "payer name")?,
            first: u32_of(first, "certificate count")?,
            count: u32_of(next - first, "certificate count")?,
        };
        out.payers.extend_from_slice(&entry.encode());
    }
    if let Some(c) = order.get(next) {
        return Err(bad(format!(
            "a certificate of payer {} whose payer is not listed",
            c.certificate.payer
        )));
    }
    persons.sort_unstable();
    for (hash, index) in persons {
        out.persons.extend_from_slice(&hash);
        out.persons.extend_from_slice(&index.to_le_bytes());
    }
    u32_of(out.strings.len(), "certificate strings")?;
    Ok(out)
}

fn certificate_entry(
    c: &CertificateInput<'_>,
    payer: u32,
    strings: &mut Vec<u8>,
) -> Result<CertificateEntry, FormatError> {
    let cert = c.certificate;
    let too_long = |what: &str| FormatError::Malformed(format!("certificate {what} too long"));
    let heap_offset = u32::try_from(strings.len()).map_err(|_| too_long("strings"))?;
    strings.extend_from_slice(cert.recipient.as_bytes());
    strings.extend_from_slice(cert.name.as_bytes());
    strings.extend_from_slice(cert.name_kana.as_bytes());
    for i in &cert.institutions {
        strings.extend_from_slice(i.as_str().as_bytes());
    }
    Ok(CertificateEntry {
        person: c.person,
        heap_offset,
        recipient_bytes: u8::try_from(cert.recipient.len()).map_err(|_| too_long("recipient"))?,
        institution_count: u8::try_from(cert.institutions.len())
            .map_err(|_| too_long("institution list"))?,
        name_bytes: u16::try_from(cert.name.len()).map_err(|_| too_long("name"))?,
        kana_bytes: u16::try_from(cert.name_kana.len()).map_err(|_| too_long("name_kana"))?,
        sex: cert.sex,
        identity_unverified: c.identity_unverified,
        payer,
        birthdate: cert.birthdate,
        valid_from: cert.valid_from,
        valid_to: cert.valid_to,
        copay_limit_yen: cert.copay_limit_yen,
    })
}

/// An institution code stored in the strings, if its 10 bytes are one.
pub fn decode_institution(b: &[u8]) -> Option<InstitutionCode> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| InstitutionCode::parse(s).ok())
}
