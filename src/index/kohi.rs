//! Public-expense certificates in the main file: the payer table (decoded and checked at
//! open, it is small), certificates found by (payer, recipient) with a binary search inside
//! the payer's run, and by person through the certificate person index; `CertificateView`
//! reads one in place. `verify_kohi` checks what only a pass over the sections can.

use super::open::{malformed, within};
use super::prefetch::prefetch;
use super::{Index, Section};
use crate::domain::{covers_inclusive, Date, InstitutionCode, PayerNumber, PersonHash, Sex};
use crate::format::*;
use std::ops::Range;

/// A payer as the reader keeps it.
#[derive(Debug, Clone)]
pub struct PayerInfo {
    pub number: PayerNumber,
    pub name: String,
    /// Its certificates in the certificate table.
    pub certificates: Range<usize>,
}

/// The certificate sections as `open` checked them.
#[derive(Debug, Clone, Default)]
pub(crate) struct KohiSections {
    payers: Vec<PayerInfo>,
    certificates: Range<usize>,
    strings: Range<usize>,
    persons: Range<usize>,
}

/// Checks the certificate sections against the header and each other, and decodes the payer
/// table: every later read stays inside the file.
pub(crate) fn open_kohi(
    b: &[u8],
    header: &Header,
    sections: &[Section],
) -> Result<KohiSections, FormatError> {
    let section = |kind: SectionKind| sections[kind.position()].range.clone();
    let (payers, certificates) = (
        section(SectionKind::Payers),
        section(SectionKind::Certificates),
    );
    let (strings, persons) = (
        section(SectionKind::CertificateStrings),
        section(SectionKind::CertificatePersons),
    );
    if payers.len() as u64 != u64::from(header.payer_count) * PAYER_ENTRY_BYTES as u64 {
        return Err(malformed(format!(
            "header: payer count {} does not match the payers section's {} bytes",
            header.payer_count,
            payers.len()
        )));
    }
    let cert_bytes = header
        .certificate_count
        .checked_mul(CERTIFICATE_BYTES as u64)
        .filter(|&n| n == certificates.len() as u64);
    if cert_bytes.is_none() {
        return Err(malformed(format!(
            "header: certificate count {} does not match the certificates section's {} bytes",
            header.certificate_count,
            certificates.len()
        )));
    }
    if persons.len() % CERT_PERSON_BYTES != 0
        || (persons.len() / CERT_PERSON_BYTES) as u64 > header.certificate_count
    {
        return Err(malformed(format!(
            "section table: the certificate persons section's {} bytes are not whole entries, one at most per certificate",
            persons.len()
        )));
    }
    let mut infos = Vec::with_capacity(header.payer_count as usize);
    let mut next = 0u64;
    for (i, chunk) in b[payers].chunks_exact(PAYER_ENTRY_BYTES).enumerate() {
        let at = |m: String| malformed(format!("payer table entry {i}: {m}"));
        let e =
            PayerEntry::decode(chunk).map_err(|e| within(&format!("payer table entry {i}"), e))?;
        let name = u64::from(e.name_offset)
            .checked_add(u64::from(e.name_bytes))
            .filter(|&end| end <= strings.len() as u64)
            .and_then(|end| {
                let r = strings.start + e.name_offset as usize..strings.start + end as usize;
                std::str::from_utf8(&b[r]).ok()
            })
            .ok_or_else(|| at("name is not text inside the certificate strings".into()))?;
        if u64::from(e.first) != next {
            return Err(at(format!(
                "certificates start at {}, not at {next} where the previous payer's end",
                e.first
            )));
        }
        next += u64::from(e.count);
        if next > header.certificate_count {
            return Err(at(format!(
                "certificates run past the {} certificates",
                header.certificate_count
            )));
        }
        if infos
            .last()
            .is_some_and(|p: &PayerInfo| p.number >= e.number)
        {
            return Err(at("the payer table is not sorted".into()));
        }
        infos.push(PayerInfo {
            number: e.number,
            name: name.to_owned(),
            certificates: e.first as usize..next as usize,
        });
    }
    if next != header.certificate_count {
        return Err(malformed(format!(
            "payer table: {next} certificates, the header says {}",
            header.certificate_count
        )));
    }
    Ok(KohiSections {
        payers: infos,
        certificates,
        strings,
        persons,
    })
}

