//! The public-expense query (docs/api.md#public-expense-query): parsing, the decision over a
//! payer's certificates of one recipient, and its answer JSON, written without allocating.

use super::QueryError;
use super::{
    optional_date, parse_date, present, required, write_answer_head, write_json_str,
    write_json_utf8,
};
use crate::domain::text::{quote_raw, write_decimal};
use crate::domain::{
    normalize_recipient_into, Date, InstitutionCode, PayerNumber, PersonHash, Validity,
};
use crate::index::{CertificateView, Index, PayerInfo, Staged, Target};

/// 公費 eligibility query after normalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KohiQuery {
    pub payer: PayerNumber,
    /// Normalized (NFKC, white space removed, leading zeros kept).
    pub recipient: String,
    pub birthdate: Date,
    pub date: Option<Date>,
    /// The institution asking: the authenticated client's code when there is one (the server
    /// sets it), else the query's. `None`: the designated-institution rule is not applied.
    pub institution: Option<InstitutionCode>,
}

/// The raw text fields of a public-expense query. `None` and `""` both mean absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct KohiFields<'a> {
    pub payer_number: Option<&'a str>,
    pub recipient_number: Option<&'a str>,
    pub birthdate: Option<&'a str>,
    pub date: Option<&'a str>,
    pub institution_code: Option<&'a str>,
}

impl KohiQuery {
    pub fn parse(f: &KohiFields<'_>) -> Result<KohiQuery, QueryError> {
        KohiQuery::parse_reusing(f, String::new())
    }

    /// [`KohiQuery::parse`] with the normalized recipient number written into `recipient`
    /// (cleared first): a caller that keeps the last query's string (RESP) allocates
    /// nothing.
    pub fn parse_reusing(
        f: &KohiFields<'_>,
        mut recipient: String,
    ) -> Result<KohiQuery, QueryError> {
        let raw = required("payer_number", f.payer_number)?;
        let payer = PayerNumber::parse(raw)
            .map_err(|e| QueryError::new("payer_number", format!("{e}: {}", quote_raw(raw))))?;
        let raw = required("recipient_number", f.recipient_number)?;
        normalize_recipient_into(raw, payer, &mut recipient)
            .map_err(|e| QueryError::new("recipient_number", format!("{e}: {}", quote_raw(raw))))?;
        let birthdate = parse_date("birthdate", required("birthdate", f.birthdate)?)?;
        let date = optional_date("date", f.date)?;
        let institution = present(f.institution_code)
            .map(|raw| {
                InstitutionCode::parse(raw).map_err(|e| {
                    QueryError::new("institution_code", format!("{e}: {}", quote_raw(raw)))
                })
            })
            .transpose()?;
        Ok(KohiQuery {
            payer,
            recipient,
            birthdate,
            date,
            institution,
        })
    }
}

/// Why a certificate found does not pay on the date (validity 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KohiReason {
    /// The certificate nearest the date ended before it.
    Expired,
    /// Every certificate begins after the date.
    NotYet,
    /// Valid on the date, but for designated institutions only, not the one asking.
    OtherInstitution,
}

impl KohiReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KohiReason::Expired => "expired",
            KohiReason::NotYet => "not_yet",
            KohiReason::OtherInstitution => "other_institution",
        }
    }
}

/// The outcome of a public-expense query, borrowing the certificate it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KohiOutcome<C> {
    /// 1, with the covering certificate.
    Eligible(C),
    /// 2, with the certificate that decided, and why.
    Invalid(C, KohiReason),
    /// 4.
    NotFound,
    /// 5: certificates of this recipient and birthdate belong to more than one person.
    Multiple,
}

impl<C> KohiOutcome<C> {
    pub fn validity(&self) -> Validity {
        match self {
            KohiOutcome::Eligible(_) => Validity::Eligible,
            KohiOutcome::Invalid(..) => Validity::Invalid,
            KohiOutcome::NotFound => Validity::NotFound,
            KohiOutcome::Multiple => Validity::Multiple,
        }
    }
}

