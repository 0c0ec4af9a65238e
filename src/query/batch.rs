//! 一括照会 (SPEC 4.4), protocol-independent: parse a JSON or CSV batch into queries (a
//! malformed query keeps its slot, with its error), answer every query from one index, and
//! render the answers as JSON or CSV in the input order. Also the one-query helpers every
//! protocol uses to answer.
//!
//! JSON form: an array of objects, each with `"kind": "card" | "person"` and the inputs of
//! SPEC 4.1/4.2 as strings (`limit_consent` a boolean). The answer is an array of answers
//! (SPEC 4.3); a malformed query's slot holds `{"error": "<field>: <reason>", "field": ...}`.
//!
//! CSV form (UTF-8, BOM optional): a header naming some of the columns
//! `kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent`
//! in any order (`limit_consent` 1 or empty). The answer CSV has the nine input columns as
//! given, then `validity,validity_name,error,answer_date,generation`, then the qualification
//! fields prefixed `q_` (`q_insurer_number … q_limit_category`; the prefix keeps them apart
//! from the input columns of the same name). A person query with validity 5 has several
//! qualifications, which one CSV row cannot hold: its `q_` fields are empty (the JSON form
//! lists them all).

use super::{
    parse_consent, write_answer, write_json_str, CardFields, CardQuery, Lookup, Outcome,
    PersonFields, PersonQuery, Qualification, Query, QueryError,
};
use crate::domain::text::{mask_digit_runs, quote_raw};
use crate::domain::{Date, Validity};
use crate::format::PersonEntry;
use crate::index::{CardProbe, CardRecords, Index};
use thiserror::Error;

/// Most queries in one batch (SPEC 4.4).
pub const MAX_BATCH_QUERIES: usize = 10_000;

/// The whole batch is unusable (as opposed to one malformed query, which keeps its slot).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("the batch holds {0} queries; at most {MAX_BATCH_QUERIES} are allowed")]
    TooMany(usize),
    #[error("malformed batch: {0}")]
    Malformed(String),
}

/// Which query a JSON object or CSV row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    Card,
    Person,
}

/// The inputs of one query as a JSON object gives them, borrowed from the parsed body.
#[derive(Debug, Default)]
pub struct QueryInput<'a> {
    pub kind: Option<&'a str>,
    pub insurer_number: Option<&'a str>,
    pub symbol: Option<&'a str>,
    pub number: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub birthdate: Option<&'a str>,
    pub individual_number: Option<&'a str>,
    pub date: Option<&'a str>,
    pub limit_consent: Option<bool>,
}

impl<'a> QueryInput<'a> {
    /// Reads a query object field by field, so that a value of the wrong type is an error
    /// naming its field (SPEC 4.3); serde's own message named only a line and column, and
    /// quoted the value (an individual number sent as a JSON number).
    pub fn from_value(v: &'a serde_json::Value) -> Result<QueryInput<'a>, QueryError> {
        let object = v
            .as_object()
            .ok_or_else(|| QueryError::new("query", "must be a JSON object"))?;
        let mut input = QueryInput::default();
        for (name, value) in object {
            // The JSON fields are the CSV columns: one list names both.
            let Some(&field) = CSV_INPUT_COLUMNS.iter().find(|c| **c == name) else {
                return Err(QueryError::new(
                    "query",
                    format!(
                        "unknown field {}; the fields are {}",
                        quote_raw(name),
                        CSV_INPUT_COLUMNS.join(", ")
                    ),
                ));
            };
            if field == "limit_consent" {
                input.limit_consent = json_consent(value)?;
                continue;
            }
            let text = match value {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.as_str()),
                other => {
                    return Err(QueryError::new(
                        field,
                        format!(
                            "must be a JSON string (in quotes), not {}",
                            json_type(other)
                        ),
                    ))
                }
            };
            *input.text_field(field) = text;
        }
        Ok(input)
    }

    fn text_field(&mut self, field: &str) -> &mut Option<&'a str> {
        match field {
            "kind" => &mut self.kind,
            "insurer_number" => &mut self.insurer_number,
            "symbol" => &mut self.symbol,
            "number" => &mut self.number,
            "branch" => &mut self.branch,
            "birthdate" => &mut self.birthdate,
            "individual_number" => &mut self.individual_number,
            _ => &mut self.date,
        }
    }
}

/// `limit_consent` in JSON: `true`/`false`, or as the CSV form writes it (`1`, empty).
fn json_consent(value: &serde_json::Value) -> Result<Option<bool>, QueryError> {
    use serde_json::Value;
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) => parse_consent(Some(s)).map(Some),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(Some(false)),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(Some(true)),
        other => Err(QueryError::new(
            "limit_consent",
            format!("must be true or false, not {}", json_type(other)),
        )),
    }
}

