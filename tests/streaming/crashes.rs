//! SIGKILL mid-stream, dead letters and checkpoints past a partition's end lose and repeat nothing.

use super::*;

#[test]
fn a_sigkill_mid_stream_loses_and_repeats_nothing() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 3);
    // First 10 messages: two full windows and 200 records in the open one. One bad message.
    produce(&setup, 0, 10, usize::MAX, Some(5));
    let mut child = start(&setup);
    wait_for(
        &setup.store,
        &mut child,
        "2 windows and a checkpointed open window",
        |s| {
            s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 2)
                && s.checkpoint("payments")
                    .unwrap()
                    .is_some_and(|c| c.open_window.records == 200)
        },
    );
    child.kill().unwrap(); // SIGKILL: no chance to checkpoint or commit anything more
    child.wait().unwrap();

    produce(&setup, 10, 14, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "6 windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() >= 6)
    });
    assert!(terminate(&mut child).success());

    let windows = windows(&setup.store);
    let indices: Vec<u64> = windows
        .iter()
        .map(|w| w["window"]["index"].as_u64().unwrap())
        .collect();
    assert_eq!(
        indices,
        vec![0, 1, 2, 3, 4, 5],
        "consecutive, none lost, none repeated"
    );
    let total: u64 = windows
        .iter()
        .map(|w| w["window"]["records"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 2400, "every record counted exactly once");
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    assert_eq!(
        store
            .checkpoint("payments")
            .unwrap()
            .unwrap()
            .open_window
            .records,
        0
    );
    let letters = store.dead_letters("payments").unwrap();
    assert_eq!(letters.len(), 1, "the bad message is kept once");
    assert_eq!(letters[0].reason, "invalid_json");
    // One dead letter in a window's messages is over the 1% dead-letter rate (which window
    // depends on the order the three partitions were read in).
    assert_eq!(quality_alerts(&store).len(), 1, "one data-quality alert");
    // Every window judged once by each policy, across the crash.
    let mut judged: Vec<(String, u64)> = store
        .latest_decisions(None, 100)
        .unwrap()
        .into_iter()
        .map(|d| (d.policy, d.window))
        .collect();
    judged.sort();
    let expected: Vec<(String, u64)> = ["fraud-amount", "geo-drift"]
        .iter()
        .flat_map(|p| (0..6).map(move |w| (p.to_string(), w)))
        .collect();
    assert_eq!(judged, expected);
}

/// The ids of the store's data-quality alerts.
fn quality_alerts(store: &Store) -> Vec<String> {
    store
        .alert_statuses(None, None, 100)
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == "data_quality")
        .map(|a| a.id)
        .collect()
}

#[test]
fn a_dead_letter_in_the_open_window_is_counted_across_a_sigkill() {
    let Some(broker) = broker() else { return };
    // One partition: the windows follow the order produced.
    let setup = setup(broker, 1);
    // Windows 0 and 1, stored before the bad message is sent: while a closed window's report is
    // made in the background, the messages read meanwhile count into that window.
    produce(&setup, 0, 8, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "2 windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 2)
    });
    // Then the bad message and 200 records in the open window 2.
    produce(&setup, 8, 2, usize::MAX, Some(8));
    wait_for(&setup.store, &mut child, "window 2 checkpointed", |s| {
        s.checkpoint("payments")
            .unwrap()
            .is_some_and(|c| c.open_window.index == 2 && c.open_window.records == 200)
    });
    child.kill().unwrap(); // SIGKILL: the dead letter's count is only in the checkpoint
    child.wait().unwrap();
    produce(&setup, 10, 2, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "3 windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 3)
    });
    assert!(terminate(&mut child).success());
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    // One dead letter in window 2's five messages is over the 1% dead-letter rate.
    assert_eq!(quality_alerts(&store), ["data_quality:payments:2"]);
}

