//! Times in API answers: RFC 3339 everywhere, with the epoch-milliseconds twin kept.
//!
//! The store keeps times as epoch milliseconds in fields named `*_at`. Before an answer leaves,
//! every such field holding an integer becomes an RFC 3339 string (UTC, milliseconds) and its
//! number moves to `*_at_ms`, at any depth; `null` stays `null` (with a `null` twin). One rule
//! in one place, so no endpoint answers in a different time format.

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
}