/// What a JSON value is, for an error that must not quote it.
fn json_type(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl QueryInput<'_> {
    /// The query this input asks for, as `kind` (given by the endpoint or the `kind` field).
    pub fn to_query(&self, kind: QueryKind) -> Result<Query, QueryError> {
        let consent = self.limit_consent.unwrap_or(false);
        match kind {
            QueryKind::Card => {
                if self.individual_number.is_some() {
                    return Err(QueryError::new(
                        "individual_number",
                        "is not an input of a card query",
                    ));
                }
                CardQuery::parse(&CardFields {
                    insurer_number: self.insurer_number,
                    symbol: self.symbol,
                    number: self.number,
                    branch: self.branch,
                    birthdate: self.birthdate,
                    date: self.date,
                    limit_consent: consent,
                })
                .map(Query::Card)
            }
            QueryKind::Person => {
                let card_field = [
                    ("insurer_number", &self.insurer_number),
                    ("symbol", &self.symbol),
                    ("number", &self.number),
                    ("branch", &self.branch),
                    ("birthdate", &self.birthdate),
                ]
                .into_iter()
                .find(|(_, v)| v.is_some());
                if let Some((field, _)) = card_field {
                    return Err(QueryError::new(field, "is not an input of a person query"));
                }
                PersonQuery::parse(&PersonFields {
                    individual_number: self.individual_number,
                    date: self.date,
                    limit_consent: consent,
                })
                .map(Query::Person)
            }
        }
    }

    /// The query named by the `kind` field.
    pub fn to_query_by_kind(&self) -> Result<Query, QueryError> {
        self.to_query(parse_kind(self.kind)?)
    }
}

fn parse_kind(kind: Option<&str>) -> Result<QueryKind, QueryError> {
    match kind.map(str::trim) {
        Some("card") => Ok(QueryKind::Card),
        Some("person") => Ok(QueryKind::Person),
        None | Some("") => Err(QueryError::new("kind", "is required (card or person)")),
        Some(other) => Err(QueryError::new(
            "kind",
            format!("must be card or person, not {}", quote_raw(other)),
        )),
    }
}

/// Turns a JSON syntax error into a query error. serde names a line and column; the long
/// digit runs are masked all the same (SPEC 1.3).
fn input_error(e: serde_json::Error) -> QueryError {
    QueryError::new("query", mask_digit_runs(&e.to_string()).into_owned())
}

/// Parses the JSON body of a single query (`POST /v1/card`, `/v1/person`); a `kind` field, if
/// given, must agree.
pub fn parse_single(body: &[u8], kind: QueryKind) -> Result<Query, QueryError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(input_error)?;
    let input = QueryInput::from_value(&value)?;
    if input.kind.is_some() && parse_kind(input.kind)? != kind {
        return Err(QueryError::new("kind", "does not match the endpoint"));
    }
    input.to_query(kind)
}

/// One query of a JSON batch: the kind it names (when it names one, for the metrics of a
/// malformed query too) and the query or its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonItem {
    pub kind: Option<QueryKind>,
    pub query: Result<Query, QueryError>,
}

/// Parses a JSON batch: an array of query objects.
pub fn parse_json(body: &[u8]) -> Result<Vec<JsonItem>, BatchError> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
        BatchError::Malformed(format!("expected a JSON array of query objects: {e}"))
    })?;
    if values.len() > MAX_BATCH_QUERIES {
        return Err(BatchError::TooMany(values.len()));
    }
    Ok(values
        .iter()
        .map(|v| JsonItem {
            kind: v
                .get("kind")
                .and_then(serde_json::Value::as_str)
                .and_then(|k| parse_kind(Some(k)).ok()),
            query: QueryInput::from_value(v).and_then(|i| i.to_query_by_kind()),
        })
        .collect())
}

/// The columns of the CSV form, in the order the answer repeats them.
pub const CSV_INPUT_COLUMNS: [&str; 9] = [
    "kind",
    "insurer_number",
    "symbol",
    "number",
    "branch",
    "birthdate",
    "individual_number",
    "date",
    "limit_consent",
];

const CSV_ANSWER_COLUMNS: [&str; 20] = [
    "validity",
    "validity_name",
    "error",
    "answer_date",
    "generation",
    "q_insurer_number",
    "q_insurer_name",
    "q_symbol",
    "q_number",
    "q_branch",
    "q_relationship",
    "q_name",
    "q_name_kana",
    "q_sex",
    "q_birthdate",
    "q_qualification_date",
    "q_disqualification_date",
    "q_reason_of_loss",
    "q_copay_ratio",
    "q_limit_category",
];

/// One row of a CSV batch: its cells as given (in [`CSV_INPUT_COLUMNS`] order) and its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    pub cells: [String; 9],
    pub query: Result<Query, QueryError>,
}

