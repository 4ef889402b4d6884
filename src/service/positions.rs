//! Where each assigned partition resumes, and what a position that went backwards means.
//!
//! On assignment, every partition the store has a checkpoint for is positioned at the
//! checkpoint's next offset (not at the group's committed offset, which may lag it). A
//! checkpoint beyond the end the broker reports is only a suspicion (tansu reports an end behind
//! its last batch): the partition is read from that end, and only when the checkpoint's last
//! offset is not there was the topic re-created or its data lost. Later, a first message below
//! the checkpoint can only mean that the broker moved the position back (`auto.offset.reset`
//! after an out-of-range fetch): that counts as a loss too.
//!
//! Such a partition resumes as `kafka.on_offset_reset` says (`earliest`: where the broker put
//! it; `latest`: at the partition's end), logged, counted and alerted; without this, every
//! message below the old checkpoint would be skipped as already counted.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::Service;
use crate::config::raw::OffsetReset;
use crate::pipeline::Message;

/// Reads a partition's end (high watermark) from the broker, for `on_offset_reset = "latest"`.
pub(super) type PartitionEnd<'a> = &'a dyn Fn(&str, i32) -> Result<i64, rdkafka::error::KafkaError>;

/// A partition's offsets as the consumer last heard them (`(low, high)`, each -1 while
/// unknown), without asking the broker: the high watermark comes with every fetch, the low one
/// with the statistics.
pub(super) type CachedEnds<'a> = &'a dyn Fn(&str, i32) -> (i64, i64);

/// [`CachedEnds`] through `consumer`.
pub(super) fn cached_ends<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> (i64, i64) {
    let Ok(topic) = std::ffi::CString::new(topic) else {
        return (-1, -1);
    };
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle lives as long as `consumer`, which outlives the call; the topic
    // is a NUL-terminated string and the outputs point to live locals. librdkafka only reads its
    // own cached values.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return (-1, -1);
    }
    (low, high)
}

/// [`PartitionEnd`] through `consumer`.
pub(super) fn partition_end<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<i64, rdkafka::error::KafkaError> {
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(5))
        .map(|(_, high)| high)
}