/// What the decision needs of a certificate: implemented by the index's view and by the
/// naive model in tests.
pub trait PublicExpense {
    fn birthdate(&self) -> Date;
    fn valid_from(&self) -> Date;
    /// Inclusive.
    fn valid_to(&self) -> Option<Date>;
    fn admits(&self, institution: InstitutionCode) -> bool;
    /// Who holds it: the keyed hash of the individual number, when it has one.
    fn person(&self) -> Option<PersonHash>;
    fn name_kana(&self) -> &str;

    fn covers(&self, day: Date) -> bool {
        crate::domain::covers_inclusive(self.valid_from(), self.valid_to(), day)
    }
}

/// Two certificates of one recipient belong to different people when their individual
/// numbers differ (both known) or, failing that, their kana differ.
fn same_person<C: PublicExpense>(a: &C, b: &C) -> bool {
    match (a.person(), b.person()) {
        (Some(x), Some(y)) => x == y,
        _ => a.name_kana() == b.name_kana(),
    }
}

/// The decision of docs/api.md#public-expense-query over the certificates of (payer,
/// recipient), in any order. `institution`: who asks (`None`: the designated-institution rule
/// is not applied).
pub fn decide<C: PublicExpense + Clone>(
    certificates: impl Iterator<Item = C> + Clone,
    birthdate: Date,
    date: Date,
    institution: Option<InstitutionCode>,
) -> KohiOutcome<C> {
    let candidates = || certificates.clone().filter(|c| c.birthdate() == birthdate);
    let Some(first) = candidates().next() else {
        return KohiOutcome::NotFound;
    };
    if candidates().any(|c| !same_person(&first, &c)) {
        return KohiOutcome::Multiple;
    }
    // Of several covering certificates (a renewal overlapping the old one), one the
    // institution may use wins; among equals the latest begun.
    let mut best: Option<C> = None;
    for c in candidates().filter(|c| c.covers(date)) {
        let admits = |c: &C| institution.is_none_or(|i| c.admits(i));
        let better = best
            .as_ref()
            .is_none_or(|b| (admits(&c), c.valid_from()) > (admits(b), b.valid_from()));
        if better {
            best = Some(c);
        }
    }
    if let Some(c) = best {
        if institution.is_some_and(|i| !c.admits(i)) {
            return KohiOutcome::Invalid(c, KohiReason::OtherInstitution);
        }
        return KohiOutcome::Eligible(c);
    }
    // None covers: the one that ended last before the date (of two, the later begun), else
    // the earliest to begin.
    let ended = candidates()
        .filter(|c| c.valid_from() <= date)
        .max_by_key(|c| (c.valid_to(), c.valid_from()));
    match ended {
        Some(c) => KohiOutcome::Invalid(c, KohiReason::Expired),
        None => {
            let c = candidates()
                .min_by_key(|c| c.valid_from())
                .expect("one candidate at least");
            KohiOutcome::Invalid(c, KohiReason::NotYet)
        }
    }
}

impl PublicExpense for CertificateView<'_> {
    fn birthdate(&self) -> Date {
        CertificateView::birthdate(self)
    }
    fn valid_from(&self) -> Date {
        CertificateView::valid_from(self)
    }
    fn valid_to(&self) -> Option<Date> {
        CertificateView::valid_to(self)
    }
    fn admits(&self, institution: InstitutionCode) -> bool {
        CertificateView::admits(self, institution)
    }
    fn person(&self) -> Option<PersonHash> {
        CertificateView::person(self)
    }
    fn name_kana(&self) -> &str {
        CertificateView::name_kana(self)
    }
}

/// The public-expense query over an index: 4 when the index does not hold the payer's list.
/// The staged lookup of one query finds the payer's run and the recipient in it.
pub fn lookup_kohi<'a, B: AsRef<[u8]>>(
    index: &'a Index<B>,
    q: &KohiQuery,
    today: Date,
) -> KohiOutcome<CertificateView<'a>> {
    let found = Staged::new(index, kohi_target(q)).run().certificates;
    lookup_kohi_found(index, q, found, today)
}