/// Parses a CSV batch (SPEC 4.4). Its encoding is chosen as a snapshot file's is (SPEC 3):
/// UTF-8 (BOM optional) when it is valid UTF-8, else CP932 (Shift_JIS, what Japanese Windows
/// software writes) when it decodes without a single replacement. The answers are UTF-8.
pub fn parse_csv(body: &[u8]) -> Result<Vec<CsvRow>, BatchError> {
    let decoded = crate::snapshot::decode::decode(body)
        .map_err(|why| BatchError::Malformed(format!("the CSV {why}")))?;
    let body: &[u8] = &decoded.text;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| BatchError::Malformed(format!("CSV header: {e}")))?
        .clone();
    let mut columns = Vec::with_capacity(header.len());
    for name in header.iter() {
        let name = name.trim();
        let col = CSV_INPUT_COLUMNS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| {
                BatchError::Malformed(format!(
                    "unknown CSV column {}; the columns are {}",
                    quote_raw(name),
                    CSV_INPUT_COLUMNS.join(",")
                ))
            })?;
        if columns.contains(&col) {
            return Err(BatchError::Malformed(format!(
                "CSV column {name} appears twice"
            )));
        }
        columns.push(col);
    }
    if !columns.contains(&0) {
        return Err(BatchError::Malformed(
            "CSV header has no kind column".into(),
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| BatchError::Malformed(format!("CSV: {e}")))?;
        // No query field holds a line break: a cell with one is a quote left open, which
        // would swallow the rows after it into one cell, their queries lost.
        if record.iter().any(|cell| cell.contains(['\n', '\r'])) {
            let line = record.position().map_or(0, |p| p.line());
            return Err(BatchError::Malformed(format!(
                "CSV line {line}: a quoted cell runs over more than one line (a quote left open?)"
            )));
        }
        if rows.len() == MAX_BATCH_QUERIES {
            return Err(BatchError::TooMany(MAX_BATCH_QUERIES + 1));
        }
        let mut cells: [String; 9] = Default::default();
        for (value, &col) in record.iter().zip(&columns) {
            cells[col] = value.to_owned();
        }
        let query = if record.len() > columns.len() {
            Err(QueryError::new(
                "row",
                format!(
                    "has {} cells; the header names {}",
                    record.len(),
                    columns.len()
                ),
            ))
        } else {
            csv_query(&cells)
        };
        rows.push(CsvRow { cells, query });
    }
    Ok(rows)
}

fn opt(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn csv_query(c: &[String; 9]) -> Result<Query, QueryError> {
    let consent = parse_consent(opt(&c[8]))?;
    match parse_kind(Some(&c[0]))? {
        QueryKind::Card => {
            if !c[6].trim().is_empty() {
                return Err(QueryError::new(
                    "individual_number",
                    "is not an input of a card query",
                ));
            }
            CardQuery::parse(&CardFields {
                insurer_number: opt(&c[1]),
                symbol: opt(&c[2]),
                number: opt(&c[3]),
                branch: opt(&c[4]),
                birthdate: opt(&c[5]),
                date: opt(&c[7]),
                limit_consent: consent,
            })
            .map(Query::Card)
        }
        QueryKind::Person => PersonQuery::parse(&PersonFields {
            individual_number: opt(&c[6]),
            date: opt(&c[7]),
            limit_consent: consent,
        })
        .map(Query::Person),
    }
}

/// Answers a card query into `out` (the answer JSON of SPEC 4.3) and returns its validity.
pub fn answer_card<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &CardQuery,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    let outcome = index.card(q, today);
    let date = q.date.unwrap_or(today);
    write_answer(out, &outcome, date, index.generation(), q.limit_consent);
    outcome.validity()
}

/// Most queries [`answer_group`] looks up together: enough for the misses of many queries to
/// be in flight at once, few enough that what they fetch stays in L1.
pub const GROUP_QUERIES: usize = 16;

