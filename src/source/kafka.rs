//! Kafka clients: the consumer group that reads feature topics and the producer for dead
//! letters, both configured from the service file with user properties passed through.
//!
//! Offsets are never committed automatically: `enable.auto.commit` and
//! `enable.auto.offset.store` are forced off, and the service commits explicitly after each
//! checkpoint. A new group starts at the earliest offset so no record is missed.

use std::collections::BTreeMap;

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

/// Sends a dead letter to its topic, keyed by its origin, with headers naming the reason and
/// where it came from. Delivery is confirmed by `flush` before offsets are committed.
pub fn send_dead_letter(
    producer: &BaseProducer,
    topic: &str,
    letter: &DeadLetter,
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
            BaseRecord::to(topic)
                .key(&key)
                .payload(payload)
                .headers(headers),
        )
        .map_err(|(err, _)| err)
}
