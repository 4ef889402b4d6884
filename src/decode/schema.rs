//! Feature schemas: which fields of a record are features, and of which kind.
//!
//! A schema is either written by the user (a TOML or JSON file with a `features` list, the same
//! shape as a stream's `features` in the service config) or inferred from the reference data.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DecodeError;

/// The statistical kind of a feature: it decides which tests run on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureKind {
    /// Real-valued: compared with KS, Wasserstein and binned metrics over quantile bins.
    Numeric,
    /// Labels: compared with chi-square and binned metrics over the reference categories.
    Categorical,
}

impl FeatureKind {
    /// The lowercase name used in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureKind::Numeric => "numeric",
            FeatureKind::Categorical => "categorical",
        }
    }
}

/// One feature of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// The field name in the record (top level or under `"features"`).
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: FeatureKind,
}

/// An ordered list of features. Fields of a record that are not listed are counted as unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The features, in report order.
    pub features: Vec<FeatureSpec>,
}

impl Schema {
    /// A schema of the named features with their kinds, in order.
    pub fn of(features: &[(&str, FeatureKind)]) -> Schema {
        Schema {
            features: features
                .iter()
                .map(|&(name, kind)| FeatureSpec {
                    name: name.to_string(),
                    kind,
                })
                .collect(),
        }
    }

    /// Reads a schema from a `.toml` or `.json` file and validates it.
    pub fn load(path: &Path) -> Result<Schema, DecodeError> {
        let text = std::fs::read_to_string(path).map_err(|source| DecodeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        let schema: Schema = if is_json {
            serde_json::from_str(&text).map_err(|err| DecodeError::Schema {
                path: path.to_path_buf(),
                message: err.to_string(),
            })?
        } else {
            toml::from_str(&text).map_err(|err| DecodeError::Schema {
                path: path.to_path_buf(),
                message: err.to_string(),
            })?
        };
        schema.validate().map_err(|message| DecodeError::Schema {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(schema)
    }

    /// Checks that the schema names at least one feature and no feature twice.
    pub fn validate(&self) -> Result<(), String> {
        if self.features.is_empty() {
            return Err("the schema lists no features".to_string());
        }
        let mut seen = std::collections::HashSet::new();
        let mut problems = Vec::new();
        for feature in &self.features {
            if feature.name.is_empty() {
                problems.push("a feature has an empty name".to_string());
            } else if super::RESERVED_FIELDS.contains(&feature.name.as_str()) {
                problems.push(format!(
                    "feature `{}` uses a reserved field name (reserved: {})",
                    feature.name,
                    super::RESERVED_FIELDS.join(", ")
                ));
            } else if !seen.insert(feature.name.as_str()) {
                problems.push(format!("feature `{}` is listed twice", feature.name));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The position of a feature by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }
}