/// One query of a group.
#[derive(Debug, Clone, Copy)]
pub enum GroupQuery<'a> {
    Card(&'a CardQuery),
    Person(&'a PersonQuery),
}

impl<'a> GroupQuery<'a> {
    pub fn of(q: &'a Query) -> GroupQuery<'a> {
        match q {
            Query::Card(q) => GroupQuery::Card(q),
            Query::Person(q) => GroupQuery::Person(q),
        }
    }
}

/// What [`answer_group`] reuses from one group to the next: the answer being written, and
/// the group's card probes. A probe carries its key (up to 162 bytes): building a fixed array
/// of sixteen for every group copied 3 KB even for a group of one (2% of a core at depth 1).
pub struct GroupScratch {
    answer: Vec<u8>,
    probes: Vec<Option<CardProbe>>,
}

impl Default for GroupScratch {
    fn default() -> GroupScratch {
        GroupScratch {
            answer: Vec::with_capacity(2048),
            probes: Vec::with_capacity(GROUP_QUERIES),
        }
    }
}

/// Answers up to [`GROUP_QUERIES`] queries in order, each as [`answer_card`] or
/// [`answer_person`] would, calling `each(i, Some((validity, answer JSON)))` for a query and
/// `each(i, None)` for a `None` slot (a query that did not parse, say), so the caller writes
/// every reply in order.
///
/// Why in a group: a lookup in a large index is mostly waiting on memory (a card's directory
/// slot, its records, their text; a person's bucket, table entry, references: cache misses in
/// a row). The group goes step by step, first asking the CPU for that step's memory for every
/// query, so the misses of sixteen queries overlap instead of following one another.
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
    if let [one] = queries {
        // Nothing to overlap a single query's misses with: the steps below would only cost
        // (sixteen-slot arrays for one query; a pipelining depth of 1 is the reception desk).
        return answer_alone(index, *one, today, &mut scratch.answer, each);
    }
    let query = |i: usize| queries.get(i).copied().flatten();
    let card = |i: usize| match query(i) {
        Some(GroupQuery::Card(q)) => Some(q),
        _ => None,
    };
    let person = |i: usize| match query(i) {
        Some(GroupQuery::Person(q)) => Some(q),
        _ => None,
    };
    // Step 1: what needs no index memory (card keys, person hashes); ask for the first line.
    let GroupScratch { answer, probes } = scratch;
    probes.clear();
    probes.extend(
        (0..queries.len())
            .map(|i| card(i).and_then(|q| index.card_probe(&q.insurer, &q.symbol, &q.number))),
    );
    let hashes: [_; GROUP_QUERIES] =
        std::array::from_fn(|i| person(i).map(|q| index.person_hash(&q.individual_number)));
    for p in probes.iter().flatten() {
        index.prefetch_probe(p);
    }
    for h in hashes.iter().flatten() {
        index.prefetch_person_bucket(h);
    }
    // Step 2: card records, person table entries.
    let cards: [_; GROUP_QUERIES] =
        std::array::from_fn(|i| index.probed_records(probes.get(i).and_then(Option::as_ref)));
    for c in &cards {
        c.prefetch();
    }
    for h in hashes.iter().flatten() {
        index.prefetch_person_entry(h);
    }
    // Step 3: card text, person references; for a card whose first record does not cover
    // the date, the bucket of its person, whom SPEC 4.1 step 3 will look up.
    for c in &cards {
        c.prefetch_text();
    }
    let lost: [_; GROUP_QUERIES] = std::array::from_fn(|i| {
        card(i).and_then(|q| cards[i].lost_person(q.date.unwrap_or(today)))
    });
    for h in lost.iter().flatten() {
        index.prefetch_person_bucket(h);
    }
    let entries: [_; GROUP_QUERIES] =
        std::array::from_fn(|i| hashes[i].as_ref().and_then(|h| index.person_entry(h)));
    for e in entries.iter().flatten() {
        index.prefetch_person_refs(e);
    }
    for h in lost.iter().flatten() {
        index.prefetch_person_entry(h);
    }
    // Step 4: person records; the references of the lost cards' persons.
    for e in entries.iter().flatten() {
        index.prefetch_person_records(e);
    }
    let lost_entries: [_; GROUP_QUERIES] =
        std::array::from_fn(|i| lost[i].as_ref().and_then(|h| index.person_entry(h)));
    for e in lost_entries.iter().flatten() {
        index.prefetch_person_refs(e);
    }
    // Step 5: the text of person records (a person query's answer shows them); the lost
    // cards' persons' records (SPEC 4.1 step 3 reads only their dates).
    for e in entries.iter().flatten() {
        index.prefetch_person_text(e);
    }
    for e in lost_entries.iter().flatten() {
        index.prefetch_person_records(e);
    }
    // Step 6: answer, in order.
    for (i, card) in cards.into_iter().take(queries.len()).enumerate() {
        match query(i) {
            None => each(i, None),
            Some(q) => {
                let v = answer_slot(index, q, card, entries[i], today, answer);
                each(i, Some((v, answer)));
            }
        }
    }
}

/// [`answer_group`] for a group of one: its lookup without the steps.
fn answer_alone<B: AsRef<[u8]>>(
    index: &Index<B>,
    query: Option<GroupQuery<'_>>,
    today: Date,
    answer: &mut Vec<u8>,
    mut each: impl FnMut(usize, Option<(Validity, &[u8])>),
) {
    let Some(q) = query else {
        return each(0, None);
    };
    let (card, entry) = match q {
        GroupQuery::Card(c) => (index.card_records(&c.insurer, &c.symbol, &c.number), None),
        GroupQuery::Person(p) => (
            index.probed_records(None),
            index.person_entry(&index.person_hash(&p.individual_number)),
        ),
    };
    let v = answer_slot(index, q, card, entry, today, answer);
    each(0, Some((v, answer)));
}

/// Answers `query`, whose records were found as `card` (a card query) or `entry` (a person
/// query), into `answer`, and returns its validity.
fn answer_slot<'a, B: AsRef<[u8]>>(
    index: &'a Index<B>,
    query: GroupQuery<'_>,
    card: CardRecords<'a, B>,
    entry: Option<PersonEntry>,
    today: Date,
    answer: &mut Vec<u8>,
) -> Validity {
    let (outcome, date, consent) = match query {
        GroupQuery::Card(q) => (index.card_in(q, card, today), q.date, q.limit_consent),
        GroupQuery::Person(q) => (index.person_in(q, entry, today), q.date, q.limit_consent),
    };
    answer.clear();
    let date = date.unwrap_or(today);
    write_answer(answer, &outcome, date, index.generation(), consent);
    outcome.validity()
}

/// Answers a person query into `out` and returns its validity.
pub fn answer_person<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &PersonQuery,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    let outcome = index.person(q, today);
    let date = q.date.unwrap_or(today);
    write_answer(out, &outcome, date, index.generation(), q.limit_consent);
    outcome.validity()
}

/// Answers any query into `out` and returns its validity.
pub fn answer<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &Query,
    today: Date,
    out: &mut Vec<u8>,
) -> Validity {
    match q {
        Query::Card(c) => answer_card(index, c, today, out),
        Query::Person(p) => answer_person(index, p, today, out),
    }
}

