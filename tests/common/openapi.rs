//! Holds every answer of driftgate's API to the OpenAPI document the same service serves.
//!
//! `http::http_with` calls `check` after each request, so every test that talks to the API also
//! checks the document against real answers: the status must be documented for that path and
//! method, and a JSON body must match its schema. The schemas are made strict first (no property
//! the document does not name), so an undocumented field fails as surely as a missing one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// The documents fetched so far, by service address.
static DOCUMENTS: Mutex<BTreeMap<String, Arc<Value>>> = Mutex::new(BTreeMap::new());

/// Panics, naming the request, when the answer is not what the service's document says.
pub fn check(address: &str, method: &str, path: &str, status: u16, body: &str) {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/api/v1/openapi.json" || !(path.starts_with("/api/") || path == "/readyz") {
        return;
    }
    let document = document(address);
    let request = format!("{method} {path} → {status}");
    let operation = find(&document, path).and_then(|item| item.get(method.to_lowercase()));
    let Some(operation) = operation else {
        // Unknown paths and methods answer the documented error body.
        assert!(
            matches!(status, 404 | 405),
            "{request}: not in the document"
        );
        return validate(
            &document,
            &json!({"$ref": "#/components/schemas/ErrorBody"}),
            body,
            &request,
        );
    };
    let answer = &operation["responses"][status.to_string()];
    assert!(
        answer.is_object(),
        "{request}: the status is not documented"
    );
    if let Some(schema) = answer["content"]["application/json"].get("schema") {
        validate(&document, schema, body, &request);
    }
}

/// The service's document, fetched once per address.
fn document(address: &str) -> Arc<Value> {
    let mut documents = DOCUMENTS.lock().unwrap_or_else(|p| p.into_inner());
    let document = documents.entry(address.to_string()).or_insert_with(|| {
        let (status, body) =
            super::http::unchecked(address, "GET", "/api/v1/openapi.json", &[], "");
        assert_eq!(status, 200, "GET /api/v1/openapi.json: {body}");
        Arc::new(strict(
            serde_json::from_str(&body).expect("the document is JSON"),
        ))
    });
    Arc::clone(document)
}

/// The path item whose template matches `path` (`{name}` matches one segment).
fn find<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
    let segments: Vec<&str> = path.split('/').collect();
    document["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, item)| {
            let pattern: Vec<&str> = template.split('/').collect();
            let matches = pattern.len() == segments.len()
                && pattern.iter().zip(&segments).all(|(p, s)| {
                    (p.starts_with('{') && p.ends_with('}') && !s.is_empty()) || p == s
                });
            matches.then_some(item)
        })
}

/// Validates `body` against `schema`, resolved within the document.
fn validate(document: &Value, schema: &Value, body: &str, request: &str) {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::draft202012::new(&root).expect("the document's schemas compile");
    let instance: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{request}: the body is not JSON ({e}): {body}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    let excerpt: String = body.chars().take(2000).collect();
    assert!(
        errors.is_empty(),
        "{request}: the answer does not match the document:\n{}\n{excerpt}",
        errors.join("\n")
    );
}

/// The document with `unevaluatedProperties: false` on every object schema, except the parts
/// of an `allOf` (its holder gets it instead, so each part may see the others' properties).
fn strict(mut document: Value) -> Value {
    let mut parts = Vec::new();
    collect_all_of_refs(&document, &mut parts);
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        for (name, schema) in schemas.iter_mut() {
            let is_part = parts
                .iter()
                .any(|p| p == &format!("#/components/schemas/{name}"));
            close(schema, is_part);
        }
    }
    document
}

/// The `$ref`s that appear as parts of an `allOf`.
fn collect_all_of_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(items)) = map.get("allOf") {
                out.extend(
                    items
                        .iter()
                        .filter_map(|i| i["$ref"].as_str())
                        .map(String::from),
                );
            }
            map.values().for_each(|v| collect_all_of_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_all_of_refs(v, out)),
        _ => {}
    }
}

/// Closes `schema` and the object schemas inside it; `is_part` leaves this level open.
fn close(schema: &mut Value, is_part: bool) {
    let Value::Object(map) = schema else {
        return;
    };
    let holds_parts = map.contains_key("allOf");
    if !is_part && (map.contains_key("properties") || holds_parts) {
        map.insert("unevaluatedProperties".into(), false.into());
    }
    for (key, value) in map.iter_mut() {
        match (key.as_str(), value) {
            ("allOf", Value::Array(items)) => items.iter_mut().for_each(|i| close(i, true)),
            ("properties", Value::Object(properties)) => {
                properties.values_mut().for_each(|p| close(p, false))
            }
            ("items" | "additionalProperties", item) => close(item, false),
            ("oneOf" | "anyOf", Value::Array(items)) => {
                items.iter_mut().for_each(|i| close(i, false))
            }
            _ => {}
        }
    }
}
