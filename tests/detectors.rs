//! Change detectors against River on the same streams: the same detection indices.
//! Fixtures: `scripts/gen_river_fixtures.py` (River's version is recorded in the file).

use driftgate::policy::detectors::{
    AdwinParams, Detector, DetectorParams, Direction, PageHinkleyParams,
};
use serde_json::Value;

fn fixtures() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/river_detectors.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn params(case: &Value) -> DetectorParams {
    let p = &case["params"];
    let uint = |name: &str| p[name].as_u64().unwrap();
    let float = |name: &str| p[name].as_f64().unwrap();
    match case["detector"].as_str().unwrap() {
        "page_hinkley" => DetectorParams::PageHinkley(PageHinkleyParams {
            min_instances: uint("min_instances"),
            delta: float("delta"),
            threshold: float("threshold"),
            alpha: float("alpha"),
            mode: match p["mode"].as_str().unwrap() {
                "up" => Direction::Up,
                "down" => Direction::Down,
                _ => Direction::Both,
            },
        }),
        "adwin" => DetectorParams::Adwin(AdwinParams {
            delta: float("delta"),
            clock: uint("clock") as u32,
            max_buckets: uint("max_buckets") as u32,
            min_window_length: uint("min_window_length") as u32,
            grace_period: uint("grace_period") as u32,
        }),
        other => panic!("unknown detector {other}"),
    }
}

/// Runs every fixture case of one detector; returns how many detections River made in them.
fn detects_where_river_does(detector: &str) -> usize {
    let fixtures = fixtures();
    let mut detections = 0;
    for case in fixtures["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["detector"] == detector)
    {
        let values = fixtures["streams"][case["stream"].as_str().unwrap()]
            .as_array()
            .unwrap();
        let mut ours = Detector::new(params(case));
        let found: Vec<u64> = values
            .iter()
            .enumerate()
            .filter(|(_, x)| ours.update(x.as_f64().unwrap()))
            .map(|(i, _)| i as u64)
            .collect();
        let river: Vec<u64> = case["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_u64().unwrap())
            .collect();
        assert_eq!(found, river, "{} with {}", case["stream"], case["params"]);
        detections += river.len();
    }
    detections
}

#[test]
fn page_hinkley_detects_where_river_does() {
    let detections = detects_where_river_does("page_hinkley");
    assert!(
        detections > 300,
        "the fixtures exercise detection ({detections})"
    );
}

#[test]
fn adwin_detects_where_river_does() {
    let detections = detects_where_river_does("adwin");
    assert!(
        detections > 60,
        "the fixtures exercise detection ({detections})"
    );
}

#[test]
fn a_checkpointed_detector_continues_where_it_stopped() {
    // Detector state goes into checkpoints as JSON: a restored detector must signal exactly
    // where the uninterrupted one does.
    let fixtures = fixtures();
    let values: Vec<f64> = fixtures["streams"]["gaussian, eight segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    for params in [
        DetectorParams::Adwin(AdwinParams::default()),
        DetectorParams::PageHinkley(PageHinkleyParams::default()),
    ] {
        let mut straight = Detector::new(params);
        let expected: Vec<bool> = values.iter().map(|x| straight.update(*x)).collect();
        let mut resumed = Detector::new(params);
        let mut found = Vec::new();
        for chunk in values.chunks(777) {
            let json = serde_json::to_string(&resumed).unwrap();
            resumed = serde_json::from_str(&json).unwrap();
            found.extend(chunk.iter().map(|x| resumed.update(*x)));
        }
        assert_eq!(found, expected, "{}", params.name());
        assert!(expected.iter().filter(|d| **d).count() >= 3);
    }
}