/// A certificate borrowed from the index bytes. Field reads decode on demand; a string that
/// would leave the strings (possible only in a file not yet verified) reads as empty.
#[derive(Clone, Copy)]
pub struct CertificateView<'a> {
    payer: &'a PayerInfo,
    cert: &'a [u8],
    strings: &'a [u8],
    index: usize,
}

impl std::fmt::Debug for CertificateView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateView({} #{})", self.payer.number, self.index)
    }
}

impl<'a> CertificateView<'a> {
    pub fn payer(&self) -> &'a PayerInfo {
        self.payer
    }

    /// Its position in the certificate table.
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn person(&self) -> Option<PersonHash> {
        (self.cert[CERT_FLAGS] & CERT_HAS_PERSON != 0).then(|| {
            PersonHash(
                self.cert[CERT_PERSON..CERT_PERSON + 16]
                    .try_into()
                    .expect("16 bytes"),
            )
        })
    }

    pub fn identity_unverified(&self) -> bool {
        self.cert[CERT_FLAGS] & CERT_IDENTITY_UNVERIFIED != 0
    }

    fn lens(&self) -> [usize; 4] {
        [
            usize::from(self.cert[CERT_RECIPIENT_LEN]),
            usize::from(u16_at(self.cert, CERT_NAME_LEN)),
            usize::from(u16_at(self.cert, CERT_KANA_LEN)),
            usize::from(self.cert[CERT_INSTITUTIONS]) * INSTITUTION_BYTES,
        ]
    }

    /// String `n` of the four (recipient, name, kana, institutions) as bytes.
    fn part(&self, n: usize) -> &'a [u8] {
        let lens = self.lens();
        let start = u32_at(self.cert, CERT_HEAP) as usize + lens[..n].iter().sum::<usize>();
        self.strings
            .get(start..start.saturating_add(lens[n]))
            .unwrap_or_default()
    }

    fn text(&self, n: usize) -> &'a str {
        std::str::from_utf8(self.part(n)).unwrap_or("")
    }

    pub fn recipient(&self) -> &'a str {
        self.text(0)
    }

    /// The recipient number's, name's and reading's bytes, not validated again: UTF-8 in a
    /// verified index (`verify_kohi`), for the answer writer, as `RecordView`'s `*_utf8`.
    pub fn recipient_utf8(&self) -> &'a [u8] {
        self.part(0)
    }

    pub fn name_utf8(&self) -> &'a [u8] {
        self.part(1)
    }

    pub fn name_kana_utf8(&self) -> &'a [u8] {
        self.part(2)
    }

    pub fn name(&self) -> &'a str {
        self.text(1)
    }

    pub fn name_kana(&self) -> &'a str {
        self.text(2)
    }

    /// The designated institutions, each as its 10 digits.
    pub fn institutions(&self) -> impl Iterator<Item = &'a str> {
        self.part(3)
            .chunks_exact(INSTITUTION_BYTES)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
    }

    /// Whether `institution` may use the certificate: any when none is named.
    pub fn admits(&self, institution: InstitutionCode) -> bool {
        let mut named = self.institutions().peekable();
        named.peek().is_none() || named.any(|c| c == institution.as_str())
    }

    pub fn sex(&self) -> Option<Sex> {
        Sex::from_code(self.cert[CERT_SEX])
    }

    pub fn birthdate(&self) -> Date {
        Date::from_days(i32_at(self.cert, CERT_BIRTH))
    }

    pub fn valid_from(&self) -> Date {
        Date::from_days(i32_at(self.cert, CERT_FROM))
    }

    /// Inclusive; `None`: open-ended.
    pub fn valid_to(&self) -> Option<Date> {
        match i32_at(self.cert, CERT_TO) {
            NO_DATE => None,
            days => Some(Date::from_days(days)),
        }
    }

    pub fn covers(&self, day: Date) -> bool {
        covers_inclusive(self.valid_from(), self.valid_to(), day)
    }

    pub fn copay_limit_yen(&self) -> Option<u32> {
        (self.cert[CERT_FLAGS] & CERT_HAS_COPAY_LIMIT != 0)
            .then(|| u32_at(self.cert, CERT_COPAY_LIMIT))
    }
}

