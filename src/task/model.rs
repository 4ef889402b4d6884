//! The built-in tasks' model: a transform of the features (standardised numbers, one-hot
//! categories) and a logistic regression on it, fitted by gradient descent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Record, TaskError};

/// A feature group's fitted transform.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Transform {
    pub(super) features: Vec<FeatureTransform>,
}

/// How one feature becomes model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum FeatureTransform {
    /// `(x - mean) / std`; missing is 0 (the mean).
    Numeric { name: String, mean: f64, std: f64 },
    /// One input per category; others and missing are all zeros.
    Categorical {
        name: String,
        categories: Vec<String>,
    },
}

impl Transform {
    pub(super) fn fit(features: &[String], records: &[Record]) -> Result<Transform, TaskError> {
        let mut fitted = Vec::new();
        for name in features {
            let values: Vec<&Value> = records
                .iter()
                .filter_map(|r| value_of(r, name))
                .filter(|v| !v.is_null())
                .collect();
            if values.is_empty() {
                return Err(TaskError::Data(format!("no record carries `{name}`")));
            }
            if values.iter().all(|v| v.is_number()) {
                let numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                let mean = numbers.iter().sum::<f64>() / numbers.len() as f64;
                let var =
                    numbers.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / numbers.len() as f64;
                fitted.push(FeatureTransform::Numeric {
                    name: name.clone(),
                    mean,
                    std: if var > 0.0 { var.sqrt() } else { 1.0 },
                });
            } else {
                let mut categories: Vec<String> = values.iter().map(|v| category(v)).collect();
                categories.sort();
                categories.dedup();
                fitted.push(FeatureTransform::Categorical {
                    name: name.clone(),
                    categories,
                });
            }
        }
        Ok(Transform { features: fitted })
    }
}

