//! Reading a range of a topic for `replay`: every partition from its start to its end, merged
//! by broker time, without a consumer group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

/// Where a replayed range starts or ends in a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetBound {
    /// The oldest offset the topic still holds.
    Earliest,
    /// The end of the partition when the replay starts (its high watermark).
    Latest,
    /// This offset.
    At(i64),
}

/// A range of a topic to replay: per partition, from `start` (inclusive) to `end` (exclusive),
/// with per-partition exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRange {
    /// Where every partition not named in `start_at` starts.
    pub start: OffsetBound,
    /// Starts of named partitions.
    pub start_at: BTreeMap<i32, i64>,
    /// Where every partition not named in `end_at` ends.
    pub end: OffsetBound,
    /// Ends of named partitions.
    pub end_at: BTreeMap<i32, i64>,
}

impl Default for TopicRange {
    fn default() -> Self {
        TopicRange {
            start: OffsetBound::Earliest,
            start_at: BTreeMap::new(),
            end: OffsetBound::Latest,
            end_at: BTreeMap::new(),
        }
    }
}

impl TopicRange {
    /// Parses a bound written as `earliest`, `latest`, an offset for every partition (`1200`),
    /// or offsets of some partitions (`0:1200,3:90`; the rest keep `default`).
    pub fn parse_bound(
        text: &str,
        default: OffsetBound,
    ) -> Result<(OffsetBound, BTreeMap<i32, i64>), String> {
        let text = text.trim();
        match text {
            "earliest" => return Ok((OffsetBound::Earliest, BTreeMap::new())),
            "latest" => return Ok((OffsetBound::Latest, BTreeMap::new())),
            _ => {}
        }
        if let Ok(offset) = text.parse::<i64>() {
            return if offset >= 0 {
                Ok((OffsetBound::At(offset), BTreeMap::new()))
            } else {
                Err(format!("{text}: an offset is 0 or more"))
            };
        }
        let mut partitions = BTreeMap::new();
        for part in text.split(',') {
            let parsed = part.split_once(':').and_then(|(p, o)| {
                Some((p.trim().parse::<i32>().ok()?, o.trim().parse::<i64>().ok()?))
            });
            match parsed {
                Some((partition, offset)) if partition >= 0 && offset >= 0 => {
                    if partitions.insert(partition, offset).is_some() {
                        return Err(format!("{text}: partition {partition} is named twice"));
                    }
                }
                _ => {
                    return Err(format!(
                        "{part:?} is not an offset bound: use earliest, latest, an offset, or \
                         partition:offset pairs such as 0:1200,1:980"
                    ))
                }
            }
        }
        Ok((default, partitions))
    }

    /// The `[start, end)` offsets of a partition whose log spans `[low, high)`.
    fn resolve(&self, partition: i32, low: i64, high: i64) -> (i64, i64) {
        let pick = |bound: OffsetBound, named: Option<&i64>| match (named.copied(), bound) {
            (Some(offset), _) | (None, OffsetBound::At(offset)) => offset,
            (None, OffsetBound::Earliest) => low,
            (None, OffsetBound::Latest) => high,
        };
        let start = pick(self.start, self.start_at.get(&partition)).clamp(low, high);
        let end = pick(self.end, self.end_at.get(&partition)).clamp(low, high);
        (start, end.max(start))
    }
}

/// How long reading a range may go without a message before it fails.
const RANGE_STALL: Duration = Duration::from_secs(30);

/// Reads `range` of `topic` without joining a group or committing offsets, merging partitions
/// by broker timestamp (ties by partition, then offset), and hands each message to `each` with
/// the count read so far and the range's size. Errors are messages for the user.
pub fn read_range(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
    topic: &str,
    range: &TopicRange,
    mut each: impl FnMut(crate::pipeline::Message<'_>, u64, u64),
) -> Result<(), String> {
    let consumer = range_consumer(bootstrap_servers, properties)?;
    let partitions = partitions(&consumer, topic, range)?;
    // Per partition: the next offset to read and the end.
    let mut spans = BTreeMap::new();
    for &partition in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, METADATA_TIMEOUT)
            .map_err(|e| format!("cannot read partition {partition}'s offsets: {e}"))?;
        let (start, end) = range.resolve(partition, low, high);
        if start < end {
            spans.insert(partition, (start, end));
        }
    }
    if spans.is_empty() {
        return Ok(());
    }
    let total: u64 = spans.values().map(|(s, e)| (e - s) as u64).sum();
    let queues = assign(&consumer, topic, &spans)?;
    // The head (oldest unread message) of every partition still open.
    let mut heads: BTreeMap<i32, Head> = BTreeMap::new();
    let mut read = 0u64;
    loop {
        // Fill the head of every open partition that has none; a partition read to its end
        // is closed.
        let mut done = Vec::new();
        for (&partition, &(_, end)) in &spans {
            if heads.contains_key(&partition) {
                continue;
            }
            match next_in_partition(&consumer, &queues[&partition], topic, partition, end)? {
                Some(head) => {
                    heads.insert(partition, head);
                }
                None => done.push(partition),
            }
        }
        for partition in done {
            spans.remove(&partition);
        }
        let Some((&partition, _)) = heads
            .iter()
            .min_by_key(|(partition, head)| (head.timestamp_ms.unwrap_or(i64::MIN), **partition))
        else {
            return Ok(());
        };
        let head = heads.remove(&partition).expect("chosen from the heads");
        read += 1;
        let message = crate::pipeline::Message {
            topic,
            partition,
            offset: head.offset,
            timestamp_ms: head.timestamp_ms,
            payload: head.payload.as_deref(),
        };
        each(message, read, total);
    }
}