#[test]
fn undecodable_messages_go_to_the_dead_letter_topic_with_their_origin() {
    let Some(broker) = broker() else { return };
    let setup = setup_with(broker, 1, true);
    produce(&setup, 0, 4, usize::MAX, Some(2));
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "one window", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 1)
    });
    assert!(terminate(&mut child).success());
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    assert!(
        store.dead_letters("payments").unwrap().is_empty(),
        "sent to the topic instead"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.broker)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let dlq = setup.dead_letter_topic.as_deref().unwrap();
    consumer.subscribe(&[dlq]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let message = loop {
        assert!(Instant::now() < deadline, "no dead letter arrived");
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            break result.expect("dead letter readable").detach();
        }
    };
    assert_eq!(message.payload(), Some(&b"{not json"[..]));
    let headers: std::collections::HashMap<String, String> = message
        .headers()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h.key.to_string(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    assert_eq!(headers["driftgate.reason"], "invalid_json");
    assert_eq!(headers["driftgate.source.topic"], setup.topic);
    assert_eq!(headers["driftgate.source.partition"], "0");
    assert_eq!(headers["driftgate.source.offset"], "2");
    assert!(headers["driftgate.error"].contains("invalid JSON"));
}

/// Issue 21: with a dead-letter topic that does not exist, a dead letter was queued, failed
/// unchecked later, and offsets were committed past it (it was lost); each window close waited
/// for the producer. Now a dead letter stays in the store until its topic confirms it — this
/// one never is — and is counted; windows close meanwhile.
#[test]
fn issue_21_a_missing_dead_letter_topic_loses_no_dead_letter() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 1);
    // Never created: tansu does not create topics on demand.
    let missing = unique("missing-dlq");
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(
            &format!("window = {{ records = {WINDOW_RECORDS} }}"),
            &format!(
                "window = {{ records = {WINDOW_RECORDS} }}\ndead_letter_topic = \"{missing}\""
            ),
        )
        .replace(
            "[kafka.properties]\n",
            "[kafka.properties]\n\"message.timeout.ms\" = \"3000\"\n",
        );
    std::fs::write(&setup.config, text).unwrap();
    produce(&setup, 0, 8, usize::MAX, Some(1));
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "two windows", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 2)
    });
    wait_for(&setup.store, &mut child, "the refused dead letter", |_| {
        http_get(&setup.api, "/metrics")
            .1
            .contains("driftgate_dead_letters_kept_total 1")
    });
    assert!(terminate(&mut child).success());
    let letters = Store::open_read_only(&StoreUrl::sqlite(&setup.store))
        .unwrap()
        .dead_letters("payments")
        .unwrap();
    assert_eq!(letters.len(), 1, "kept in the store");
    assert_eq!(letters[0].offset, 1);
    assert_eq!(letters[0].payload.as_deref(), Some(&b"{not json"[..]));
}

/// Issue 21: after a topic was re-created (the broker lost its data), the new records were
/// skipped as already counted, with no log line and a lag of 0. Here the checkpoint is moved
/// beyond the partition's end, as a re-created topic leaves it: the restarted service resumes
/// from the earliest offset (the default rule), counts it and raises `offsets_reset`.
#[test]
fn issue_21_a_checkpoint_beyond_the_partition_end_resumes_and_alerts() {
    let Some(broker) = broker() else { return };
    let setup = setup(broker, 1);
    produce(&setup, 0, 4, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(&setup.store, &mut child, "the first window", |s| {
        s.latest_windows("payments", 10).is_ok_and(|w| w.len() == 1)
    });
    assert!(terminate(&mut child).success());
    // The log the checkpoint counted is gone; the partition ends far before it.
    {
        let mut store = Store::open(&StoreUrl::sqlite(&setup.store)).unwrap();
        let mut checkpoint = store.checkpoint("payments").unwrap().unwrap();
        let key = format!("{}/0", setup.topic);
        *checkpoint.next_offsets.get_mut(&key).unwrap() += 100_000;
        store.commit("payments", &[], &checkpoint, 100).unwrap();
    }
    produce(&setup, 4, 4, usize::MAX, None);
    let mut child = start(&setup);
    wait_for(
        &setup.store,
        &mut child,
        "the windows after the reset",
        |s| s.latest_windows("payments", 10).is_ok_and(|w| w.len() >= 2),
    );
    let (_, metrics) = http_get(&setup.api, "/metrics");
    assert!(
        metrics.contains("driftgate_offset_resets_total{stream=\"payments\"} 1"),
        "{metrics}"
    );
    assert!(terminate(&mut child).success());
    let store = Store::open_read_only(&StoreUrl::sqlite(&setup.store)).unwrap();
    let resets = store.alert_statuses(None, None, 100).unwrap();
    assert!(
        resets
            .iter()
            .any(|a| a.id.starts_with("offsets_reset:payments:0:")),
        "{resets:?}"
    );
}
