//! JSON read with every object's keys checked: a key given twice is an error naming it.
//! `serde_json::Value` keeps the last of two equal keys silently, so a query holding
//! `"date"` twice would be answered for one of them without a word.

use crate::domain::text::quote_raw;
use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A JSON value none of whose objects (at any depth) holds a key twice.
pub struct UniqueKeys(pub Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UniqueKeys, D::Error> {
        d.deserialize_any(UniqueVisitor).map(UniqueKeys)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!(
                    "duplicate field {}: give each field once",
                    quote_raw(&key)
                )));
            }
            let UniqueKeys(v) = map.next_value()?;
            object.insert(key, v);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<&str, &str>) {
        let got = serde_json::from_str::<UniqueKeys>(input)
            .map(|u| u.0.to_string())
            .map_err(|e| e.to_string());
        assert_eq!(
            got.as_deref(),
            expected.map_err(|e| e.to_owned()).as_deref(),
            "{input}"
        );
        // Without duplicates, the value is serde_json's own.
        if let Ok(v) = &got {
            let plain: Value = serde_json::from_str(input).unwrap();
            assert_eq!(*v, plain.to_string());
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        check(
            r#"[1,-2,3.5,"x",null,true,{"a":{"b":[]}}]"#,
            Ok(r#"[1,-2,3.5,"x",null,true,{"a":{"b":[]}}]"#),
        );
        check(
            r#"{"date":"2026-01-01","date":"2026-02-01"}"#,
            Err(r#"duplicate field "date": give each field once at line 1 column 27"#),
        );
        check(
            r#"[{"a":1},{"b":{"c":1,"c":2}}]"#,
            Err(r#"duplicate field "c": give each field once at line 1 column 24"#),
        );
        // The key is quoted masked, as every input is.
        check(
            r#"{"123456789018":1,"123456789018":2}"#,
            Err(r#"duplicate field "********9018": give each field once at line 1 column 32"#),
        );
    }
}