impl<B: AsRef<[u8]>> Index<B> {
    /// The public-expense payers, sorted by number.
    pub fn payers(&self) -> &[PayerInfo] {
        &self.kohi.payers
    }

    /// The payer of `number`, if the index holds its list.
    pub fn payer(&self, number: PayerNumber) -> Option<&PayerInfo> {
        let p = &self.kohi.payers;
        p.binary_search_by(|x| x.number.cmp(&number))
            .ok()
            .map(|i| &p[i])
    }

    /// Certificate `i` of the table, with its payer.
    pub fn certificate(&self, i: usize) -> Option<CertificateView<'_>> {
        let b = self.main.as_ref();
        let table = &b[self.kohi.certificates.clone()];
        let cert = table.get(i * CERTIFICATE_BYTES..(i + 1) * CERTIFICATE_BYTES)?;
        let payers = &self.kohi.payers;
        let p = payers.partition_point(|p| p.certificates.end <= i);
        Some(CertificateView {
            payer: payers.get(p)?,
            cert,
            strings: &b[self.kohi.strings.clone()],
            index: i,
        })
    }

    /// The certificates of (`payer`, `recipient`, normalized), in table order: a binary search
    /// in the payer's run, which is sorted by recipient, for the first, then the run of equal
    /// ones after it ([`Index::certificates_from`]).
    pub fn certificates_of<'s>(
        &'s self,
        payer: &'s PayerInfo,
        recipient: &str,
    ) -> impl Iterator<Item = CertificateView<'s>> + Clone + 's {
        let target = super::Target::Certificates {
            payer: payer.number,
            recipient,
        };
        let first = super::Staged::new(self, target)
            .run()
            .certificates
            .map_or(payer.certificates.end, |(_, first)| first);
        self.certificates_from(payer, recipient, first)
    }

    /// The certificates of (`payer`, `recipient`) from `first`, the first of the payer's run
    /// not before `recipient` (what a staged lookup found): those equal to it.
    pub fn certificates_from<'s>(
        &'s self,
        payer: &'s PayerInfo,
        recipient: &str,
        first: usize,
    ) -> impl Iterator<Item = CertificateView<'s>> + Clone + 's {
        let key = recipient.as_bytes();
        let run = payer.certificates.clone();
        let b = self.main.as_ref();
        let (table, strings) = (
            &b[self.kohi.certificates.clone()],
            &b[self.kohi.strings.clone()],
        );
        let end = (first..run.end)
            .find(|&i| !same_bytes(recipient_in(table, strings, i), key))
            .unwrap_or(run.end);
        (first..end).filter_map(move |i| {
            Some(CertificateView {
                payer,
                cert: entry_in(table, i)?,
                strings,
                index: i,
            })
        })
    }

    /// A search's steps, which `staged.rs` takes in lockstep with a group's other lookups: a
    /// probe is two dependent reads (the entry, for its string's offset; then the
    /// recipient's bytes), each likely a cache miss in a large table. Ask for the middle
    /// certificate's entry; then, once it is in, for its recipient's bytes; then halve.
    pub(super) fn prefetch_search_entry(&self, s: &CertificateSearch<'_>) {
        if s.lo < s.hi {
            let table = &self.main.as_ref()[self.kohi.certificates.clone()];
            if let Some(e) = entry_in(table, s.mid()) {
                prefetch(e);
            }
        }
    }

    /// See [`Self::prefetch_search_entry`].
    pub(super) fn prefetch_search_recipient(&self, s: &CertificateSearch<'_>) {
        if s.lo < s.hi {
            let b = self.main.as_ref();
            let (table, strings) = (
                &b[self.kohi.certificates.clone()],
                &b[self.kohi.strings.clone()],
            );
            prefetch(recipient_in(table, strings, s.mid()));
        }
    }

    /// Halves the search's range; whether it was still open (else it is done).
    pub(super) fn narrow_search(&self, s: &mut CertificateSearch<'_>) -> bool {
        if s.lo >= s.hi {
            return false;
        }
        let b = self.main.as_ref();
        let (table, strings) = (
            &b[self.kohi.certificates.clone()],
            &b[self.kohi.strings.clone()],
        );
        let mid = s.mid();
        if bytes_before(recipient_in(table, strings, mid), s.key) {
            s.lo = mid + 1;
        } else {
            s.hi = mid;
        }
        true
    }

    /// The certificates whose individual number hashes to `hash`, in table order.
    pub fn person_certificates(
        &self,
        hash: PersonHash,
    ) -> impl Iterator<Item = CertificateView<'_>> + Clone + '_ {
        let b = &self.main.as_ref()[self.kohi.persons.clone()];
        let n = b.len() / CERT_PERSON_BYTES;
        let entry = move |k: usize| &b[k * CERT_PERSON_BYTES..(k + 1) * CERT_PERSON_BYTES];
        let start = partition(n, |k| entry(k)[..16] < hash.0[..]);
        (start..n)
            .take_while(move |&k| entry(k)[..16] == hash.0[..])
            .filter_map(move |k| self.certificate(u32_at(entry(k), 16) as usize))
    }

    /// The certificate sections: strings UTF-8, each certificate's codes, payer and strings
    /// (inside the strings, on character boundaries, institutions valid codes), each payer's
    /// run in recipient order, and the person index in order naming certificates of that
    /// person.
    pub(super) fn verify_kohi(&self) -> Result<(), FormatError> {
        let b = self.main.as_ref();
        let strings = std::str::from_utf8(&b[self.kohi.strings.clone()]).map_err(|e| {
            malformed(format!(
                "certificate strings are not UTF-8 at byte {}",
                e.valid_up_to()
            ))
        })?;
        for (p, payer) in self.kohi.payers.iter().enumerate() {
            let mut previous: Option<&[u8]> = None;
            for i in payer.certificates.clone() {
                let at = |m: String| malformed(format!("certificate {i}: {m}"));
                let raw = &b[self.kohi.certificates.clone()]
                    [i * CERTIFICATE_BYTES..(i + 1) * CERTIFICATE_BYTES];
                let e = CertificateEntry::decode(raw)
                    .map_err(|e| within(&format!("certificate {i}"), e))?;
                if e.payer as usize != p {
                    return Err(at(format!("names payer {}, it lies in payer {p}", e.payer)));
                }
                let start = e.heap_offset as usize;
                let end = (start as u64).saturating_add(e.strings_bytes());
                let text_end = start
                    + usize::from(e.recipient_bytes)
                    + usize::from(e.name_bytes)
                    + usize::from(e.kana_bytes);
                if end > strings.len() as u64
                    || !strings.is_char_boundary(start)
                    || !strings.is_char_boundary(start + usize::from(e.recipient_bytes))
                    || !strings.is_char_boundary(
                        start + usize::from(e.recipient_bytes) + usize::from(e.name_bytes),
                    )
                    || !strings.is_char_boundary(text_end)
                {
                    return Err(at(
                        "strings outside the certificate strings or inside a character".into(),
                    ));
                }
                if e.recipient_bytes == 0 {
                    return Err(at("recipient number is empty".into()));
                }
                let view = self
                    .certificate(i)
                    .ok_or_else(|| at("not in the table".into()))?;
                if view
                    .institutions()
                    .any(|c| InstitutionCode::parse(c).is_err())
                {
                    return Err(at("an institution code is not valid".into()));
                }
                let recipient = view.part(0);
                if previous.is_some_and(|q| q > recipient) {
                    return Err(at(
                        "the payer's certificates are not in recipient order".into()
                    ));
                }
                previous = Some(recipient);
            }
        }
        let persons = &b[self.kohi.persons.clone()];
        let mut last: Option<(&[u8], u32)> = None;
        for (k, entry) in persons.chunks_exact(CERT_PERSON_BYTES).enumerate() {
            let at = |m: &str| malformed(format!("certificate person {k}: {m}"));
            // By hash, then by certificate index as a number (it is stored little-endian,
            // so its bytes do not sort as it does: one person's certificates 3 and 256).
            let key = (&entry[..16], u32_at(entry, 16));
            if last.is_some_and(|q| q >= key) {
                return Err(at("not in order"));
            }
            last = Some(key);
            let named = self
                .certificate(u32_at(entry, 16) as usize)
                .and_then(|c| c.person());
            if named.map(|h| h.0) != Some(entry[..16].try_into().expect("16 bytes")) {
                return Err(at("names no certificate of that person"));
            }
        }
        Ok(())
    }
}

