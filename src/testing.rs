//! Test fixtures shared by the unit tests and the integration tests: members of a test
//! insurer as `Record`s and small indexes built from them, so each test says only how
//! its members differ. Not part of the API (hidden from the docs); it panics on bad input.

use crate::domain::{
    Branch, CopayRatio, Date, IndividualNumber, InsurerKind, InsurerNumber, LimitCategory,
    PersonKey, ReasonOfLoss, Record, Relationship, Sex,
};
use crate::index::{Index, IndexFiles};
use crate::nightly::{build_in_memory, InsurerRows};

/// The test insurer most fixtures use.
pub const INSURER: &str = "33120015";
pub const INSURER_NAME: &str = "地方職員共済組合";

/// A date of the fixtures (ISO form).
pub fn day(s: &str) -> Date {
    Date::parse(s).expect("a fixture date")
}

/// The individual number whose first eleven digits are `first11`, in clear (test data).
pub fn individual_number(first11: u64) -> String {
    let number = IndividualNumber::from_first11(first11);
    String::from_utf8(number.expose_digits().to_vec()).expect("digits")
}

/// One member's row: by default card 12/3456 branch 00 of [`INSURER`], no individual number,
/// born 1980-01-23, covered since 2015-04-01, no 限度額適用区分. A lost card (`disq`) was lost
/// for another insurance.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub insurer: &'a str,
    pub symbol: &'a str,
    pub number: &'a str,
    pub branch: u8,
    /// The first eleven digits of the individual number.
    pub person: Option<u64>,
    pub birth: &'a str,
    pub qual: &'a str,
    pub disq: Option<&'a str>,
    pub limit: Option<&'a str>,
}

impl Default for Member<'_> {
    fn default() -> Self {
        Member {
            insurer: INSURER,
            symbol: "12",
            number: "3456",
            branch: 0,
            person: None,
            birth: "1980-01-23",
            qual: "2015-04-01",
            disq: None,
            limit: None,
        }
    }
}

impl Member<'_> {
    pub fn record(&self) -> Record {
        Record {
            insurer: InsurerNumber::parse(self.insurer).expect("a fixture insurer"),
            symbol: self.symbol.into(),
            number: self.number.into(),
            branch: Branch::new(self.branch).expect("a fixture branch"),
            individual_number: self.person.map(IndividualNumber::from_first11),
            name: "山田 太郎".into(),
            name_kana: "ヤマダ タロウ".into(),
            sex: Sex::Male,
            birthdate: day(self.birth),
            relationship: Relationship::Insured,
            qualification_date: day(self.qual),
            disqualification_date: self.disq.map(day),
            reason_of_loss: self.disq.map(|_| ReasonOfLoss::OtherInsurance),
            copay_ratio: CopayRatio::new(30).expect("30%"),
            limit_category: self
                .limit
                .map(|l| LimitCategory::parse(l).expect("a fixture limit category")),
        }
    }
}

/// An insurer's rows from its snapshot of `snapshot` (ISO date), the members on lines 2, 3, …
pub fn insurer(
    number: &str,
    name: &str,
    kind: InsurerKind,
    snapshot: &str,
    members: &[Member<'_>],
) -> InsurerRows {
    InsurerRows {
        number: InsurerNumber::parse(number).expect("a fixture insurer"),
        name: name.into(),
        kind,
        snapshot_date: day(snapshot),
        file: format!("{number}/{}.csv", snapshot.replace('-', "")),
        rows: members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.record(), i as u32 + 2))
            .collect(),
        persons: Vec::new(),
    }
}

/// The index files of `insurers`, built on `built_on` as generation `id`, with the demo key.
pub fn build(insurers: Vec<InsurerRows>, built_on: &str, id: &str) -> IndexFiles<Vec<u8>> {
    build_in_memory(insurers, &PersonKey::demo(), day(built_on), id).expect("a fixture build")
}

/// Generation `g-test` of [`INSURER`] (built 2026-11-24) with three cards of `symbol` (empty:
/// cards without one), all born 1980-01-23, limit category A03: 3456 branch 00, person
/// 12345678901(8), covered since 2015-04-01; 3457 branch 01, ended 2016-01-01, person
/// 22345678901x, who moved to 3458 branch 00 then.
pub fn three_cards(symbol: &str) -> IndexFiles<Vec<u8>> {
    build(three_cards_rows(symbol), "2026-11-24", "g-test")
}

/// The insurer of [`three_cards`], its rows.
pub fn three_cards_rows(symbol: &str) -> Vec<InsurerRows> {
    let card = |number, branch, person, qual, disq| Member {
        symbol,
        number,
        branch,
        person: Some(person),
        qual,
        disq,
        limit: Some("A03"),
        ..Member::default()
    };
    let members = [
        card("3456", 0, 12345678901, "2015-04-01", None),
        card("3457", 1, 22345678901, "2010-04-01", Some("2016-01-01")),
        card("3458", 0, 22345678901, "2016-01-01", None),
    ];
    let rows = insurer(
        INSURER,
        INSURER_NAME,
        InsurerKind::Kyosai,
        "2026-11-01",
        &members,
    );
    vec![rows]
}

/// [`three_cards`] opened.
pub fn three_cards_index(symbol: &str) -> Index<Vec<u8>> {
    Index::open(three_cards(symbol), PersonKey::demo()).expect("a fixture index")
}

/// The index files of `insurers` and the certificates `certs` of `payers` (none with an
/// individual number), built on `built_on` as generation `id`, with the demo key.
pub fn build_with_kohi(
    insurers: Vec<InsurerRows>,
    payers: &[(crate::domain::PayerNumber, &str)],
    certs: &[crate::domain::Certificate],
    built_on: &str,
    id: &str,
) -> IndexFiles<Vec<u8>> {
    use crate::format::{encode_kohi, CertificateInput};
    let inputs: Vec<CertificateInput<'_>> = certs
        .iter()
        .map(|c| CertificateInput {
            certificate: c,
            person: None,
            identity_unverified: false,
        })
        .collect();
    let kohi = encode_kohi(payers, &inputs).expect("fixture certificates");
    crate::nightly::build_in_memory_with_kohi(
        insurers,
        &kohi,
        &PersonKey::demo(),
        day(built_on),
        id,
    )
    .expect("a fixture build")
}
