//! The Kafka side of the loop: the brokers (configured, or embedded for a trial), the consumer
//! and its context (lag from statistics, a checkpoint before partitions are revoked, readiness),
//! and offset commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};

use super::{Service, ServiceError};
use crate::config::ServiceConfig;
use crate::locks::lock;
use crate::source::kafka;
use crate::source::readiness::Readiness;

/// The brokers this instance talks to. `embedded`: an in-process Kafka-protocol cluster, for
/// trying driftgate with nothing installed; not durable, it lives and dies with the process.
pub(super) struct Brokers {
    servers: String,
    /// Kept (never read) so the cluster lives until the service has stopped.
    _embedded:
        Option<rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>>,
}

impl Brokers {
    /// The configured brokers, or an embedded cluster with the streams' topics.
    pub(super) fn start(config: &ServiceConfig) -> Result<Brokers, ServiceError> {
        if let Some(servers) = &config.bootstrap_servers {
            return Ok(Brokers {
                servers: servers.clone(),
                _embedded: None,
            });
        }
        let cluster = rdkafka::mocking::MockCluster::new(1)?;
        for stream in &config.streams {
            cluster.create_topic(&stream.topic, 3, 1)?;
            if let Some(dlq) = &stream.dead_letter_topic {
                cluster.create_topic(dlq, 1, 1)?;
            }
        }
        tracing::warn!(bootstrap = %cluster.bootstrap_servers(), "embedded broker: in-process and not durable");
        Ok(Brokers {
            servers: cluster.bootstrap_servers(),
            _embedded: Some(cluster),
        })
    }

    /// `bootstrap.servers`.
    pub(super) fn servers(&self) -> &str {
        &self.servers
    }
}

/// The consumer of the streams' topics, subscribed, its context holding the service.
pub(super) fn subscribe(
    config: &ServiceConfig,
    servers: &str,
    service: Arc<Mutex<Service>>,
    readiness: Arc<Readiness>,
) -> Result<BaseConsumer<Context>, ServiceError> {
    let consumer: BaseConsumer<Context> =
        kafka::consumer_config(servers, &config.group_id, &config.kafka_properties)
            .create_with_context(Context { service, readiness })?;
    let topics: Vec<&str> = config.streams.iter().map(|s| s.topic.as_str()).collect();
    consumer.subscribe(&topics)?;
    tracing::info!(topics = ?topics, group = %config.group_id, "consuming");
    Ok(consumer)
}

/// The consumer's context: checkpoints before partitions are revoked, and tells readiness.
pub(super) struct Context {
    service: Arc<Mutex<Service>>,
    /// Whether the instance takes part in its group, and why not.
    pub(super) readiness: Arc<Readiness>,
}

impl ClientContext for Context {
    fn stats(&self, statistics: rdkafka::statistics::Statistics) {
        lock(&self.service).update_lag(&statistics);
    }

    /// Connection failures are summarised by `error` (one line per interval); librdkafka's own
    /// lines about them, several per second, stay at `debug`.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        kafka::log_quietly(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.readiness.on_error(&error, reason, Instant::now());
    }
}

impl ConsumerContext for Context {
    /// librdkafka's default handling (`pre_rebalance`, then take or give up the partitions),
    /// except that assigned partitions are first positioned at their checkpoints (see
    /// `positions`).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let mut service = lock(&self.service);
            service.claim_assigned(tpl);
            service.position_at_checkpoints(consumer, tpl);
            drop(service);
            self.pre_rebalance(consumer, &Rebalance::Assign(tpl));
            super::positions::assign(consumer, tpl);
            return;
        }
        let rebalance = if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            Rebalance::Revoke(tpl)
        } else {
            Rebalance::Error(rdkafka::error::KafkaError::Rebalance(err.into()))
        };
        self.pre_rebalance(consumer, &rebalance);
        let given_up = if cooperative {
            consumer.incremental_unassign(tpl)
        } else {
            consumer.unassign()
        };
        if let Err(err) = given_up {
            tracing::error!(error = %err, "cannot give up the revoked partitions");
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                tracing::info!(
                    partitions = partitions.count(),
                    "partitions revoked, checkpointing"
                );
                let mut service = lock(&self.service);
                if service.paused() && service.shared {
                    service.lose("partitions were revoked while the store could not be reached; their new owner resumes from the store's checkpoint".into());
                }
                let offsets = service.checkpoint();
                if let Err(super::ServiceError::Store(crate::store::StoreError::Fenced(why))) =
                    &offsets
                {
                    service.lose(why.clone());
                }
                service.release_revoked(partitions);
                drop(service);
                match offsets {
                    Ok(offsets) if offsets.count() > 0 => {
                        if let Err(err) = consumer.commit(&offsets, CommitMode::Sync) {
                            tracing::warn!(error = %err, "offset commit on revoke failed; the checkpoint still holds them");
                        }
                    }
                    Ok(_) => {}
                    Err(err) => tracing::error!(error = %err, "checkpoint on revoke failed"),
                }
            }
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = partitions.count(), "partitions assigned");
                // Baselines were loaded before the consumer started; an assignment (even an
                // empty one, when there are more instances than partitions) means the group
                // has taken this instance in.
                self.readiness.assigned();
            }
            Rebalance::Error(err) => tracing::warn!(error = %err, "rebalance error"),
        }
    }
}

