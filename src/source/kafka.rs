//! Kafka clients: the consumer group that reads feature topics and the producer for dead
//! letters, both configured from the service file with user properties passed through.
//!
//! Offsets are never committed automatically: `enable.auto.commit` and
//! `enable.auto.offset.store` are forced off, and the service commits explicitly after each
//! checkpoint. A new group starts at the earliest offset so no record is missed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord};

use crate::store::DeadLetter;

/// Client settings shared by the consumer and the producer.
pub fn client_config(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    config.set("bootstrap.servers", bootstrap_servers);
    config
}

/// librdkafka properties that only consumers know; a producer given one warns (CONFWARN).
const CONSUMER_ONLY: &[&str] = &[
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.protocol.type",
    "group.remote.assignor",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "coordinator.query.interval.ms",
    "max.poll.interval.ms",
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "fetch.wait.max.ms",
    "fetch.queue.backoff.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "fetch.max.bytes",
    "fetch.min.bytes",
    "fetch.error.backoff.ms",
    "isolation.level",
    "enable.partition.eof",
    "check.crcs",
    "consume.callback.max.messages",
];

/// The settings of driftgate's producers (dead letters, Kafka alert sinks): the shared ones
/// without the consumer-only properties.
pub fn producer_config(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let shared: BTreeMap<String, String> = properties
        .iter()
        .filter(|(key, _)| !CONSUMER_ONLY.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    client_config(bootstrap_servers, &shared)
}

/// The consumer's settings: the group, manual commits, earliest start.
pub fn consumer_config(
    bootstrap_servers: &str,
    group_id: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = client_config(bootstrap_servers, properties);
    // Defaults the user may override through `kafka.properties`.
    for (key, value) in [
        ("auto.offset.reset", "earliest"),
        ("enable.partition.eof", "false"),
        // Latency over idle requests: a broker that answers a fetch only when its wait is over
        // (tansu) would otherwise add up to librdkafka's 500 ms to every window close.
        ("fetch.wait.max.ms", "25"),
    ] {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config
}

/// The broker's answers about dead letters: per letter (by its id in the store), delivered or
/// why not.
pub type DeadLetterReports = Arc<Mutex<Vec<(i64, Result<(), String>)>>>;

/// Collects the broker's delivery reports for dead letters.
pub struct DeadLetterContext(DeadLetterReports);

impl rdkafka::ClientContext for DeadLetterContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log_quietly(level, fac, message);
    }

    fn stats_raw(&self, statistics: &[u8]) {
        stats_quietly("dead letters", statistics);
    }
}

/// A producer's statistics (sent when `statistics.interval.ms` is set for the consumer's lag):
/// driftgate does not use them, so they stay at `debug` rather than filling the log with a
/// line of kilobytes every interval.
pub fn stats_quietly(producer: &str, statistics: &[u8]) {
    tracing::debug!(target: "librdkafka", producer, bytes = statistics.len(), "producer statistics");
}

/// librdkafka's log lines, with those about connection failures at `debug`: the consumer's
/// readiness sums them up in one line per interval (see `source::readiness`).
pub fn log_quietly(level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    if matches!(fac, "FAIL" | "BROKERFAIL" | "ERROR" | "CONNECT" | "RESOLVE") {
        tracing::debug!(target: "librdkafka", fac, "{message}");
    } else {
        rdkafka::ClientContext::log(&rdkafka::client::DefaultClientContext, level, fac, message);
    }
}

impl rdkafka::producer::ProducerContext for DeadLetterContext {
    type DeliveryOpaque = Box<i64>;
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, id: Box<i64>) {
        let outcome = result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string());
        crate::locks::lock(&self.0).push((*id, outcome));
    }
}

/// The dead-letter producer and where its delivery reports arrive.
pub fn dead_letter_producer(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
) -> Result<(BaseProducer<DeadLetterContext>, DeadLetterReports), rdkafka::error::KafkaError> {
    let reports = DeadLetterReports::default();
    let producer = producer_config(bootstrap_servers, properties)
        .create_with_context(DeadLetterContext(Arc::clone(&reports)))?;
    Ok((producer, reports))
}

/// Sends a dead letter (`id` in the store) to its topic, keyed by its origin, with headers
/// naming the reason and where it came from. The broker's answer arrives in the producer's
/// reports; the letter stays in the store until it is a success.
pub fn send_dead_letter(
    producer: &BaseProducer<DeadLetterContext>,
    topic: &str,
    letter: &DeadLetter,
    id: i64,
) -> Result<(), rdkafka::error::KafkaError> {
    let partition = letter.partition.to_string();
    let offset = letter.offset.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "driftgate.reason",
            value: Some(letter.reason.as_bytes()),
        })
        .insert(Header {
            key: "driftgate.error",
            value: Some(letter.detail.as_bytes()),
        })
        .insert(Header {
            key: "driftgate.source.topic",
            value: Some(letter.topic.as_bytes()),
        })
        .insert(Header {
            key: "driftgate.source.partition",
            value: Some(partition.as_bytes()),
        })
        .insert(Header {
            key: "driftgate.source.offset",
            value: Some(offset.as_bytes()),
        });
    let key = format!("{}/{}/{}", letter.topic, letter.partition, letter.offset);
    let payload = letter.payload.as_deref().unwrap_or_default();
    producer
        .send(
            BaseRecord::with_opaque_to(topic, Box::new(id))
                .key(&key)
                .payload(payload)
                .headers(headers),
        )
        .map_err(|(err, _)| err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Managed Kafka needs TLS and SASL: librdkafka refuses these properties at client
    /// creation when it was built without them.
    #[test]
    fn tls_and_sasl_properties_are_supported() {
        let properties: BTreeMap<String, String> = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "driftgate"),
            ("sasl.password", "secret"),
            ("session.timeout.ms", "10000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let producer =
            producer_config("127.0.0.1:9", &properties).create::<rdkafka::producer::BaseProducer>();
        assert!(producer.is_ok(), "{:?}", producer.err());
        let consumer = consumer_config("127.0.0.1:9", "g", &properties)
            .create::<rdkafka::consumer::BaseConsumer>();
        assert!(consumer.is_ok(), "{:?}", consumer.err());
    }

    #[test]
    fn issue_23_the_fetch_wait_favours_latency_unless_the_user_says_otherwise() {
        let none = BTreeMap::new();
        let config = consumer_config("127.0.0.1:9", "g", &none);
        assert_eq!(config.get("fetch.wait.max.ms"), Some("25"));
        let own = BTreeMap::from([("fetch.wait.max.ms".to_string(), "500".to_string())]);
        let config = consumer_config("127.0.0.1:9", "g", &own);
        assert_eq!(config.get("fetch.wait.max.ms"), Some("500"));
    }
}