/// Entry `i` of the certificate table `table`.
fn entry_in(table: &[u8], i: usize) -> Option<&[u8]> {
    table.get(i * CERTIFICATE_BYTES..(i + 1) * CERTIFICATE_BYTES)
}

/// The recipient number's bytes of entry `i` of `table` in `strings` (empty outside them).
fn recipient_in<'b>(table: &'b [u8], strings: &'b [u8], i: usize) -> &'b [u8] {
    entry_in(table, i).map_or(&[], |e| {
        let start = u32_at(e, CERT_HEAP) as usize;
        let len = usize::from(e[CERT_RECIPIENT_LEN]);
        strings
            .get(start..start.saturating_add(len))
            .unwrap_or_default()
    })
}

/// `a < b` in byte order, inline: keys of at most 20 characters, where the call into
/// `memcmp` that the slices' own comparison makes cost more than the comparison (an eighth
/// of a public-expense answer's CPU, 17 probes each).
fn bytes_before(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// `a == b`, inline, for the same reason.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// One binary search of a staged lookup: a recipient number in its payer's run, narrowed to
/// `lo..hi`; done when they meet, at the first certificate not before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertificateSearch<'k> {
    key: &'k [u8],
    lo: usize,
    hi: usize,
}

impl<'k> CertificateSearch<'k> {
    pub(super) fn new(payer: &PayerInfo, recipient: &'k str) -> CertificateSearch<'k> {
        CertificateSearch {
            key: recipient.as_bytes(),
            lo: payer.certificates.start,
            hi: payer.certificates.end,
        }
    }

    /// A search with nothing to do (a lookup of another kind).
    pub(super) fn none() -> CertificateSearch<'static> {
        CertificateSearch {
            key: &[],
            lo: 0,
            hi: 0,
        }
    }