fn category(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A logistic regression over transformed features.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Classifier {
    /// The model it was trained for.
    pub model: String,
    /// The run that trained it.
    pub run: String,
    /// The label field.
    pub label: String,
    features: Vec<FeatureTransform>,
    weights: Vec<f64>,
    bias: f64,
    /// Records it was trained on.
    pub trained_records: usize,
}

/// Gradient descent settings: plenty for a few thousand records and a few dozen inputs.
const ITERATIONS: usize = 600;
const LEARNING_RATE: f64 = 0.5;
const L2: f64 = 1e-4;

impl Classifier {
    pub(super) fn train(
        run: &str,
        model: &str,
        label: &str,
        features: Vec<FeatureTransform>,
        records: &[Record],
    ) -> Result<Classifier, TaskError> {
        let mut classifier = Classifier {
            run: run.to_string(),
            model: model.to_string(),
            label: label.to_string(),
            features,
            weights: Vec::new(),
            bias: 0.0,
            trained_records: 0,
        };
        let rows: Vec<(Vec<f64>, f64)> = records
            .iter()
            .filter_map(|r| Some((classifier.inputs(r), truth(r.get(label)?)?)))
            .collect();
        if rows.is_empty() {
            return Err(TaskError::Data(format!(
                "no record carries a usable `{label}`"
            )));
        }
        let width = rows[0].0.len();
        classifier.weights = vec![0.0; width];
        let n = rows.len() as f64;
        let mut gradient = vec![0.0; width];
        for _ in 0..ITERATIONS {
            gradient.iter_mut().for_each(|g| *g = 0.0);
            let mut bias_gradient = 0.0;
            for (x, y) in &rows {
                let error = sigmoid(classifier.score(x)) - y;
                for (g, xi) in gradient.iter_mut().zip(x) {
                    *g += error * xi;
                }
                bias_gradient += error;
            }
            for (w, g) in classifier.weights.iter_mut().zip(&gradient) {
                *w -= LEARNING_RATE * (g / n + L2 * *w);
            }
            classifier.bias -= LEARNING_RATE * bias_gradient / n;
        }
        classifier.trained_records = rows.len();
        Ok(classifier)
    }

    fn inputs(&self, record: &Record) -> Vec<f64> {
        let mut x = Vec::new();
        for feature in &self.features {
            match feature {
                FeatureTransform::Numeric { name, mean, std } => {
                    let v = value_of(record, name).and_then(Value::as_f64);
                    x.push(v.map_or(0.0, |v| (v - mean) / std));
                }
                FeatureTransform::Categorical { name, categories } => {
                    let v = value_of(record, name).map(category);
                    x.extend(
                        categories
                            .iter()
                            .map(|c| f64::from(u8::from(v.as_ref() == Some(c)))),
                    );
                }
            }
        }
        x
    }

    fn score(&self, x: &[f64]) -> f64 {
        self.bias + self.weights.iter().zip(x).map(|(w, x)| w * x).sum::<f64>()
    }

    /// The predicted class of a record: 1 or 0.
    pub fn predict(&self, record: &Record) -> u8 {
        u8::from(self.score(&self.inputs(record)) >= 0.0)
    }

    /// The share of records with a label that it predicts right (0 when none has one).
    pub fn accuracy(&self, records: &[Record]) -> f64 {
        let (mut right, mut total) = (0usize, 0usize);
        for record in records {
            if let Some(y) = record.get(&self.label).and_then(truth) {
                total += 1;
                right += usize::from(f64::from(self.predict(record)) == y);
            }
        }
        if total == 0 {
            0.0
        } else {
            right as f64 / total as f64
        }
    }
}

/// A label as 1.0 or 0.0: numbers (non-zero is positive) and booleans.
fn truth(value: &Value) -> Option<f64> {
    match value {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64().map(|v| f64::from(u8::from(v != 0.0))),
        _ => None,
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// A feature's value in a record: in its `"features"` object when it has one, else at the top
/// level, as the stream's decoder reads records.
fn value_of<'r>(record: &'r Record, name: &str) -> Option<&'r Value> {
    match record.get("features") {
        Some(Value::Object(features)) => features.get(name),
        _ => record.get(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::tests::record;

    #[test]
    fn logistic_regression_learns_a_threshold_and_a_category() {
        // Positive when x > 1 or the colour is red.
        let records: Vec<_> = (0..400)
            .map(|i| {
                let x = (i % 40) as f64 / 10.0;
                let colour = ["red", "blue", "green"][i % 3];
                record(x, colour, u8::from(x > 1.0 || colour == "red"))
            })
            .collect();
        let transform = Transform::fit(&["x".to_string(), "colour".to_string()], &records).unwrap();
        assert_eq!(
            transform.features[1],
            FeatureTransform::Categorical {
                name: "colour".into(),
                categories: vec!["blue".into(), "green".into(), "red".into()]
            }
        );
        let model = Classifier::train("r", "m", "label", transform.features, &records).unwrap();
        assert!(
            model.accuracy(&records) > 0.95,
            "{}",
            model.accuracy(&records)
        );
        // An unseen category and a missing number fall back to the reference input.
        let odd = serde_json::json!({"colour": "purple"});
        assert!(model.predict(odd.as_object().unwrap()) <= 1);
    }

    /// Records whose features are in a `"features"` object, as the stream's decoder takes them,
    /// give the model the same inputs as flat ones.
    #[test]
    fn features_are_read_where_the_decoder_reads_them() {
        let flat = record(2.5, "red", 1);
        let nested =
            serde_json::json!({"features": {"x": 2.5, "colour": "red"}, "label": 1, "x": 9});
        let nested = nested.as_object().unwrap();
        let records = [record(0.0, "blue", 0), flat.clone()];
        let transform = Transform::fit(&["x".to_string(), "colour".to_string()], &records).unwrap();
        let model = Classifier::train("r", "m", "label", transform.features, &records).unwrap();
        assert_eq!(model.inputs(nested), model.inputs(&flat));
        let fitted = Transform::fit(&["x".to_string()], std::slice::from_ref(nested)).unwrap();
        let FeatureTransform::Numeric { mean, .. } = fitted.features[0] else {
            panic!("x is numeric")
        };
        assert_eq!(mean, 2.5, "the nested value, not the top-level one");
    }
}
