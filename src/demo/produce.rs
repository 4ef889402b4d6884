//! The production side of the demo: labelled payments, scored by the current champion,
//! window by window; drift from window `BEFORE` on; one broken message in window 2.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::summary::{show_latest_window, wait_for_runs};
use super::{
    data, fail, stamp, wait_until, DemoError, Session, AFTER, BEFORE, MAX_DRIFTED, MESSAGE_RECORDS,
    REGISTRY, SCORED_MODEL,
};
use crate::store::Store;
use crate::task::Classifier as Champion;

/// What was produced: every message (one a line, `driftgate replay` input), each window's
/// phase, and the window the retrained champion began scoring.
pub(super) struct Streamed {
    pub(super) recorded: String,
    pub(super) phases: Vec<Phase>,
    pub(super) promoted_from: Option<u64>,
}

/// Streams windows until the retrained champion scored `AFTER` of them (or the drift went on
/// for `MAX_DRIFTED + AFTER` windows without one), waiting for each to be reported and for
/// its runs.
pub(super) fn stream_windows(
    session: &Session<'_>,
    payments: &mut data::Payments,
    store: &Store,
    shown: &mut std::collections::BTreeSet<String>,
) -> Result<Streamed, DemoError> {
    let world = session.world;
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", world.cluster.bootstrap_servers())
        .set("linger.ms", "5")
        .create()
        .map_err(fail("cannot create the producer"))?;
    let started = session.started;
    let pace =
        session.args.duration.saturating_sub(started.elapsed()) / (BEFORE + AFTER + 3) as u32;
    let registry = Path::new(REGISTRY).join(format!("{SCORED_MODEL}.json"));
    let mut streamed = Streamed {
        recorded: String::new(),
        phases: Vec::new(),
        promoted_from: None,
    };
    for window in 0.. {
        let window_started = Instant::now();
        let drifted = window >= BEFORE;
        let champion = crate::task::read_model(&registry).ok();
        if window == BEFORE {
            println!(
                "{} drift injected into {} from window {window} on",
                stamp(started),
                data::DRIFTED.join(" and ")
            );
        }
        let batch = Batch {
            window,
            drifted,
            champion: champion.as_ref(),
        };
        produce_window(session, &producer, payments, &batch, &mut streamed.recorded)?;
        streamed
            .phases
            .push(match (drifted, streamed.promoted_from.is_some()) {
                (false, _) => Phase::Before,
                (true, false) => Phase::Drifted,
                (true, true) => Phase::Retrained,
            });
        wait_until(
            session.stop,
            &format!("window {window} to be reported"),
            Duration::from_secs(60),
            || {
                store
                    .latest_windows(&world.stream.name, 1)
                    .is_ok_and(|w| w.first().is_some_and(|w| w.index >= window))
            },
        )?;
        // The producer waits for each window, so the latest one is this one.
        show_latest_window(store, &world.stream.name, started)?;
        wait_for_runs(session.stop, store, started, shown)?;
        let new_champion = crate::task::read_model(&registry).ok();
        let changed = new_champion.map(|c| c.run) != champion.map(|c| c.run);
        if drifted && streamed.promoted_from.is_none() && changed {
            streamed.promoted_from = Some(window + 1);
            println!(
                "{} the retrained {SCORED_MODEL} model scores payments from window {} on",
                stamp(started),
                window + 1
            );
        }
        if done(&streamed.phases) {
            break;
        }
        std::thread::sleep(pace.saturating_sub(window_started.elapsed()));
    }
    Ok(streamed)
}

/// One window's worth of records.
struct Batch<'a> {
    window: u64,
    drifted: bool,
    champion: Option<&'a Champion>,
}

/// Sends one window's records, in messages of `MESSAGE_RECORDS`, and waits for the broker.
fn produce_window(
    session: &Session<'_>,
    producer: &BaseProducer,
    payments: &mut data::Payments,
    batch: &Batch<'_>,
    recorded: &mut String,
) -> Result<(), DemoError> {
    let topic = &session.world.stream.topic;
    for _ in 0..session.world.window_records.div_ceil(MESSAGE_RECORDS) {
        let records: Vec<_> = (0..MESSAGE_RECORDS)
            .map(|_| {
                let mut record = payments.record(batch.drifted);
                record.insert("ts".into(), crate::store::now_ms().into());
                if let Some(champion) = batch.champion {
                    record.insert("prediction".into(), champion.predict(&record).into());
                }
                record
            })
            .collect();
        let payload = serde_json::to_vec(&serde_json::json!({ "records": records }))
            .expect("records serialise");
        send(producer, topic, &payload)?;
        recorded.push_str(&String::from_utf8_lossy(&payload));
        recorded.push('\n');
    }
    if batch.window == 2 {
        // One broken message: it goes to the dead-letter topic and raises a data alert.
        send(producer, topic, b"{\"records\": [{\"amount\": 12.5,")?;
    }
    producer
        .flush(Duration::from_secs(10))
        .map_err(fail("cannot deliver to the broker"))
}

/// Enough windows: `AFTER` scored by the retrained champion, or too long without one.
fn done(phases: &[Phase]) -> bool {
    let count = |phase: Phase| phases.iter().filter(|p| **p == phase).count() as u64;
    count(Phase::Retrained) >= AFTER || count(Phase::Drifted) >= MAX_DRIFTED + AFTER
}

/// The window phases, for the accuracy summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    Before,
    Drifted,
    Retrained,
}

pub(super) fn send(producer: &BaseProducer, topic: &str, payload: &[u8]) -> Result<(), DemoError> {
    let mut record = BaseRecord::<(), [u8]>::to(topic).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                producer.poll(Duration::from_millis(50));
                record = back;
            }
            Err((err, _)) => return Err(DemoError::Failed(format!("cannot produce: {err}"))),
        }
    }
}
