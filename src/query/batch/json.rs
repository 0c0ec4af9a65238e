//! JSON batches and single JSON queries: a query object read field by field (an error names
//! the field), a batch answered in groups.

use super::{parse_kind, BatchError, Observe, Slot, CSV_INPUT_COLUMNS, MAX_BATCH_QUERIES};
use crate::domain::text::{mask_digit_runs, quote_raw};
use crate::domain::Date;
use crate::index::Index;
use crate::query::answer::{
    answer, answer_group, write_error, GroupQuery, GroupScratch, GROUP_QUERIES,
};
use crate::query::{
    parse_consent, CardFields, CardQuery, KohiFields, KohiQuery, PersonFields, PersonQuery, Query,
    QueryError, QueryKind,
};

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
    pub payer_number: Option<&'a str>,
    pub recipient_number: Option<&'a str>,
    pub institution_code: Option<&'a str>,
}

/// The fields of a public-expense query besides those a card query shares (`kind`,
/// `birthdate`, `date`).
pub const KOHI_FIELDS: [&str; 3] = ["payer_number", "recipient_number", "institution_code"];

impl<'a> QueryInput<'a> {
    /// Reads a query object field by field, so that a value of the wrong type is an error
    /// naming its field (docs/api.md#answer); serde's own message named only a line and column, and
    /// quoted the value (an individual number sent as a JSON number).
    pub fn from_value(v: &'a serde_json::Value) -> Result<QueryInput<'a>, QueryError> {
        let object = v
            .as_object()
            .ok_or_else(|| QueryError::new("query", "must be a JSON object"))?;
        let mut input = QueryInput::default();
        for (name, value) in object {
            // The JSON fields are the CSV columns: one list names both.
            let known = CSV_INPUT_COLUMNS.iter().chain(&KOHI_FIELDS);
            let Some(&field) = known.clone().find(|c| **c == name) else {
                let all: Vec<&str> = known.copied().collect();
                return Err(QueryError::new(
                    "query",
                    format!(
                        "unknown field {}; the fields are {}",
                        quote_raw(name),
                        all.join(", ")
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
            "payer_number" => &mut self.payer_number,
            "recipient_number" => &mut self.recipient_number,
            "institution_code" => &mut self.institution_code,
            _ => &mut self.date,
        }
    }
}

/// `limit_consent` in JSON: `true`/`false`, or as the CSV form writes it (`1`, `"1"`, `""`);
/// nothing else.
fn json_consent(value: &serde_json::Value) -> Result<Option<bool>, QueryError> {
    use serde_json::Value;
    let refused = |what: &str| {
        QueryError::new(
            "limit_consent",
            format!("must be true, false, 1, \"1\" or \"\", not {what}"),
        )
    };
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) => parse_consent(Some(s))
            .map(Some)
            .map_err(|_| refused(&quote_raw(s))),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(Some(true)),
        Value::Number(_) => Err(refused("another number")),
        other => Err(refused(json_type(other))),
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
        if kind != QueryKind::Kohi {
            let kohi_field = [
                ("payer_number", &self.payer_number),
                ("recipient_number", &self.recipient_number),
                ("institution_code", &self.institution_code),
            ]
            .into_iter()
            .find(|(_, v)| v.is_some());
            if let Some((field, _)) = kohi_field {
                return Err(QueryError::new(field, "is an input of a kohi query only"));
            }
        }
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
            QueryKind::Kohi => {
                let other = [
                    ("insurer_number", self.insurer_number.is_some()),
                    ("symbol", self.symbol.is_some()),
                    ("number", self.number.is_some()),
                    ("branch", self.branch.is_some()),
                    ("individual_number", self.individual_number.is_some()),
                    ("limit_consent", self.limit_consent.is_some()),
                ]
                .into_iter()
                .find(|(_, given)| *given);
                if let Some((field, _)) = other {
                    return Err(QueryError::new(field, "is not an input of a kohi query"));
                }
                KohiQuery::parse(&KohiFields {
                    payer_number: self.payer_number,
                    recipient_number: self.recipient_number,
                    birthdate: self.birthdate,
                    date: self.date,
                    institution_code: self.institution_code,
                })
                .map(Query::Kohi)
            }
        }
    }

    /// The query named by the `kind` field.
    pub fn to_query_by_kind(&self) -> Result<Query, QueryError> {
        self.to_query(parse_kind(self.kind)?)
    }
}

/// Turns a JSON syntax error into a query error. serde names a line and column; the long
/// digit runs are masked all the same (docs/api.md#individual-number).
fn input_error(e: serde_json::Error) -> QueryError {
    QueryError::new("query", mask_digit_runs(&e.to_string()).into_owned())
}

/// Parses the JSON body of a single query (`POST /v1/card`, `/v1/person`); a `kind` field, if
/// given, must agree.
pub fn parse_single(body: &[u8], kind: QueryKind) -> Result<Query, QueryError> {
    let super::unique::UniqueKeys(value) = serde_json::from_slice(body).map_err(input_error)?;
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
    let values: Vec<super::unique::UniqueKeys> = serde_json::from_slice(body).map_err(|e| {
        // serde quotes what it found (`invalid type: integer ...`), an individual number too: masked.
        BatchError::Malformed(format!(
            "expected a JSON array of query objects: {}",
            mask_digit_runs(&e.to_string())
        ))
    })?;
    let values: Vec<serde_json::Value> = values.into_iter().map(|u| u.0).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day as d, individual_number as person, three_cards_index};

    /// Answers a JSON batch and summarizes each slot as `validity` or `error:<field>`.
    fn check_json(input: &str, expected: Result<&[&str], BatchError>) {
        let index = three_cards_index("12");
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
            ("0", None),
            ("\"0\"", None),
            ("\"yes\"", None),
            ("\"no\"", None),
            ("\"limit\"", None),
            ("\"true\"", None),
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
        // Regression: a key given twice was taken silently (the last one won).
        check_json(
            r#"[{"kind":"card","kind":"person"}]"#,
            Err(BatchError::Malformed(
                "expected a JSON array of query objects: duplicate field \"kind\": give each field once at line 1 column 22".into(),
            )),
        );
        // Regression (fuzzing): serde's message quoted the number in clear.
        check_json(
            "123456789018",
            Err(BatchError::Malformed(
                "expected a JSON array of query objects: invalid type: integer `********9018`, expected a sequence at line 1 column 12".into(),
            )),
        );
        let many = format!("[{}]", vec!["{}"; MAX_BATCH_QUERIES + 1].join(","));
        check_json(&many, Err(BatchError::TooMany(MAX_BATCH_QUERIES + 1)));
    }

    #[test]
    fn json_answer_slots_are_whole_answers() {
        let index = three_cards_index("12");
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

    #[test]
    fn single_queries() {
        let q = parse_single(
            br#"{"insurer_number":"33120015","number":"3456","birthdate":"1980-01-23"}"#,
            QueryKind::Card,
        );
        assert!(matches!(q, Ok(Query::Card(_))));
        let e = parse_single(br#"{"kind":"person"}"#, QueryKind::Card).unwrap_err();
        assert_eq!(e.field, "kind");
        let e = parse_single(
            br#"{"individual_number":"1","date":"2026-01-01","date":"2026-02-01"}"#,
            QueryKind::Person,
        )
        .unwrap_err();
        assert_eq!(e.field, "query");
        assert!(e.to_string().contains("duplicate field \"date\""), "{e}");
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
