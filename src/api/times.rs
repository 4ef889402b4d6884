//! Times in API answers: RFC 3339 everywhere, with the epoch-milliseconds twin kept.
//!
//! The store keeps times as epoch milliseconds in fields named `*_at`. Before an answer leaves,
//! every such field holding an integer becomes an RFC 3339 string (UTC, milliseconds) and its
//! number moves to `*_at_ms`, at any depth; `null` stays `null` (with a `null` twin). One rule
//! in one place, so no endpoint answers in a different time format; `rfc3339_schemas` applies
//! the same rule to the OpenAPI document's schemas.

use serde_json::Value;

/// Rewrites every `*_at` epoch-ms field of `value` (recursively) as described above.
pub fn rfc3339_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().filter(|k| k.ends_with("_at")).cloned().collect();
            for key in keys {
                let twin = format!("{key}_ms");
                match map.get(&key) {
                    Some(Value::Number(n)) if n.as_i64().is_some() => {
                        let ms = n.as_i64().expect("checked");
                        map.insert(twin, ms.into());
                        map.insert(key, crate::pipeline::rfc3339(ms).into());
                    }
                    Some(Value::Null) if !map.contains_key(&twin) => {
                        map.insert(twin, Value::Null);
                    }
                    _ => {}
                }
            }
            map.values_mut().for_each(rfc3339_times);
        }
        Value::Array(items) => items.iter_mut().for_each(rfc3339_times),
        _ => {}
    }
}

/// Rewrites every integer `*_at` property of every schema in `document` (recursively) as the
/// answers are rewritten: an RFC 3339 string, and a `*_at_ms` twin with the integer schema,
/// required when the original is.
pub fn rfc3339_schemas(document: &mut Value) {
    match document {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                let twins = time_properties(properties);
                if let Some(Value::Array(required)) = map.get_mut("required") {
                    let more: Vec<Value> = required
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|name| twins.iter().any(|twin| twin == name))
                        .map(|name| format!("{name}_ms").into())
                        .collect();
                    required.extend(more);
                }
            }
            map.values_mut().for_each(rfc3339_schemas);
        }
        Value::Array(items) => items.iter_mut().for_each(rfc3339_schemas),
        _ => {}
    }
}

/// Rewrites the integer `*_at` properties of one schema; returns their names.
fn time_properties(properties: &mut serde_json::Map<String, Value>) -> Vec<String> {
    let names: Vec<String> = properties
        .iter()
        .filter(|(name, schema)| name.ends_with("_at") && is_integer(schema))
        .map(|(name, _)| name.clone())
        .collect();
    for name in &names {
        let integer = properties[name].clone();
        let nullable = integer["type"]
            .as_array()
            .is_some_and(|t| t.contains(&"null".into()));
        let kind: Value = if nullable {
            serde_json::json!(["string", "null"])
        } else {
            "string".into()
        };
        let description = format!(
            "RFC 3339 (UTC, milliseconds); `{name}_ms` is the same time in epoch milliseconds."
        );
        properties.insert(
            name.clone(),
            serde_json::json!({"type": kind, "format": "date-time", "description": description}),
        );
        properties.insert(format!("{name}_ms"), integer);
    }
    names
}

/// Whether a schema is an integer (or a nullable one).
fn is_integer(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(kind) => kind == "integer",
        Value::Array(kinds) => kinds.contains(&"integer".into()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_14_epoch_fields_become_rfc3339_with_ms_twins() {
        let mut value = serde_json::json!({
            "run": {"created_at": 1_700_000_000_123i64, "finished_at": null, "status": "ok"},
            "tasks": [{"attempts": [{"started_at": 0}]}],
            "at_ms": 5,
        });
        rfc3339_times(&mut value);
        assert_eq!(value["run"]["created_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(value["run"]["created_at_ms"], 1_700_000_000_123i64);
        assert_eq!(value["run"]["finished_at"], Value::Null);
        assert_eq!(value["run"]["finished_at_ms"], Value::Null);
        assert_eq!(
            value["tasks"][0]["attempts"][0]["started_at"],
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(value["at_ms"], 5);
    }

    #[test]
    fn issue_14_the_document_says_what_the_answers_do() {
        let mut schema = serde_json::json!({"components": {"schemas": {"Run": {
            "type": "object",
            "required": ["id", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "created_at": {"type": "integer", "format": "int64"},
                "finished_at": {"type": ["integer", "null"], "format": "int64"},
                "format_at": {"type": "string"},
            },
        }}}});
        rfc3339_schemas(&mut schema);
        let run = &schema["components"]["schemas"]["Run"];
        assert_eq!(
            run["required"],
            serde_json::json!(["id", "created_at", "created_at_ms"])
        );
        assert_eq!(run["properties"]["created_at"]["type"], "string");
        assert_eq!(run["properties"]["created_at"]["format"], "date-time");
        assert_eq!(run["properties"]["created_at_ms"]["type"], "integer");
        assert_eq!(
            run["properties"]["finished_at"]["type"],
            serde_json::json!(["string", "null"])
        );
        assert_eq!(
            run["properties"]["finished_at_ms"]["type"],
            serde_json::json!(["integer", "null"])
        );
        assert_eq!(run["properties"]["format_at"]["type"], "string");
    }
}