    fn mid(&self) -> usize {
        self.lo + (self.hi - self.lo) / 2
    }

    /// Whether the search has steps left.
    pub(super) fn is_open(&self) -> bool {
        self.lo < self.hi
    }

    /// Where the search ended: the first certificate not before the key.
    pub(super) fn first(&self) -> usize {
        self.lo
    }
}

/// The first of `0..n` for which `before` is false, `before` being true then false along it.
fn partition(n: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use crate::domain::{Certificate, Date, IndividualNumber, PayerNumber, PersonKey};
    use crate::format::{encode_kohi, CertificateInput};
    use crate::index::Index;
    use crate::nightly::build_in_memory_with_kohi;

    fn certificate(valid_to: Option<Date>) -> Certificate {
        let d = |s: &str| Date::parse(s).unwrap();
        Certificate {
            payer: PayerNumber::from_body("5413601").unwrap(),
            recipient: "0123455".into(),
            individual_number: None,
            name: "難病 花子".into(),
            name_kana: "ナンビョウ ハナコ".into(),
            sex: None,
            birthdate: d("1980-01-23"),
            valid_from: d("2026-04-01"),
            valid_to,
            copay_limit_yen: None,
            institutions: Vec::new(),
        }
    }

    /// A certificate valid for 200 years (a register may say so): indexed, verified, and
    /// answered on its last day and not after.
    #[test]
    fn a_certificate_valid_for_200_years_is_answered() {
        use crate::query::kohi::{lookup_kohi, KohiOutcome, KohiQuery};
        let d = |s: &str| Date::parse(s).unwrap();
        let c = certificate(Some(d("2226-03-31")));
        let input = CertificateInput {
            certificate: &c,
            person: None,
            identity_unverified: false,
        };
        let kohi = encode_kohi(&[(c.payer, "東京都 難病")], &[input]).unwrap();
        let key = PersonKey::demo();
        let files =
            build_in_memory_with_kohi(Vec::new(), &kohi, &key, d("2026-11-24"), "g").unwrap();
        let index = Index::open(files, key).unwrap();
        index.verify().unwrap();
        for (day, eligible) in [("2226-03-31", true), ("2226-04-01", false)] {
            let q = KohiQuery {
                payer: c.payer,
                recipient: c.recipient.clone(),
                birthdate: c.birthdate,
                date: Some(d(day)),
                institution: None,
            };
            let outcome = lookup_kohi(&index, &q, d("2026-11-24"));
            assert_eq!(
                matches!(outcome, KohiOutcome::Eligible(_)),
                eligible,
                "{day}"
            );
        }
    }

    /// One person holding `n` certificates: the person index lists them under one hash, by
    /// certificate index as a number, which the verifier must accept (indexes 255 and 256
    /// sort the other way by their little-endian bytes).
    fn verify_one_holder_of(n: usize) -> Result<(), String> {
        let d = |s: &str| Date::parse(s).unwrap();
        let payer = PayerNumber::from_body("5413601").unwrap();
        let number = IndividualNumber::from_first11(12_345_678_901);
        let certs: Vec<Certificate> = (0..n)
            .map(|i| Certificate {
                individual_number: Some(number),
                valid_from: d("2000-01-01").add_days(i as i32),
                ..certificate(None)
            })
            .collect();
        let key = PersonKey::demo();
        let inputs: Vec<CertificateInput<'_>> = certs
            .iter()
            .map(|c| CertificateInput {
                certificate: c,
                person: Some(key.hash(&number)),
                identity_unverified: false,
            })
            .collect();
        let kohi = encode_kohi(&[(payer, "東京都 難病")], &inputs).map_err(|e| e.to_string())?;
        let files = build_in_memory_with_kohi(Vec::new(), &kohi, &key, d("2026-11-24"), "g")
            .map_err(|e| e.to_string())?;
        let index = Index::open(files, key.clone()).map_err(|e| e.to_string())?;
        assert_eq!(index.person_certificates(key.hash(&number)).count(), n);
        index.verify().map_err(|e| e.to_string())
    }

    #[test]
    fn one_person_s_many_certificates_verify() {
        for n in [1, 2, 255, 256, 300, 70_000] {
            assert_eq!(verify_one_holder_of(n), Ok(()), "{n} certificates");
        }
    }

    use super::{bytes_before, same_bytes};
    use proptest::prelude::*;

    proptest! {
        /// The inline comparisons are the slices' own.
        #[test]
        fn inline_comparisons_are_byte_order(a in prop::collection::vec(any::<u8>(), 0..24), b in prop::collection::vec(any::<u8>(), 0..24), shared in 0..24usize) {
            // Often a common prefix, as neighbouring recipient numbers have.
            let mut b2 = a[..shared.min(a.len())].to_vec();
            b2.extend_from_slice(&b);
            for b in [&b, &b2, &a] {
                prop_assert_eq!(bytes_before(&a, b), a.as_slice() < b.as_slice());
                prop_assert_eq!(same_bytes(&a, b), a.as_slice() == b.as_slice());
            }
        }
    }
}