/// Writes a query error as `{"error":"<field>: <reason>","field":"<field>"}`.
pub fn write_error(out: &mut Vec<u8>, e: &QueryError) {
    out.extend_from_slice(b"{\"error\":");
    write_json_str(out, &e.to_string());
    out.extend_from_slice(b",\"field\":");
    write_json_str(out, e.field);
    out.push(b'}');
}

/// What one slot of a batch came to.
#[derive(Debug, Clone, Copy)]
pub enum Slot<'q> {
    Answered(&'q Query, Validity),
    /// Answered with an error; the kind it names, if it names one.
    Malformed(Option<QueryKind>),
}

/// Told what each slot of a batch came to, in order.
pub type Observe<'o> = &'o mut dyn FnMut(Slot<'_>);

/// Answers a JSON batch from `index` into `out` as a JSON array, in order.
pub fn write_json_answers<B: AsRef<[u8]>>(
    index: &Index<B>,
    items: &[JsonItem],
    today: Date,
    out: &mut Vec<u8>,
    observe: Observe<'_>,
) {
    out.push(b'[');
    let mut scratch = GroupScratch::default();
    // In groups, so the lookups of a large batch overlap their cache misses (answer_group).
    for (g, group) in items.chunks(GROUP_QUERIES).enumerate() {
        let slots: [Option<GroupQuery<'_>>; GROUP_QUERIES] = std::array::from_fn(|i| {
            group
                .get(i)
                .and_then(|item| item.query.as_ref().ok())
                .map(GroupQuery::of)
        });
        answer_group(
            index,
            &slots[..group.len()],
            today,
            &mut scratch,
            |i, answered| {
                if g + i > 0 {
                    out.push(b',');
                }
                match (answered, &group[i].query) {
                    (Some((v, json)), Ok(q)) => {
                        out.extend_from_slice(json);
                        observe(Slot::Answered(q, v));
                    }
                    (_, Err(e)) => {
                        write_error(out, e);
                        observe(Slot::Malformed(group[i].kind));
                    }
                    // answer_group answers every slot that holds a query; were it not to,
                    // the query is answered alone.
                    (None, Ok(q)) => {
                        let v = answer(index, q, today, out);
                        observe(Slot::Answered(q, v));
                    }
                }
            },
        );
    }
    out.push(b']');
}

/// Answers a CSV batch from `index` into `out` as CSV, in order.
pub fn write_csv_answers<B: AsRef<[u8]>>(
    index: &Index<B>,
    rows: &[CsvRow],
    today: Date,
    out: &mut Vec<u8>,
    observe: Observe<'_>,
) {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(std::mem::take(out));
    let header = CSV_INPUT_COLUMNS.iter().chain(CSV_ANSWER_COLUMNS.iter());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(header);
    let mut fields: Vec<String> = Vec::with_capacity(29);
    for row in rows {
        fields.clear();
        fields.extend(row.cells.iter().cloned());
        match &row.query {
            Err(e) => {
                fields.extend(["".into(), "".into(), e.to_string()]);
                fields.resize(29, String::new());
                observe(Slot::Malformed(parse_kind(Some(&row.cells[0])).ok()));
            }
            Ok(q) => {
                let v = csv_answer(index, q, today, &mut fields);
                observe(Slot::Answered(q, v));
            }
        }
        let _ = w.write_record(&fields);
    }
    *out = w.into_inner().unwrap_or_default();
}

fn csv_answer<B: AsRef<[u8]>>(
    index: &Index<B>,
    q: &Query,
    today: Date,
    fields: &mut Vec<String>,
) -> Validity {
    let (outcome, date, consent) = match q {
        Query::Card(c) => (
            index.card(c, today),
            c.date.unwrap_or(today),
            c.limit_consent,
        ),
        Query::Person(p) => (
            index.person(p, today),
            p.date.unwrap_or(today),
            p.limit_consent,
        ),
    };
    let v = outcome.validity();
    let mut iso = Vec::with_capacity(10);
    date.write_iso(&mut iso);
    fields.extend([
        v.code().to_string(),
        v.as_str().to_owned(),
        String::new(),
        String::from_utf8_lossy(&iso).into_owned(),
        index.generation().to_owned(),
    ]);
    match &outcome {
        Outcome::Eligible(r) | Outcome::Invalid(r) => csv_qualification(r, consent, fields),
        _ => fields.resize(29, String::new()),
    }
    v
}

