//! Synthetic card payments for the demo: eight features and a fraud label.
//!
//! Before the drift, fraud goes with large amounts, many recent transactions, young accounts,
//! long distances from home and the web checkout. The injected drift is a travel season: the
//! distance from home grows for everyone and most purchases move to the web, so neither means
//! fraud as much as it did (the label's relation to them moves with them). `amount`,
//! `country`, `merchant_category`, `hour`, `account_age_days` and `txn_count_24h` keep their
//! distributions.

use serde_json::{json, Map, Value};

use crate::SplitMix64;

/// The stream's features and their kinds, as in `config/driftgate.toml`.
pub const FEATURES: [(&str, &str); 8] = [
    ("amount", "numeric"),
    ("country", "categorical"),
    ("merchant_category", "categorical"),
    ("hour", "numeric"),
    ("account_age_days", "numeric"),
    ("txn_count_24h", "numeric"),
    ("distance_km", "numeric"),
    ("device", "categorical"),
];

/// The features the drift changes.
pub const DRIFTED: [&str; 2] = ["distance_km", "device"];

/// Draws payments.
pub struct Payments {
    rng: SplitMix64,
}

impl Payments {
    /// A seeded generator: the same seed gives the same payments.
    pub fn new(seed: u64) -> Payments {
        Payments {
            rng: SplitMix64::new(seed),
        }
    }

    fn pick<'a>(&mut self, choices: &[(&'a str, f64)]) -> &'a str {
        let mut u = self.rng.next_f64() * choices.iter().map(|c| c.1).sum::<f64>();
        for (choice, weight) in choices {
            if u < *weight {
                return choice;
            }
            u -= weight;
        }
        choices[choices.len() - 1].0
    }

    /// One payment with its `label` (1: fraud), drawn before (`drifted` false) or during the
    /// travel season.
    pub fn record(&mut self, drifted: bool) -> Map<String, Value> {
        let amount = (3.4 + 0.9 * self.rng.normal()).exp();
        let country = self.pick(&[
            ("DE", 0.35),
            ("FR", 0.25),
            ("US", 0.2),
            ("GB", 0.12),
            ("ES", 0.08),
        ]);
        let category = self.pick(&[
            ("grocery", 0.35),
            ("fashion", 0.2),
            ("electronics", 0.15),
            ("travel", 0.1),
            ("gaming", 0.2),
        ]);
        let hour = self.rng.below(24);
        let age = (-(self.rng.next_f64().max(1e-12)).ln() * 500.0).floor();
        let recent = (self.rng.normal() * 1.8 + 3.0).round().max(0.0);
        let (distance, device) = if drifted {
            let distance = (70.0 + 20.0 * self.rng.normal()).max(0.0);
            (
                distance,
                self.pick(&[("ios", 0.25), ("android", 0.2), ("web", 0.55)]),
            )
        } else {
            let distance = (20.0 + 10.0 * self.rng.normal()).max(0.0);
            (
                distance,
                self.pick(&[("ios", 0.45), ("android", 0.4), ("web", 0.15)]),
            )
        };
        // The fraud signal: where distance and web stop meaning fraud, the same people's
        // far-away web purchases are legitimate.
        let (home, web) = if drifted { (80.0, -0.5) } else { (30.0, 1.2) };
        let logit = -1.2
            + 1.1 * ((amount.ln() - 3.4) / 0.9)
            + 0.5 * (recent - 3.0)
            + if age < 60.0 { 0.8 } else { 0.0 }
            + 0.25 * (distance - home)
            + if device == "web" { web } else { 0.0 };
        let label = u8::from(self.rng.next_f64() < 1.0 / (1.0 + (-logit).exp()));
        let record = json!({
            "amount": (amount * 100.0).round() / 100.0,
            "country": country,
            "merchant_category": category,
            "hour": hour,
            "account_age_days": age,
            "txn_count_24h": recent,
            "distance_km": (distance * 10.0).round() / 10.0,
            "device": device,
            "label": label,
        });
        match record {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object"),
        }
    }
}
