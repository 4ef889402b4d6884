//! Change detectors against River on the same streams: the same detection indices.
//! Fixtures: `scripts/gen_river_fixtures.py` (River's version is recorded in the file).

use driftgate::policy::detectors::{Direction, PageHinkley, PageHinkleyParams};

#[test]
fn page_hinkley_detects_where_river_does() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/river_detectors.json"
    ))
    .unwrap();
    let fixtures: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fixtures["cases"].as_array().unwrap();
    let mut detections = 0;
    for case in cases.iter().filter(|c| c["detector"] == "page_hinkley") {
        let p = &case["params"];
        let params = PageHinkleyParams {
            min_instances: p["min_instances"].as_u64().unwrap(),
            delta: p["delta"].as_f64().unwrap(),
            threshold: p["threshold"].as_f64().unwrap(),
            alpha: p["alpha"].as_f64().unwrap(),
            mode: match p["mode"].as_str().unwrap() {
                "up" => Direction::Up,
                "down" => Direction::Down,
                _ => Direction::Both,
            },
        };
        let mut detector = PageHinkley::new(params);
        let ours: Vec<u64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, x)| detector.update(x.as_f64().unwrap()))
            .map(|(i, _)| i as u64)
            .collect();
        let river: Vec<u64> = case["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect();
        assert_eq!(ours, river, "{} with {}", case["stream"], case["params"]);
        detections += river.len();
    }
    assert!(
        detections > 50,
        "the fixtures exercise detection ({detections})"
    );
}