fn csv_qualification<R: Qualification>(r: &R, consent: bool, fields: &mut Vec<String>) {
    let iso = |d: Option<Date>| {
        d.map(|d| {
            let mut b = Vec::with_capacity(10);
            d.write_iso(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
        .unwrap_or_default()
    };
    fields.extend([
        r.insurer_number().to_owned(),
        r.insurer_name().to_owned(),
        r.symbol().to_owned(),
        r.number().to_owned(),
        String::from_utf8_lossy(&r.branch().as_bytes()).into_owned(),
        r.relationship().to_string(),
        r.name().to_owned(),
        r.name_kana().to_owned(),
        r.sex().to_string(),
        iso(Some(r.birthdate())),
        iso(Some(r.qualification_date())),
        iso(r.disqualification_date()),
        r.reason_of_loss().unwrap_or("").to_owned(),
        r.copay_ratio().to_string(),
        r.limit_category()
            .filter(|_| consent)
            .unwrap_or("")
            .to_owned(),
    ]);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::build::{build_in_memory, InsurerRows};
    use crate::domain::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    /// 33120015: card 12/3456 branch 00, person 12345678901(8), eligible since 2015-04-01;
    /// card 12/3457 branch 01 ended 2016-01-01 (person 22345678901x), who moved to 12/3458.
    pub(crate) fn index() -> Index<Vec<u8>> {
        index_of_cards_with_symbol("12")
    }

    /// Three cards of `symbol` (empty: cards without one).
    fn index_of_cards_with_symbol(symbol: &str) -> Index<Vec<u8>> {
        let rec = |number: &str, branch: u8, person: u64, qual: &str, disq: Option<&str>| Record {
            insurer: InsurerNumber::parse("33120015").unwrap(),
            symbol: symbol.into(),
            number: number.into(),
            branch: Branch::new(branch).unwrap(),
            individual_number: Some(IndividualNumber::from_first11(person)),
            name: "山田 太郎".into(),
            name_kana: "ヤマダ タロウ".into(),
            sex: Sex::Male,
            birthdate: d("1980-01-23"),
            relationship: Relationship::Insured,
            qualification_date: d(qual),
            disqualification_date: disq.map(d),
            reason_of_loss: disq.map(|_| ReasonOfLoss::OtherInsurance),
            copay_ratio: CopayRatio::new(30).unwrap(),
            limit_category: Some(LimitCategory::parse("A03").unwrap()),
        };
        let rows = vec![
            (rec("3456", 0, 12345678901, "2015-04-01", None), 2),
            (
                rec("3457", 1, 22345678901, "2010-04-01", Some("2016-01-01")),
                3,
            ),
            (rec("3458", 0, 22345678901, "2016-01-01", None), 4),
        ];
        let insurer = InsurerRows {
            number: InsurerNumber::parse("33120015").unwrap(),
            name: "地方職員共済組合".into(),
            kind: InsurerKind::Kyosai,
            snapshot_date: d("2026-11-01"),
            file: "33120015/20261101.csv".into(),
            rows,
        };
        let bytes =
            build_in_memory(vec![insurer], &PersonKey::demo(), d("2026-11-24"), "g-test").unwrap();
        Index::open(bytes, PersonKey::demo()).unwrap()
    }

    fn person(first11: u64) -> String {
        String::from_utf8(
            IndividualNumber::from_first11(first11)
                .expose_digits()
                .to_vec(),
        )
        .unwrap()
    }

    /// Answers a JSON batch and summarizes each slot as `validity` or `error:<field>`.
    fn check_json(input: &str, expected: Result<&[&str], BatchError>) {
        let index = index();
        let got = parse_json(input.as_bytes()).map(|queries| {
            let mut out = Vec::new();
            write_json_answers(&index, &queries, d("2026-11-24"), &mut out, &mut |_| {});
            let v: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
            v.iter()
                .map(|a| match &a["error"] {
                    serde_json::Value::Null => a["validity"].to_string(),
                    _ => format!("error:{}", a["field"].as_str().unwrap()),
                })
                .collect::<Vec<_>>()
        });
        let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, expected, "{input}");
    }

    #[test]
    fn json_batches() {
        let card = r#"{"kind":"card","insurer_number":"33120015","symbol":"12","number":"3456","birthdate":"1980-01-23"}"#;
        let p1 = format!(
            r#"{{"kind":"person","individual_number":"{}"}}"#,
            person(12345678901)
        );
        check_json("[]", Ok(&[]));
        check_json(&format!("[{card}]"), Ok(&["1"]));
        check_json(
            &format!(
                r#"[{card},{p1},{{"kind":"card","insurer_number":"33120015","number":"3457","symbol":"12","birthdate":"S55.1.23"}},{{"kind":"person","individual_number":"123456789019"}}]"#
            ),
            Ok(&["1", "1", "3", "error:individual_number"]),
        );
        check_json(
            r#"[{"kind":"nope"},{"kind":"card","number":3},{"kind":"card","bogus":"1"},{},7]"#,
            Ok(&[
                "error:kind",
                "error:number",
                "error:query",
                "error:kind",
                "error:query",
            ]),
        );
        // Regression: a value of the wrong JSON type was an error of field "query" quoting
        // serde's line and column; it names its field.
        check_json(
            r#"[{"kind":"card","insurer_number":33120015,"number":"1","birthdate":"1980-01-23"},
                {"kind":"card","insurer_number":"33120015","number":"3456","birthdate":"1980-01-23","limit_consent":"maybe"},
                {"kind":"card","insurer_number":"33120015","number":"3456","birthdate":"1980-01-23","limit_consent":[]},
                {"kind":"person","individual_number":["1"]},
                {"kind":7}]"#,
            Ok(&[
                "error:insurer_number",
                "error:limit_consent",
                "error:limit_consent",
                "error:individual_number",
                "error:kind",
            ]),
        );
        // limit_consent as JSON writes it, or as the CSV form does.
        for (value, expected) in [
            ("true", Some(Some(true))),
            ("false", Some(Some(false))),
            ("1", Some(Some(true))),
            ("0", Some(Some(false))),
            ("\"1\"", Some(Some(true))),
            ("\"\"", Some(Some(false))),
            ("null", Some(None)),
            ("2", None),
            ("\"maybe\"", None),
            ("{}", None),
        ] {
            let v: serde_json::Value = serde_json::from_str(value).unwrap();
            assert_eq!(json_consent(&v).ok(), expected, "{value}");
        }
        check_json(
            r#"[{"kind":"card","insurer_number":"33120015","number":"1","birthdate":"1980-01-23","date":"2026-02-30"}]"#,
            Ok(&["error:date"]),
        );
        check_json(
            r#"[{"kind":"person","individual_number":"1","insurer_number":"33120015"}]"#,
            Ok(&["error:insurer_number"]),
        );
        check_json(
            "{}",
            Err(BatchError::Malformed(
                "expected a JSON array of query objects: invalid type: map, expected a sequence at line 1 column 0".into(),
            )),
        );
        let many = format!("[{}]", vec!["{}"; MAX_BATCH_QUERIES + 1].join(","));
        check_json(&many, Err(BatchError::TooMany(MAX_BATCH_QUERIES + 1)));
    }

    /// A group answers each query as `answer_card` or `answer_person` alone does, in order,
    /// with the empty slots reported where they are: cards found, absent, lost, of unknown
    /// insurers, with keys too long for the directory (the FST path), the same card twice,
    /// and persons found, lost and unknown.
    /// Regression: a card without a symbol was answered with `"symbol":""`; SPEC 4.3 writes
    /// an absent value as null.
    #[test]
    fn a_card_without_a_symbol_answers_null() {
        let index = index_of_cards_with_symbol("");
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

    #[test]
    fn a_group_answers_as_single_queries() {
        let index = index();
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

    #[test]
    fn json_answer_slots_are_whole_answers() {
        let index = index();
        let q = parse_json(
            br#"[{"kind":"card","insurer_number":"33120015","symbol":"12","number":"3456","birthdate":"1980-01-23","limit_consent":true},{"kind":"card"}]"#,
        )
        .unwrap();
        let mut out = Vec::new();
        write_json_answers(&index, &q, d("2026-11-24"), &mut out, &mut |_| {});
        let mut single = Vec::new();
        answer(
            &index,
            q[0].query.as_ref().unwrap(),
            d("2026-11-24"),
            &mut single,
        );
        let expected = format!(
            "[{},{{\"error\":\"insurer_number: is required\",\"field\":\"insurer_number\"}}]",
            String::from_utf8(single).unwrap()
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert!(expected.contains("\"limit_category\":\"A03\""));
    }

    /// Answers a CSV batch and returns its lines with the first `keep` answer columns.
    fn check_csv(input: &str, keep: usize, expected: Result<&[&str], BatchError>) {
        let index = index();
        let got = parse_csv(input.as_bytes()).map(|rows| {
            let mut out = Vec::new();
            write_csv_answers(&index, &rows, d("2026-11-24"), &mut out, &mut |_| {});
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(out.as_slice());
            reader
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    assert_eq!(r.len(), 29, "{r:?}");
                    r.iter().take(9 + keep).collect::<Vec<_>>().join(",")
                })
                .collect::<Vec<_>>()
        });
        let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, expected, "{input}");
    }

    #[test]
    fn csv_batches() {
        let header = "kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent";
        let p = person(22345678901);
        check_csv(
            &format!("\u{feff}{header}\r\ncard,33120015,12,3456,,1980-01-23,,,1\r\nperson,,,,,,{p},2015-01-01,\r\ncard,33120015,12,3456,,1980-02-30,,,\r\nbogus,,,,,,,,\r\n"),
            3,
            Ok(&[
                &format!("{header},validity,validity_name,error"),
                "card,33120015,12,3456,,1980-01-23,,,1,1,eligible,",
                &format!("person,,,,,,{p},2015-01-01,,1,eligible,"),
                "card,33120015,12,3456,,1980-02-30,,,,,,birthdate: no such day: \"1980-02-30\"",
                "bogus,,,,,,,,,,,kind: must be card or person, not \"bogus\"",
            ]),
        );
        // Columns in another order, some absent; the answer repeats them in the standard order.
        check_csv(
            "number,kind,birthdate,insurer_number,symbol\n3457,card,1980-01-23,33120015,12\n",
            2,
            Ok(&[
                &format!("{header},validity,validity_name"),
                "card,33120015,12,3457,,1980-01-23,,,,3,invalid_newer_qualification",
            ]),
        );
        check_csv(
            "kind,insurer_number\ncard,33120015,extra\n",
            3,
            Ok(&[
                &format!("{header},validity,validity_name,error"),
                "card,33120015,,,,,,,,,,row: has 3 cells; the header names 2",
            ]),
        );
        check_csv(
            "kind,nope\n",
            0,
            Err(BatchError::Malformed(
                "unknown CSV column \"nope\"; the columns are kind,insurer_number,symbol,number,branch,birthdate,individual_number,date,limit_consent".into(),
            )),
        );
        check_csv(
            "number\n1\n",
            0,
            Err(BatchError::Malformed(
                "CSV header has no kind column".into(),
            )),
        );
        let many = format!("kind\n{}", "card\n".repeat(MAX_BATCH_QUERIES + 1));
        check_csv(&many, 0, Err(BatchError::TooMany(MAX_BATCH_QUERIES + 1)));
        // Regression: a quote left open swallowed the rows after it into one cell; three
        // rows got two answers.
        check_csv(
            "kind,individual_number\nperson,1\nperson,\"2\nperson,3\nperson,4\n",
            0,
            Err(BatchError::Malformed(
                "CSV line 3: a quoted cell runs over more than one line (a quote left open?)"
                    .into(),
            )),
        );
    }

    /// A batch from Japanese Windows software, in CP932: answered as the same batch in UTF-8.
    #[test]
    fn csv_batches_in_cp932() {
        let text = "kind,insurer_number,symbol,number,birthdate,date\r\ncard,３３１２００１５,１２,３４５６,Ｓ５５．１．２３,Ｒ６．１１．２４\r\n";
        let (cp932, _, unmappable) = encoding_rs::SHIFT_JIS.encode(text);
        assert!(!unmappable && std::str::from_utf8(&cp932).is_err());
        let answer = |body: &[u8]| {
            let rows = parse_csv(body).unwrap();
            let mut out = Vec::new();
            write_csv_answers(&index(), &rows, d("2026-11-24"), &mut out, &mut |_| {});
            String::from_utf8(out).unwrap()
        };
        let got = answer(&cp932);
        assert_eq!(got, answer(text.as_bytes()));
        assert!(
            got.contains(",Ｓ５５．１．２３,,Ｒ６．１１．２４,,1,eligible,"),
            "{got}"
        );
        let bad = parse_csv(b"kind\r\ncard\r\n\xff\xff\r\n").unwrap_err();
        assert_eq!(
            bad,
            BatchError::Malformed(
                "the CSV is neither UTF-8 nor CP932 (Shift_JIS); first byte invalid as UTF-8 is on line 3".into()
            )
        );
        // A row pasted in CP932 under a UTF-8 one: each alone decodes as CP932.
        let mut mixed = "kind,symbol\r\ncard,山田\r\n".as_bytes().to_vec();
        mixed.extend_from_slice(&encoding_rs::SHIFT_JIS.encode("card,山田\r\n").0);
        assert_eq!(
            parse_csv(&mixed).unwrap_err(),
            BatchError::Malformed(
                "the CSV mixes encodings: line 2 is UTF-8 but line 3 is not; save the whole file in one encoding".into()
            )
        );
    }

    #[test]
    fn csv_qualification_fields() {
        let index = index();
        let rows = parse_csv(b"kind,insurer_number,symbol,number,birthdate,date\ncard,33120015,12,3457,1980-01-23,2015-06-01\n").unwrap();
        let mut out = Vec::new();
        write_csv_answers(&index, &rows, d("2026-11-24"), &mut out, &mut |_| {});
        let text = String::from_utf8(out).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "card,33120015,12,3457,,1980-01-23,,2015-06-01,,1,eligible,,2015-06-01,g-test,33120015,地方職員共済組合,12,3457,01,1,山田 太郎,ヤマダ タロウ,1,1980-01-23,2010-04-01,2016-01-01,03,30,"
        );
    }

    #[test]
    fn single_queries() {
        let q = parse_single(
            br#"{"insurer_number":"33120015","number":"3456","birthdate":"1980-01-23"}"#,
            QueryKind::Card,
        );
        assert!(matches!(q, Ok(Query::Card(_))));
        let e = parse_single(br#"{"kind":"person"}"#, QueryKind::Card).unwrap_err();
        assert_eq!(e.field, "kind");
        let e = parse_single(b"not json", QueryKind::Person).unwrap_err();
        assert_eq!(e.field, "query");
        let e = parse_single(
            br#"{"individual_number":"123456789019"}"#,
            QueryKind::Person,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("123456789019"));
        let e =
            parse_single(br#"{"individual_number":123456789018}"#, QueryKind::Person).unwrap_err();
        assert!(!e.to_string().contains("123456789018"), "{e}");
        assert_eq!(e.field, "individual_number");
        // Regression: an individual number sent in another field came back in clear.
        for body in [
            r#"{"individual_number":"123456789018","date":"123456789018"}"#,
            r#"{"individual_number":"１２３４５６７８９０１８","date":"No.１２３４５６７８９０１８"}"#,
        ] {
            let e = parse_single(body.as_bytes(), QueryKind::Person).unwrap_err();
            assert_eq!(e.field, "date");
            assert!(e.to_string().contains("********"), "{e}");
            assert!(!e.to_string().contains("56789018"), "{e}");
            assert!(!e.to_string().contains("５６７８９０１８"), "{e}");
        }
    }
}
