//! JSON and CSV batch bodies (`POST /v1/batch`).
//!
//! Properties: no error quotes an individual number in clear; a JSON item's kind is its
//! query's; and a CSV row means what the same cells mean as a JSON query object (the two
//! forms are parsed by separate code, so each is the other's model).

use super::input::assert_no_clear_number;
use shikaku::query::batch::{parse_csv, parse_json, QueryInput, CSV_INPUT_COLUMNS, KOHI_FIELDS};
use shikaku::query::QueryKind;

/// A JSON batch body.
pub fn json(data: &[u8]) {
    let items = match parse_json(data) {
        Ok(items) => items,
        Err(e) => return assert_no_clear_number(&e.to_string(), "a JSON batch error"),
    };
    for item in items {
        match (&item.query, item.kind) {
            (Ok(q), kind) => assert_eq!(Some(q.kind()), kind, "the query is not of its kind"),
            (Err(e), _) => assert_no_clear_number(&e.to_string(), "a JSON query error"),
        }
    }
}

/// The columns a query of `kind` reads: the JSON form refuses the others, the CSV form
/// (every column on every row, as spreadsheets write them) ignores them when empty.
fn read_by(kind: QueryKind, column: &str) -> bool {
    let card = ["insurer_number", "symbol", "number", "branch", "birthdate"];
    match kind {
        QueryKind::Card => column != "individual_number",
        QueryKind::Person => !card.contains(&column),
        // Every other field given is refused by both forms.
        QueryKind::Kohi => true,
    }
}

/// A CSV batch body.
pub fn csv(data: &[u8]) {
    let rows = match parse_csv(data) {
        Ok(rows) => rows,
        Err(e) => return assert_no_clear_number(&e.to_string(), "a CSV batch error"),
    };
    for row in rows {
        if let Err(e) = &row.query {
            assert_no_clear_number(&e.to_string(), "a CSV query error");
        }
        let kind = match row.cells[0].trim() {
            "card" => QueryKind::Card,
            "person" => QueryKind::Person,
            "kohi" => QueryKind::Kohi,
            _ => continue,
        };
        if row.query.as_ref().is_err_and(|e| e.field == "row") {
            continue; // more cells than columns: the CSV form's own error
        }
        if kind == QueryKind::Card && !row.cells[6].trim().is_empty() {
            continue; // refused by both forms, under the same field (checked by the tests)
        }
        let object: serde_json::Map<String, serde_json::Value> = CSV_INPUT_COLUMNS
            .iter()
            .chain(&KOHI_FIELDS)
            .zip(&row.cells)
            .filter(|(column, cell)| !cell.is_empty() && read_by(kind, column))
            .map(|(column, cell)| (column.to_string(), serde_json::Value::from(cell.as_str())))
            .collect();
        let value = serde_json::Value::Object(object);
        let json = QueryInput::from_value(&value).and_then(|i| i.to_query_by_kind());
        match (&row.query, &json) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "CSV and JSON read the cells differently"),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "CSV and JSON disagree on cells {:?}: CSV {:?}, JSON {:?}",
                row.cells, row.query, json
            ),
        }
    }
}
