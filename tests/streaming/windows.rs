//! Windows on tansu flag the shifted features; replay reads an offset range without committing.

use super::*;

#[test]
fn windows_on_tansu_flag_exactly_the_shifted_windows_and_features() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 1);
    // 6 windows of 400 records; amount shifts from window 3 (message 12) on.
    produce(&setup, 0, 24, 12, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "6 windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() >= 6)
    });
    check_api(&setup, &mut child);
    let status = terminate(&mut child);
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    // Replaying the topic decides exactly as the service did.
    let live: Vec<Decision> = {
        let mut all = Store::open_read_only(&StoreUrl::sqlite(&setup.store))
            .unwrap()
            .latest_decisions(None, 1000)
            .unwrap();
        all.reverse();
        all
    };
    assert_eq!(live.len(), 12, "6 windows × 2 policies");
    let replayed = replay_topic(&setup, &[]);
    assert_eq!(replayed["messages"], 24);
    let replayed = replayed_decisions(&replayed);
    assert_eq!(replayed, live);

    let windows = windows(&setup.store);
    assert_eq!(windows.len(), 6);
    for (i, window) in windows.iter().enumerate() {
        assert_eq!(window["window"]["index"], i as u64);
        assert_eq!(window["window"]["records"], WINDOW_RECORDS as u64);
        let amount = &window["features"][0];
        assert_eq!(amount["name"], "amount");
        assert_eq!(
            amount["drift"]["detected"],
            i >= 3,
            "window {i}: {}",
            amount["drift"]
        );
        assert_eq!(
            window["features"][1]["drift"]["detected"], false,
            "window {i}"
        );
    }
}

/// `driftgate replay --topic` on the setup's topic; its JSON output.
fn replay_topic(setup: &Setup, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
        .arg("replay")
        .arg("--config")
        .arg(&setup.config)
        .args(["--topic", &setup.topic, "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn replay_reads_an_offset_range_of_every_partition_without_committing() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 2);
    // 24 messages round-robin: 12 per partition, offsets 0..12 in each.
    produce(&setup, 0, 24, 12, None);
    // Partition 0 from offset 2 to 8, partition 1 from 2 to 10: 6 + 8 messages.
    let replayed = replay_topic(&setup, &["--start", "2", "--end", "0:8,1:10"]);
    assert_eq!(replayed["messages"], 14);
    assert_eq!(replayed["records"], 1400);
    assert_eq!(replayed["windows"].as_array().unwrap().len(), 3);
    assert_eq!(replayed["open_records"], 200);
    let offsets = &replayed["windows"][0]["decisions"][0]["span"]["offsets"];
    assert_eq!(
        offsets[format!("{}/0", setup.topic)]["first"],
        2,
        "{offsets}"
    );
    // Everything, by default; and again: nothing was committed, nothing consumed for good.
    for _ in 0..2 {
        let all = replay_topic(&setup, &[]);
        assert_eq!(all["messages"], 24);
        assert_eq!(all["records"], 2400);
    }
    // Bad bounds are usage errors (exit 2) that say what is wrong.
    for (args, expected) in [
        (
            ["--start", "soon"],
            "--start: \"soon\" is not an offset bound",
        ),
        (
            ["--end", "5:10"],
            "partition 5 does not exist (the topic has 2)",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_driftgate"))
            .arg("replay")
            .arg("--config")
            .arg(&setup.config)
            .args(["--topic", &setup.topic])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}
