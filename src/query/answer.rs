//! The answer path every protocol takes: one query answered into its answer JSON
//! ([`answer`], [`answer_card`], [`answer_person`]), or up to [`GROUP_QUERIES`] together, step
//! by step, so their cache misses overlap ([`answer_group`]: RESP pipelines, JSON batches).

use super::kohi::{answer_kohi_found, kohi_target, write_certificate};
use super::{
    write_answer, write_json_str, CardQuery, KohiQuery, Lookup, PersonQuery, Query, QueryError,
};
use crate::domain::{Date, PersonHash, Validity};
use crate::index::{run_group, Found, Index, Staged, Target};

/// Answers a card query into `out` (the answer JSON of docs/api.md#answer) and returns its validity.
pub fn answer_card<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &CardQuery,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    answer_one(index, GroupQuery::Card(q), today, out)
}

/// Answers a person query into `out` and returns its validity.
pub fn answer_person<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &PersonQuery,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    answer_one(index, GroupQuery::Person(q), today, out)
}

/// A query's staged lookup as a group of one, answered into `out`.
fn answer_one<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: GroupQuery<'_>,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    let found = Staged::new(index, target(q, today)).run();
    answer_found(index, q, found, today, out)
}

/// What the staged lookup of `q` finds: for a card query, also the person of a first record
/// that does not cover the day (the card query's check for a newer record, docs/api.md#card-query,
/// looks them up).
fn target<'q>(q: GroupQuery<'q>, today: Date) -> Target<'q> {
    match q {
        GroupQuery::Card(c) => Target::Card {
            insurer: &c.insurer,
            symbol: &c.symbol,
            number: &c.number,
            lost_on: Some(c.date.unwrap_or(today)),
        },
        GroupQuery::Person(p) => Target::Person(&p.individual_number),
        GroupQuery::Kohi(k) => kohi_target(k),
    }
}

/// Answers `query` from what its staged lookup found, appending to `out`, and returns its
/// validity.
fn answer_found<'a, B: AsRef<[u8]>>(
    index: &'a Index<B>,
    query: GroupQuery<'_>,
    found: Found<'a, B>,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    match query {
        GroupQuery::Card(q) => {
            let outcome = index.card_in(q, found.card, today);
            let date = q.date.unwrap_or(today);
            write_answer(out, &outcome, date, index.generation(), q.limit_consent);
            outcome.validity()
        }
        GroupQuery::Person(q) => {
            let (hash, entry) = found
                .person
                .expect("a person lookup keeps the person's hash");
            let outcome = index.person_in(q, entry, today);
            let date = q.date.unwrap_or(today);
            write_answer(out, &outcome, date, index.generation(), q.limit_consent);
            add_public_expenses(index, &hash, date, out);
            outcome.validity()
        }
        GroupQuery::Kohi(q) => answer_kohi_found(index, q, found.certificates, today, out),
    }
}

/// Adds `public_expenses` to the person answer just written into `out`: the person's
/// certificates covering `date` that X1 does not hide, whatever the insurance validity.
/// `hash` is the one the person lookup made: the keyed hash is not computed twice.
fn add_public_expenses<B: AsRef<[u8]>>(
    index: &Index<B>,
    hash: &PersonHash,
    date: Date,
    out: &mut Vec<u8>,
) {
    if out.last() != Some(&b'}') {
        return;
    }
    out.pop();
    out.extend_from_slice(b",\"public_expenses\":[");
    let covering = index
        .person_certificates(*hash)
        .filter(|c| !c.identity_unverified() && c.covers(date));
    for (i, c) in covering.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_certificate(out, &c);
    }
    out.extend_from_slice(b"]}");
}

/// Answers any query into `out` and returns its validity.
pub fn answer<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &Query,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    answer_one(index, GroupQuery::of(q), today, out)
}

/// Writes a query error as `{"error":"<field>: <reason>","field":"<field>"}`.
pub fn write_error(out: &mut Vec<u8>, e: &QueryError) {
    out.extend_from_slice(b"{\"error\":");
    write_json_str(out, &e.to_string());
    out.extend_from_slice(b",\"field\":");
    write_json_str(out, e.field);
    out.push(b'}');
}

/// Most queries [`answer_group`] looks up together: enough for the misses of many queries to
/// be in flight at once, few enough that what they fetch stays in L1.
pub const GROUP_QUERIES: usize = 16;