impl Service {
    /// Sets, in an assignment, the position of every partition with a checkpoint to the
    /// checkpoint's next offset, and remembers them until their first message. A checkpoint
    /// beyond the end the broker reports is checked first ([`Service::checkpoint_gone`]).
    pub(super) fn position_at_checkpoints<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        assigned: &mut TopicPartitionList,
    ) {
        let mut positions = Vec::new();
        for element in assigned.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Some(&index) = self.streams.by_topic.get(topic) else {
                continue;
            };
            let key = format!("{topic}/{partition}");
            if let Some(&next) = self
                .streams
                .processor_for(index, &key)
                .next_offsets()
                .get(&key)
            {
                positions.push((index, topic.to_string(), partition, next, key));
            }
        }
        for (index, topic, partition, next, key) in positions {
            let next = match self.checkpoint_gone(consumer, (&topic, partition), next) {
                Some(to) => {
                    self.resume_partition(index, (&key, partition), next, to);
                    to
                }
                None => next,
            };
            if assigned
                .set_partition_offset(&topic, partition, Offset::Offset(next))
                .is_ok()
            {
                self.streams.positioned.insert(key);
            }
        }
    }

    /// Where a partition resumes when the broker no longer has its checkpoint's last offset
    /// (`next - 1`), or `None` when it does. Asked only when the end the broker reports is
    /// before `next`: some brokers (tansu) report the start of their last batch as its end,
    /// so the partition is then read from that reported end to be sure.
    fn checkpoint_gone<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        (topic, partition): (&str, i32),
        next: i64,
    ) -> Option<i64> {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(5))
            .map_err(|err| {
                tracing::warn!(topic, partition, error = %err,
                "cannot read the partition's offsets to check the checkpoint")
            })
            .ok()?;
        let present =
            high > low && offset_exists(&self.probe, (topic, partition), high - 1, next - 1);
        if next <= high || next == 0 || present {
            return None;
        }
        Some(match self.offset_reset {
            OffsetReset::Earliest => low,
            OffsetReset::Latest => high,
        })
    }

    /// The first message of a partition positioned at its checkpoint: below the checkpoint,
    /// the broker reset the position, and the partition resumes as `kafka.on_offset_reset`
    /// says.
    pub(super) fn check_reset(
        &mut self,
        index: usize,
        message: &Message<'_>,
        end: PartitionEnd<'_>,
    ) {
        let key = format!("{}/{}", message.topic, message.partition);
        if !self.streams.positioned.remove(&key) {
            return;
        }
        let processor = self.streams.processor_for(index, &key);
        let Some(&next) = processor.next_offsets().get(&key) else {
            return;
        };
        if message.offset >= next {
            return;
        }
        let to = match self.offset_reset {
            OffsetReset::Earliest => message.offset,
            OffsetReset::Latest => end(message.topic, message.partition).unwrap_or_else(|err| {
                tracing::warn!(partition = %key, error = %err,
                    "cannot read the partition's end; resuming where the broker put it");
                message.offset
            }),
        };
        self.resume_partition(index, (&key, message.partition), next, to);
    }

    /// Resumes `key` at `to` (its checkpoint `next` was out of range): logged, counted and
    /// alerted.
    fn resume_partition(
        &mut self,
        index: usize,
        (key, partition): (&str, i32),
        next: i64,
        to: i64,
    ) {
        let processor = self.streams.processor_for(index, key);
        let stream = processor.settings().name.clone();
        tracing::error!(stream = %stream, partition = %key, checkpoint = next, resume_at = to,
            "the broker has no offset {next} in the partition (re-created topic or lost data); resuming");
        processor.resume_partition_at(key, to);
        self.metrics.offset_reset(&stream);
        let alert = crate::alert::offsets_reset(&stream, &partition.to_string(), next, to);
        let routed = crate::alert::route(&self.alerts, vec![alert]);
        match self.store.enqueue_alerts(&routed) {
            Ok(()) => self.wake.notify(),
            Err(err) => tracing::error!(error = %err, "cannot queue the offsets_reset alert"),
        }
    }
}

/// How long reading one offset may take before it counts as absent.
const PROBE_WAIT: Duration = Duration::from_secs(3);

/// Whether the broker has `offset` in the partition, reading from `from` (an offset it has)
/// with a consumer of its own, outside the group (`probe` is the client configuration). The
/// end, an out-of-range answer or no message within [`PROBE_WAIT`] mean it has not.
fn offset_exists(
    probe: &ClientConfig,
    (topic, partition): (&str, i32),
    from: i64,
    offset: i64,
) -> bool {
    let consumer: BaseConsumer = match probe
        .clone()
        // librdkafka wants a group for `assign`; nothing joins it or commits to it.
        .set("group.id", "driftgate-offset-check")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .set("enable.partition.eof", "true")
        .create()
    {
        Ok(consumer) => consumer,
        Err(err) => {
            tracing::warn!(error = %err, "cannot create a consumer to check a checkpoint");
            return true;
        }
    };
    let mut list = TopicPartitionList::new();
    let assigned = list
        .add_partition_offset(topic, partition, Offset::Offset(from))
        .and_then(|()| consumer.assign(&list));
    if let Err(err) = assigned {
        tracing::warn!(error = %err, "cannot read a partition to check a checkpoint");
        return true;
    }
    let deadline = std::time::Instant::now() + PROBE_WAIT;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if rdkafka::Message::offset(&message) >= offset => return true,
            Some(Err(err)) if absent(&err) => return false,
            Some(Ok(_)) | Some(Err(_)) | None => {}
        }
    }
    false
}

/// Errors that say the offset is not there: the end reached, or out of range.
fn absent(err: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    matches!(err, KafkaError::PartitionEOF(_))
        || matches!(
            err.rdkafka_error_code(),
            Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
        )
}

/// Takes `assigned` (already positioned) as the group's protocol wants.
pub(super) fn assign<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    assigned: &TopicPartitionList,
) {
    let result = match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_assign(assigned),
        _ => consumer.assign(assigned),
    };
    if let Err(err) = result {
        tracing::error!(error = %err, "cannot take the assigned partitions");
    }
}