/// How long reading metadata or watermarks may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A consumer that only reads: it joins no group and commits nothing.
fn range_consumer(
    bootstrap_servers: &str,
    properties: &BTreeMap<String, String>,
) -> Result<Arc<BaseConsumer>, String> {
    let mut config = super::kafka::client_config(bootstrap_servers, properties);
    // A throwaway group id: `assign` needs none, but librdkafka wants one set; nothing is
    // committed under it.
    config
        .set("group.id", "driftgate-replay")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    let consumer = config
        .create()
        .map_err(|e| format!("cannot create a consumer: {e}"))?;
    Ok(Arc::new(consumer))
}

/// The topic's partitions; every partition the range names must be one of them.
fn partitions(
    consumer: &BaseConsumer,
    topic: &str,
    range: &TopicRange,
) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| format!("cannot read the topic's metadata: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        return Err("no such topic (or it has no partitions)".to_string());
    }
    for named in range.start_at.keys().chain(range.end_at.keys()) {
        if !partitions.contains(named) {
            return Err(format!(
                "partition {named} does not exist (the topic has {})",
                partitions.len()
            ));
        }
    }
    Ok(partitions)
}

/// Assigns the spans' partitions from their starts; returns a queue per partition.
fn assign(
    consumer: &Arc<BaseConsumer>,
    topic: &str,
    spans: &BTreeMap<i32, (i64, i64)>,
) -> Result<BTreeMap<i32, PartitionQueue<DefaultConsumerContext>>, String> {
    let mut assignment = TopicPartitionList::new();
    for (&partition, &(start, _)) in spans {
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(start))
            .map_err(|e| e.to_string())?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("cannot assign the partitions: {e}"))?;
    spans
        .keys()
        .map(|&partition| {
            let queue = consumer
                .split_partition_queue(topic, partition)
                .ok_or_else(|| format!("cannot read partition {partition} on its own"))?;
            Ok((partition, queue))
        })
        .collect()
}

/// The oldest unread message of a partition being replayed, owned.
struct Head {
    timestamp_ms: Option<i64>,
    offset: i64,
    payload: Option<Vec<u8>>,
}

/// The next message of `partition` before offset `end`, or `None` when it was read to `end`.
fn next_in_partition(
    consumer: &BaseConsumer,
    queue: &PartitionQueue<DefaultConsumerContext>,
    topic: &str,
    partition: i32,
    end: i64,
) -> Result<Option<Head>, String> {
    let waiting_since = Instant::now();
    loop {
        // Serves the consumer's own events; messages come from the partition queues.
        if let Some(Err(e)) = consumer.poll(Duration::ZERO) {
            return Err(format!("reading failed: {e}"));
        }
        match queue.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if message.offset() >= end => return Ok(None),
            Some(Ok(message)) => {
                return Ok(Some(Head {
                    timestamp_ms: message.timestamp().to_millis(),
                    offset: message.offset(),
                    payload: message.payload().map(<[u8]>::to_vec),
                }))
            }
            Some(Err(e)) => return Err(format!("reading partition {partition} failed: {e}")),
            None => {
                // Transaction markers and compaction leave gaps: the position tells whether
                // the range was read to its end.
                let position = consumer
                    .position()
                    .ok()
                    .and_then(|list| {
                        list.find_partition(topic, partition)
                            .and_then(|p| p.offset().to_raw())
                    })
                    .unwrap_or(-1);
                if position >= end {
                    return Ok(None);
                }
                if waiting_since.elapsed() > RANGE_STALL {
                    return Err(format!(
                        "partition {partition}: no message for {}s before offset {end}",
                        RANGE_STALL.as_secs()
                    ));
                }
            }
        }
    }
}