/// One query of a group.
#[derive(Debug, Clone, Copy)]
pub enum GroupQuery<'a> {
    Card(&'a CardQuery),
    Person(&'a PersonQuery),
    /// Looked up alone when its turn comes: public-expense queries are not on the steps.
    Kohi(&'a KohiQuery),
}

impl<'a> GroupQuery<'a> {
    pub fn of(q: &'a Query) -> GroupQuery<'a> {
        match q {
            Query::Card(q) => GroupQuery::Card(q),
            Query::Person(q) => GroupQuery::Person(q),
            Query::Kohi(q) => GroupQuery::Kohi(q),
        }
    }
}

/// What [`answer_group`] reuses from one group to the next: the answer being written.
pub struct GroupScratch {
    answer: Vec<u8>,
}

impl Default for GroupScratch {
    fn default() -> GroupScratch {
        GroupScratch {
            answer: Vec::with_capacity(2048),
        }
    }
}

/// Answers up to [`GROUP_QUERIES`] queries in order, each as [`answer_card`],
/// [`answer_person`] or [`super::kohi::answer_kohi`] would, calling `each(i, Some((validity, answer JSON)))` for a query and
/// `each(i, None)` for a `None` slot (a query that did not parse, say), so the caller writes
/// every reply in order.
///
/// Why in a group: a lookup in a large index is mostly waiting on memory (a card's directory
/// slot, its records, their text; a person's bucket, table entry, references: cache misses in
/// a row; a public-expense query's binary search, two dependent reads a probe). The index's
/// staged lookups go step by step in lockstep ([`run_group`]), each step first asking for
/// the next one's memory, so the misses of sixteen queries overlap instead of following one
/// another.
pub fn answer_group<B: AsRef<[u8]>>(
    index: &Index<B>,
    queries: &[Option<GroupQuery<'_>>],
    today: Date,
    scratch: &mut GroupScratch,
    mut each: impl FnMut(usize, Option<(Validity, &[u8])>),
) {
    assert!(
        queries.len() <= GROUP_QUERIES,
        "at most GROUP_QUERIES queries"
    );
    let answer = &mut scratch.answer;
    if let [one] = queries {
        // A group of one: nothing to overlap its misses with, and no group to hold.
        let Some(q) = one else {
            return each(0, None);
        };
        answer.clear();
        let v = answer_one(index, *q, today, answer);
        return each(0, Some((v, answer)));
    }
    let mut group: Vec<_> = queries
        .iter()
        .flatten()
        .map(|q| Staged::new(index, target(*q, today)))
        .collect();
    run_group(&mut group);
    let mut found = group.into_iter().map(Staged::found);
    for (i, q) in queries.iter().enumerate() {
        let Some(q) = q else {
            each(i, None);
            continue;
        };
        let f = found.next().expect("a lookup for every query");
        answer.clear();
        let v = answer_found(index, *q, f, today, answer);
        each(i, Some((v, answer)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::kohi::answer_kohi;
    use crate::query::{CardFields, PersonFields};
    use crate::testing::{day as d, individual_number as person, three_cards_index};

    /// A group answers each query as `answer_card` or `answer_person` alone does, in order,
    /// with the empty slots reported where they are: cards found, absent, lost, of unknown
    /// insurers, with keys too long for the directory (the FST path), the same card twice,
    /// and persons found, lost and unknown.
    #[test]
    fn a_group_answers_as_single_queries() {
        let index = three_cards_index("12");
        let card = |ins: &str, sym: &str, num: &str, date: Option<&str>| {
            CardQuery::parse(&CardFields {
                insurer_number: Some(ins),
                symbol: Some(sym),
                number: Some(num),
                branch: None,
                birthdate: Some("1980-01-23"),
                date,
                limit_consent: false,
            })
            .unwrap()
        };
        let person_q = |first11: u64, date: Option<&str>| {
            PersonQuery::parse(&PersonFields {
                individual_number: Some(&person(first11)),
                date,
                limit_consent: true,
            })
            .unwrap()
        };
        let long = "1".repeat(20);
        let cards = [
            card("33120015", "12", "3456", None),
            card("33120015", "12", "3457", None),
            card("33120015", "12", "3457", Some("2015-06-01")),
            card("33120015", "12", "9999", None),
            card("06460026", "12", "3456", None),
            card("33120015", &long, &long, None),
            card("33120015", "12", "3456", None),
        ];
        let persons = [
            person_q(12345678901, None),
            person_q(22345678901, Some("2012-01-01")),
            person_q(32345678901, None),
        ];
        let mut slots: Vec<Option<GroupQuery<'_>>> =
            cards.iter().map(|q| Some(GroupQuery::Card(q))).collect();
        slots.insert(3, None);
        slots.insert(1, Some(GroupQuery::Person(&persons[0])));
        slots.insert(5, Some(GroupQuery::Person(&persons[1])));
        slots.push(Some(GroupQuery::Person(&persons[2])));
        slots.push(None);
        assert!(slots.len() <= GROUP_QUERIES);
        let today = d("2026-11-24");
        let mut got = Vec::new();
        answer_group(
            &index,
            &slots,
            today,
            &mut GroupScratch::default(),
            |i, a| {
                got.push((i, a.map(|(v, json)| (v, json.to_vec()))));
            },
        );
        let want: Vec<_> = slots
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let a = q.map(|q| {
                    let mut json = Vec::new();
                    let v = match q {
                        GroupQuery::Card(q) => answer_card(&index, q, today, &mut json),
                        GroupQuery::Person(q) => answer_person(&index, q, today, &mut json),
                        GroupQuery::Kohi(q) => answer_kohi(&index, q, today, &mut json),
                    };
                    (v, json)
                });
                (i, a)
            })
            .collect();
        assert_eq!(got, want);
        let validities: Vec<_> = got
            .iter()
            .map(|(_, a)| a.as_ref().map(|a| a.0.code()))
            .collect();
        assert_eq!(
            validities,
            [
                Some(1),
                Some(1),
                Some(3),
                Some(1),
                None,
                Some(1),
                Some(4),
                Some(4),
                Some(4),
                Some(1),
                Some(4),
                None
            ]
        );
    }

    /// Public-expense queries in a group (their binary searches side by side) answer as alone:
    /// recipients found at either end of the payer's run and inside it, absent before, after
    /// and between them, of a payer the index does not hold, twice, beside a card query.
    #[test]
    fn a_group_of_public_expense_queries_answers_as_single_queries() {
        use crate::domain::{Certificate, PayerNumber};
        use crate::query::{KohiFields, KohiQuery};
        let payer = PayerNumber::from_body("8813001").unwrap();
        let other = PayerNumber::from_body("8813002").unwrap();
        let certs: Vec<Certificate> = (10..50)
            .map(|n| Certificate {
                payer,
                recipient: format!("R{}", n * 2),
                individual_number: None,
                name: "公費 花子".into(),
                name_kana: "コウヒ ハナコ".into(),
                sex: None,
                birthdate: d("1980-01-23"),
                valid_from: d("2020-04-01"),
                valid_to: (n % 3 == 0).then(|| d("2026-03-31")),
                copay_limit_yen: None,
                institutions: Vec::new(),
            })
            .collect();
        let files = crate::testing::build_with_kohi(
            crate::testing::three_cards_rows("12"),
            &[(payer, "子ども医療費助成")],
            &certs,
            "2026-11-24",
            "g-test",
        );
        let index = Index::open(files, crate::domain::PersonKey::demo()).unwrap();
        let kohi = |p: PayerNumber, r: &str| {
            KohiQuery::parse(&KohiFields {
                payer_number: Some(p.as_str()),
                recipient_number: Some(r),
                birthdate: Some("1980-01-23"),
                ..Default::default()
            })
            .unwrap()
        };
        let queries = [
            kohi(payer, "R20"),
            kohi(payer, "R98"),
            kohi(payer, "R54"),
            kohi(payer, "R1"),
            kohi(payer, "R99"),
            kohi(payer, "R55"),
            kohi(other, "R20"),
            kohi(payer, "R54"),
            kohi(payer, "R60"),
        ];
        let card = CardQuery::parse(&CardFields {
            insurer_number: Some("33120015"),
            symbol: Some("12"),
            number: Some("3456"),
            birthdate: Some("1980-01-23"),
            ..Default::default()
        })
        .unwrap();
        let mut slots: Vec<Option<GroupQuery<'_>>> =
            queries.iter().map(|q| Some(GroupQuery::Kohi(q))).collect();
        slots.insert(2, Some(GroupQuery::Card(&card)));
        let today = d("2026-11-24");
        let mut got = Vec::new();
        answer_group(
            &index,
            &slots,
            today,
            &mut GroupScratch::default(),
            |_, a| got.push(a.map(|(v, json)| (v.code(), json.to_vec()))),
        );
        let want: Vec<_> = slots
            .iter()
            .flatten()
            .map(|q| {
                let mut json = Vec::new();
                let v = match q {
                    GroupQuery::Kohi(q) => answer_kohi(&index, q, today, &mut json),
                    GroupQuery::Card(q) => answer_card(&index, q, today, &mut json),
                    GroupQuery::Person(q) => answer_person(&index, q, today, &mut json),
                };
                Some((v.code(), json))
            })
            .collect();
        assert_eq!(got, want);
        let validities: Vec<u8> = got.iter().flatten().map(|a| a.0).collect();
        assert_eq!(validities, [1, 1, 1, 2, 4, 4, 4, 4, 2, 2]);
    }

    /// Regression: a card without a symbol was answered with `"symbol":""`; docs/api.md#answer writes
    /// an absent value as null.
    #[test]
    fn a_card_without_a_symbol_answers_null() {
        let index = three_cards_index("");
        let q = CardQuery::parse(&CardFields {
            insurer_number: Some("33120015"),
            symbol: Some(""),
            number: Some("3456"),
            birthdate: Some("1980-01-23"),
            date: Some("2026-11-24"),
            ..Default::default()
        })
        .unwrap();
        let mut out = Vec::new();
        assert_eq!(
            answer_card(&index, &q, d("2026-11-24"), &mut out),
            Validity::Eligible
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["qualification"]["symbol"], serde_json::Value::Null);
        assert_eq!(v["qualification"]["number"], "3456");
    }
}