/// What the staged lookup of public-expense query `q` finds.
pub fn kohi_target(q: &KohiQuery) -> Target<'_> {
    Target::Certificates {
        payer: q.payer,
        recipient: &q.recipient,
    }
}

/// [`lookup_kohi`] where the payer's run was searched already: `found` the payer, if the
/// index holds its list, and the first certificate not before the recipient.
fn lookup_kohi_found<'a, B: AsRef<[u8]>>(
    index: &'a Index<B>,
    q: &KohiQuery,
    found: Option<(&'a PayerInfo, usize)>,
    today: Date,
) -> KohiOutcome<CertificateView<'a>> {
    match found {
        None => KohiOutcome::NotFound,
        Some((payer, first)) => decide(
            index.certificates_from(payer, &q.recipient, first),
            q.birthdate,
            q.date.unwrap_or(today),
            q.institution,
        ),
    }
}

/// Answers a public-expense query into `out` and returns its validity.
pub fn answer_kohi<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &KohiQuery,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    let found = Staged::new(index, kohi_target(q)).run().certificates;
    answer_kohi_found(index, q, found, today, out)
}

/// [`answer_kohi`] where the payer's run was searched already (in a group's staged lookups):
/// `found` the payer, if the index holds its list, and the first certificate not before the
/// recipient.
pub fn answer_kohi_found<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &KohiQuery,
    found: Option<(&PayerInfo, usize)>,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    let outcome = lookup_kohi_found(index, q, found, today);
    write_kohi_answer(out, &outcome, q.date.unwrap_or(today), index.generation());
    outcome.validity()
}

/// Writes the answer JSON of docs/api.md#public-expense-query on one line.
pub fn write_kohi_answer(
    out: &mut Vec<u8>,
    outcome: &KohiOutcome<CertificateView<'_>>,
    date: Date,
    generation: &str,
) {
    write_answer_head(out, outcome.validity(), date, generation);
    out.extend_from_slice(b",\"reason\":");
    match outcome {
        KohiOutcome::Invalid(_, reason) => {
            out.push(b'"');
            out.extend_from_slice(reason.as_str().as_bytes());
            out.push(b'"');
        }
        _ => out.extend_from_slice(b"null"),
    }
    if let KohiOutcome::Eligible(c) | KohiOutcome::Invalid(c, _) = outcome {
        out.extend_from_slice(b",\"public_expense\":");
        write_certificate(out, c);
    }
    out.push(b'}');
}

/// One certificate as the answers show it (`public_expense`, and each of a person answer's
/// `public_expenses`).
pub fn write_certificate(out: &mut Vec<u8>, c: &CertificateView<'_>) {
    let payer = c.payer();
    out.extend_from_slice(b"{\"payer_number\":\"");
    out.extend_from_slice(payer.number.as_str().as_bytes());
    out.extend_from_slice(b"\",\"payer_name\":");
    write_json_str(out, &payer.name);
    out.extend_from_slice(b",\"program\":\"");
    out.extend_from_slice(&payer.number.as_str().as_bytes()[..2]);
    out.extend_from_slice(b"\",\"recipient_number\":");
    write_json_utf8(out, c.recipient_utf8());
    out.extend_from_slice(b",\"name\":");
    write_json_utf8(out, c.name_utf8());
    out.extend_from_slice(b",\"name_kana\":");
    write_json_utf8(out, c.name_kana_utf8());
    out.extend_from_slice(b",\"sex\":");
    match c.sex() {
        Some(s) => out.push(b'0' + s.code()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"birthdate\":\"");
    c.birthdate().write_iso(out);
    out.extend_from_slice(b"\",\"valid_from\":\"");
    c.valid_from().write_iso(out);
    out.extend_from_slice(b"\",\"valid_to\":");
    match c.valid_to() {
        Some(d) => {
            out.push(b'"');
            d.write_iso(out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"copay_limit_yen\":");
    match c.copay_limit_yen() {
        Some(yen) => write_decimal(out, u64::from(yen)),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"institutions\":[");
    for (i, code) in c.institutions().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(code.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"]}");
}
