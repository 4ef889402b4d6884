//! TOML files parsed into config types, with errors in the words users write config in.
//!
//! A parse error names `file:line:column`, the key path as written in the file
//! (`streams[0].features[7].kind`) and what is wrong in plain terms: never a Rust type name.
//! serde stops at the first value of the wrong shape; everything past that point is checked by
//! validation, which reports every problem at once.

use std::path::Path;

use serde::de::DeserializeOwned;

/// A TOML file that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct TomlError {
    /// `file:line:column` (or the file alone when the parser gave no place).
    pub place: String,
    /// The key path as written (`streams[0].window.records`) and what is wrong there.
    pub message: String,
    /// The key path alone (empty when the problem is not at a key, e.g. a syntax error).
    pub key: String,
}

impl TomlError {
    /// Where: `file:line:column`, and the key path when there is one.
    pub fn at(&self) -> String {
        if self.key.is_empty() {
            self.place.clone()
        } else {
            format!("{}: {}", self.place, self.key)
        }
    }

    /// What is wrong, without the place and the key.
    pub fn what(&self) -> &str {
        self.message
            .strip_prefix(&format!("{}: ", self.key))
            .filter(|_| !self.key.is_empty())
            .unwrap_or(&self.message)
    }
}

/// Parses `text` (the contents of `file`) into `T`; the error is one line a user can act on.
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, TomlError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let place = match inner.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("{}:{line}:{column}", file.display())
            }
            None => file.display().to_string(),
        };
        let message = plain(inner.message(), &key);
        let key = if key == "." { String::new() } else { key };
        let message = if key.is_empty() {
            message
        } else {
            format!("{key}: {message}")
        };
        TomlError {
            place,
            message,
            key,
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// serde's and toml's messages rewritten in user terms; `key` is where it happened.
pub fn plain(message: &str, key: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (value, expected) = split_expected(rest);
        let noun = key
            .rsplit('.')
            .next()
            .map(|k| k.split('[').next().unwrap_or(k).replace('_', " "))
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "value".to_string());
        return format!("{value} is not a {noun}; use {}", listed(expected, "or"));
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = split_expected(rest);
        return format!(
            "{field} is not a known key; the keys here are {}",
            listed(expected, "and")
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("the key {field} is required here");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("expected {}, found {}", noun(expected), found_value(found));
        }
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("expected {}, found {}", noun(expected), found_value(found));
        }
    }
    message.to_string()
}

/// `` `x`, expected `a` or `b` `` → (`` `x` ``, `` `a` or `b` ``).
fn split_expected(rest: &str) -> (&str, &str) {
    match rest.split_once(", expected ") {
        Some((value, expected)) => (value, expected.trim_start_matches("one of ")),
        None => (rest, ""),
    }
}

/// serde lists alternatives as `` `a`, `b` `` or `` `a` or `b` ``; users read "a, b or c" (or
/// "a, b and c", with `and`).
fn listed(expected: &str, conjunction: &str) -> String {
    if expected.is_empty() {
        return "one of the documented values (README, Configuration)".to_string();
    }
    let items: Vec<&str> = expected
        .split(", ")
        .flat_map(|part| part.split(" or "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("{} {conjunction} {last}", rest.join(", "))
        }
        _ => expected.to_string(),
    }
}

/// A Rust/serde description of what was expected, as a user would say it.
fn noun(expected: &str) -> String {
    let expected = expected.trim();
    let word = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            "a whole number"
        }
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" | "a borrowed string" | "a character" | "char" => "a string",
        "a sequence" => "a list",
        "a map" => "a table",
        "a nonzero usize" | "a nonzero u64" | "a nonzero u32" => "a whole number above zero",
        other if other.starts_with("struct ") || other.starts_with("a map") => "a table",
        other if other.starts_with("enum ") => "one of the documented values",
        other if other.starts_with("tuple") => "a list",
        other => return other.to_string(),
    };
    word.to_string()
}

/// `string "abc"` → `the string "abc"`; `integer `5`` → `the number 5`.
fn found_value(found: &str) -> String {
    let found = found.trim();
    if let Some(rest) = found.strip_prefix("integer ") {
        return format!("the number {}", rest.trim_matches('`'));
    }
    if let Some(rest) = found.strip_prefix("floating point ") {
        return format!("the number {}", rest.trim_matches('`'));
    }
    if let Some(rest) = found.strip_prefix("boolean ") {
        return rest.trim_matches('`').to_string();
    }
    match found {
        "sequence" => "a list".to_string(),
        "map" => "a table".to_string(),
        other => format!("the {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        streams: Vec<Stream>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Stream {
        name: String,
        records: Option<u64>,
        features: Vec<crate::decode::FeatureSpec>,
    }

    fn error(text: &str) -> String {
        parse::<File>(Path::new("driftgate.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn issue_14_a_bad_kind_names_place_key_and_choices() {
        let text = "[[streams]]\nname = \"a\"\nfeatures = [\n  { name = \"x\", kind = \"numeric\" },\n  { name = \"y\", kind = \"category\" },\n]\n";
        assert_eq!(
            error(text),
            "driftgate.toml:5:24: streams[0].features[1].kind: `category` is not a kind; use `numeric` or `categorical`"
        );
    }

    #[test]
    fn wrong_types_unknown_and_missing_keys_read_as_words() {
        let text = "[[streams]]\nname = \"a\"\nrecords = \"many\"\nfeatures = []\n";
        let message = error(text);
        assert!(message.starts_with("driftgate.toml:3:11: streams[0].records: expected a whole number, found the string \"many\""), "{message}");
        let message = error("[[streams]]\nname = \"a\"\nfeatures = []\ncolour = 1\n");
        assert!(message.contains("streams[0].colour: `colour` is not a known key; the keys here are `name`, `records` and `features`"), "{message}");
        let message = error("[[streams]]\nfeatures = []\n");
        assert!(
            message.contains("streams[0]: the key `name` is required here"),
            "{message}"
        );
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let message = error("[[streams]\nname = 1\n");
        assert!(message.starts_with("driftgate.toml:1:"), "{message}");
    }
}