/// Commits `offsets` (none: nothing to do). A failure is not fatal: the store's checkpoint is
/// the truth, and the processors skip what they already counted.
pub(super) fn commit(
    consumer: &BaseConsumer<Context>,
    offsets: &TopicPartitionList,
    mode: CommitMode,
) {
    if offsets.count() == 0 {
        return;
    }
    if let Err(err) = consumer.commit(offsets, mode) {
        tracing::warn!(error = %err, "offset commit failed");
    }
}

/// Pauses every assigned partition while `pause` (again on each call: an assignment made
/// meanwhile is paused too) and resumes them once it is over; returns whether they are paused.
/// A paused partition resumes at the message after the last one polled.
pub(super) fn pause_while(consumer: &BaseConsumer<Context>, pause: bool, paused: bool) -> bool {
    if !pause && !paused {
        return false;
    }
    let assignment = match consumer.assignment() {
        Ok(assignment) => assignment,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the assignment to pause or resume it");
            return paused;
        }
    };
    let done = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    match done {
        Ok(()) => pause,
        Err(err) => {
            tracing::warn!(error = %err, pause, "cannot pause or resume the partitions");
            paused
        }
    }
}

/// How often the brokers are probed for readiness.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a probe waits for the brokers' answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The partition count of each stream's topic, as the brokers last answered: the merger of a
/// stream whose windows span instances waits until every partition has an owner in the store.
#[derive(Debug, Default)]
pub(super) struct PartitionCounts(Mutex<std::collections::BTreeMap<String, usize>>);

impl PartitionCounts {
    /// How many partitions `topic` has; `None` until the brokers said.
    pub(super) fn of(&self, topic: &str) -> Option<usize> {
        lock(&self.0).get(topic).copied()
    }

    fn learn(&self, metadata: &rdkafka::metadata::Metadata, topic: &str) {
        let known = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|&n| n > 0);
        if let Some(count) = known {
            lock(&self.0).insert(topic.to_string(), count);
        }
    }
}

/// Until `stop`, asks the brokers for the metadata of `topics` every [`PROBE_INTERVAL`]: tells
/// readiness whether they answered within [`PROBE_TIMEOUT`], and `counts` how many partitions
/// each topic has. Runs beside the consumer loop (a paused broker blocks the probe, never the
/// loop).
pub(super) fn probe_brokers(
    consumer: &BaseConsumer<Context>,
    topics: &[&str],
    counts: &PartitionCounts,
    stop: &AtomicBool,
) {
    let readiness = &consumer.context().readiness;
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next {
            let mut outcome = Ok(());
            for topic in topics {
                match consumer.fetch_metadata(Some(topic), PROBE_TIMEOUT) {
                    Ok(metadata) => counts.learn(&metadata, topic),
                    Err(e) => {
                        outcome = Err(format!(
                            "the Kafka brokers at {} (kafka.bootstrap_servers) did not answer a metadata request within {PROBE_TIMEOUT:?}: {e}",
                            readiness.bootstrap_servers()
                        ));
                        break;
                    }
                }
            }
            readiness.probed(outcome);
            next = Instant::now() + PROBE_INTERVAL;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
