//! Windows that span instances (see [`crate::pipeline::parts`]): each partition's state and
//! closed parts, and the one instance per stream that merges them.
//!
//! * A partition's owner commits, in one transaction fenced like every commit (the lineage's
//!   lease, the partition's epoch), the partition's next offset, its processor's checkpoint
//!   (the open part) and the parts it closed. The state moves with the partition: its next
//!   owner resumes from exactly that, so a part is neither lost nor counted twice.
//! * The merger of a stream holds a lease row with an epoch; a dead holder's lease expires and
//!   another instance takes it over, with the stream's window numbering, policy state and data
//!   since the last retrain, which live in that row.
//! * An interval is ready once every partition's watermark is at or past its end. The
//!   merger commits the merged window, its decisions and what they set off, the parts it
//!   consumed and its own state in one transaction fenced by its epoch.

use super::db::{values, Sql};
use super::windows::parse_json;
use super::{now_ms, Store, StoreError};
use crate::pipeline::{Checkpoint, JudgedWindow, SinceRetrain, WindowPart};
use crate::policy::EngineState;

/// What a merger row's `policies` column holds: the policies' state, and beside it the data
/// since the last retrain when the stream keeps it (a row written before it has none).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct MergerState {
    #[serde(flatten)]
    policies: EngineState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since_retrain: Option<SinceRetrain>,
}

/// The stream's merger as this process holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Merger {
    /// The stream.
    pub stream: String,
    /// The lease's epoch when this process took it: its commits are checked against it.
    pub epoch: i64,
    /// The next window's index.
    pub next_index: u64,
    /// The end of the last merged interval: parts ending by then are late.
    pub merged_until: Option<i64>,
    /// The policies' state as of the last merged window.
    pub policies: EngineState,
    /// The data since the last retrain as of the last merged window, when the stream keeps it.
    pub since_retrain: Option<SinceRetrain>,
}

/// One stored part, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPart {
    /// `topic/partition`.
    pub part: String,
    /// Its first offset (its key in the partition).
    pub first_offset: i64,
    /// The part.
    pub part_data: WindowPart,
}

/// An interval ready to merge: its bounds, its parts, and late parts (of intervals merged
/// before) that go into it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyInterval {
    /// Start, epoch milliseconds.
    pub start_ms: i64,
    /// End (exclusive).
    pub end_ms: i64,
    /// Its own parts, by partition.
    pub parts: Vec<StoredPart>,
    /// Parts of intervals already merged.
    pub late: Vec<StoredPart>,
}

impl Store {
    /// Commits a partition's state, its watermark (the event time before which its records are
    /// all in its parts or its open part; `None`: not known yet) and the parts it closed,
    /// fenced: `Fenced` when this lineage lost the partition or its lease.
    pub fn commit_partition(
        &mut self,
        stream: &str,
        part: &str,
        checkpoint: &Checkpoint,
        watermark: Option<i64>,
        parts: &[WindowPart],
    ) -> Result<(), StoreError> {
        let fence = self
            .fence
            .clone()
            .ok_or_else(|| StoreError::Fenced("partition parts need a shared store".to_string()))?;
        let epoch = fence
            .partitions
            .get(stream)
            .and_then(|owned| owned.get(part))
            .copied()
            .ok_or_else(|| {
                StoreError::Fenced(format!("partition {part} of {stream} is not held"))
            })?;
        let now = now_ms();
        let tx = self.db.transaction()?;
        super::fence::renew(&tx, &fence)?;
        let state = serde_json::to_string(checkpoint).expect("checkpoints serialise");
        let next = checkpoint.next_offsets.get(part).copied();
        let moved = tx.execute(
            "UPDATE partitions SET next_offset = $1, open_state = $2, watermark = $3
             WHERE stream = $4 AND part = $5 AND lineage = $6 AND epoch = $7",
            values![next, state, watermark, stream, part, &fence.lineage, epoch],
        )?;
        if moved == 0 {
            return Err(StoreError::Fenced(format!(
                "partition {part} of stream {stream} was claimed by another instance"
            )));
        }
        for closed in parts {
            insert_part(&tx, stream, part, closed, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The state a partition's last owner committed (its processor's checkpoint), if any.
    pub fn partition_state(
        &self,
        stream: &str,
        part: &str,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let row = self.db.query_opt(
            "SELECT open_state FROM partitions WHERE stream = $1 AND part = $2",
            values![stream, part],
        )?;
        let Some(row) = row else { return Ok(None) };
        row.get::<Option<String>>(0)?
            .map(|text| parse_json("partition state", &text))
            .transpose()
    }

    /// Takes the merging of `stream` for this connection's process when nobody holds it or its
    /// holder's lease expired, or renews it when `held` is this process's: the merger as held
    /// now, or `None` (another live process merges).
    pub fn claim_merger(
        &self,
        stream: &str,
        held: Option<&Merger>,
    ) -> Result<Option<Merger>, StoreError> {
        let holder = self.holder.clone().ok_or_else(|| {
            StoreError::Fenced("merging needs a process holding leases".to_string())
        })?;
        let now = now_ms();
        let until = now + holder.lease_ms;
        if let Some(held) = held {
            let renewed = self.db.execute(
                "UPDATE stream_mergers SET lease_until = $1
                 WHERE stream = $2 AND owner = $3 AND epoch = $4",
                values![until, stream, &holder.owner, held.epoch],
            )?;
            return Ok((renewed > 0).then(|| held.clone()));
        }
        let row = self.db.query_opt(
            "INSERT INTO stream_mergers (stream, owner, epoch, lease_until) VALUES ($1, $2, 1, $3)
             ON CONFLICT (stream) DO UPDATE SET owner = excluded.owner,
               epoch = stream_mergers.epoch + 1, lease_until = excluded.lease_until
             WHERE stream_mergers.lease_until < $4
             RETURNING epoch, next_index, merged_until, policies",
            values![stream, &holder.owner, until, now],
        )?;
        let Some(row) = row else { return Ok(None) };
        let state: MergerState = match row.get::<Option<String>>(3)? {
            Some(text) => parse_json("policy state", &text)?,
            None => MergerState::default(),
        };
        Ok(Some(Merger {
            stream: stream.to_string(),
            epoch: row.get(0)?,
            next_index: row.get::<i64>(1)? as u64,
            merged_until: row.get(2)?,
            policies: state.policies,
            since_retrain: state.since_retrain,
        }))
    }

    /// Gives up the merging `merger` holds (the process is stopping): its lease ends now, so
    /// another instance takes over at once; the stream's state stays for it.
    pub fn release_merger(&self, merger: &Merger) -> Result<(), StoreError> {
        let owner = self
            .holder
            .as_ref()
            .map(|h| h.owner.clone())
            .unwrap_or_default();
        self.db.execute(
            "UPDATE stream_mergers SET lease_until = 0
             WHERE stream = $1 AND owner = $2 AND epoch = $3",
            values![&merger.stream, owner, merger.epoch],
        )?;
        Ok(())
    }

    /// The earliest interval of `stream` whose parts are all in: each of the topic's
    /// `partitions` has been claimed and its watermark is at or past the interval's end. `None`
    /// when there is none yet.
    pub fn ready_interval(
        &self,
        merger: &Merger,
        partitions: usize,
    ) -> Result<Option<ReadyInterval>, StoreError> {
        let stream = merger.stream.as_str();
        let after = merger.merged_until.unwrap_or(i64::MIN);
        let claimed = self.db.query_opt(
            "SELECT COUNT(*) FROM partitions WHERE stream = $1",
            values![stream],
        )?;
        let claimed = claimed.map_or(Ok(0), |row| row.get::<i64>(0))?;
        if usize::try_from(claimed).unwrap_or(0) < partitions {
            return Ok(None);
        }
        let row = self.db.query_opt(
            "SELECT start_ms, end_ms FROM window_parts WHERE stream = $1 AND end_ms > $2
             ORDER BY start_ms, end_ms LIMIT 1",
            values![stream, after],
        )?;
        let Some(row) = row else { return Ok(None) };
        let (start_ms, end_ms): (i64, i64) = (row.get(0)?, row.get(1)?);
        let holding = self.db.query_opt(
            "SELECT part FROM partitions
             WHERE stream = $1 AND (watermark IS NULL OR watermark < $2) LIMIT 1",
            values![stream, end_ms],
        )?;
        if holding.is_some() {
            return Ok(None);
        }
        let parts = self.parts_where(
            "stream = $1 AND start_ms = $2 AND end_ms = $3",
            values![stream, start_ms, end_ms],
        )?;
        let late = self.parts_where("stream = $1 AND end_ms <= $2", values![stream, after])?;
        Ok(Some(ReadyInterval {
            start_ms,
            end_ms,
            parts,
            late,
        }))
    }

    /// Commits a merged window: its report and decisions (confirmed against the store's, see
    /// `arbiter`), the alerts and runs they set off (`outbox`), the parts it consumed, and
    /// `merger`'s state after it, in one transaction fenced by the merger's epoch: `Fenced`
    /// when another process took the merging over.
    pub fn commit_merged(
        &mut self,
        merger: &Merger,
        window: &mut JudgedWindow,
        consumed: &[StoredPart],
        keep_windows: u64,
        policies: &[crate::policy::Policy],
        outbox: impl FnOnce(&[JudgedWindow]) -> super::Outbox,
    ) -> Result<super::Outbox, StoreError> {
        let owner = self
            .holder
            .as_ref()
            .map(|h| h.owner.clone())
            .unwrap_or_default();
        let now = now_ms();
        let state = MergerState {
            policies: merger.policies.clone(),
            since_retrain: merger.since_retrain.clone(),
        };
        let state = serde_json::to_string(&state).expect("policy state serialises");
        let tx = self.db.transaction()?;
        let kept = tx.execute(
            "UPDATE stream_mergers SET next_index = $1, merged_until = $2, policies = $3
             WHERE stream = $4 AND owner = $5 AND epoch = $6",
            values![
                merger.next_index,
                merger.merged_until,
                state,
                &merger.stream,
                owner,
                merger.epoch
            ],
        )?;
        if kept == 0 {
            return Err(StoreError::Fenced(format!(
                "the merging of stream {} was taken over by another instance",
                merger.stream
            )));
        }
        for part in consumed {
            tx.execute(
                "DELETE FROM window_parts WHERE stream = $1 AND part = $2 AND first_offset = $3",
                values![&merger.stream, &part.part, part.first_offset],
            )?;
        }
        super::arbiter::arbitrate(&tx, &mut window.decisions, policies)?;
        let windows = std::slice::from_ref(window);
        let out = outbox(windows);
        super::windows::write_windows(&tx, &merger.stream, windows, keep_windows, &out, now)?;
        tx.commit()?;
        Ok(out)
    }

    fn parts_where(
        &self,
        condition: &str,
        args: &[super::db::Value],
    ) -> Result<Vec<StoredPart>, StoreError> {
        let rows = self.db.query(
            &format!(
                "SELECT part, first_offset, payload FROM window_parts WHERE {condition}
                 ORDER BY part, first_offset"
            ),
            args,
        )?;
        rows.iter()
            .map(|row| {
                Ok(StoredPart {
                    part: row.get(0)?,
                    first_offset: row.get(1)?,
                    part_data: parse_json("window part", &row.get::<String>(2)?)?,
                })
            })
            .collect()
    }
}

fn insert_part(
    tx: &impl Sql,
    stream: &str,
    part: &str,
    closed: &WindowPart,
    now: i64,
) -> Result<(), StoreError> {
    let window = &closed.window;
    let (Some(start), Some(end)) = (window.start_ms, window.end_ms) else {
        return Err(StoreError::Damaged {
            what: "window part",
            message: format!("a part of {part} has no interval"),
        });
    };
    let first = window.offsets.get(part).map(|range| range.first);
    let payload = serde_json::to_string(closed).expect("parts serialise");
    tx.execute(
        "INSERT INTO window_parts (stream, part, first_offset, start_ms, end_ms, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        values![stream, part, first.unwrap_or(-1), start, end, payload, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::decode::Dataset;
    use crate::pipeline::{Message, StreamProcessor, StreamSettings};
    use crate::store::{testing, Holder};

    const TOPIC: &str = "t";

    fn settings() -> StreamSettings {
        let schema = crate::decode::Schema::of(&[("x", crate::decode::FeatureKind::Numeric)]);
        let mut data = crate::decode::Dataset::new(schema.clone());
        for i in 0..200 {
            data.push_json_record(
                serde_json::json!({ "x": f64::from(i % 37) })
                    .as_object()
                    .unwrap(),
            );
        }
        let baseline =
            crate::baseline::Baseline::build(&data, Default::default(), Default::default());
        StreamSettings {
            name: "s".into(),
            topic: TOPIC.into(),
            baseline_path: "b.json".into(),
            baseline: Arc::new(baseline.unwrap()),
            schema,
            window: crate::window::WindowSpec::DurationMs(1000),
            grace: std::time::Duration::ZERO,
            dead_letter_topic: None,
            drift: Default::default(),
            keep_records: Some(false),
            summarise_after: Some(0),
            multivariate: Default::default(),
            since_retrain: None,
        }
    }

    /// Partition `partition`'s processor after messages at `times` (offsets from 0), and the
    /// parts they closed.
    fn cut(partition: i32, times: &[i64]) -> (StreamProcessor, Vec<WindowPart>) {
        let mut processor = StreamProcessor::new(settings(), None).unwrap();
        processor.cut_parts().unwrap();
        let mut parts = Vec::new();
        for (offset, ts) in times.iter().enumerate() {
            let payload = serde_json::to_vec(&serde_json::json!({"ts": ts, "x": 3.0})).unwrap();
            let message = Message {
                topic: TOPIC,
                partition,
                offset: offset as i64,
                timestamp_ms: None,
                payload: Some(&payload),
            };
            parts.extend(processor.process(message).parts);
        }
        (processor, parts)
    }

    fn joined(url: &crate::store::StoreUrl, name: &str, lease_ms: i64) -> Store {
        let mut store = Store::open(url).unwrap();
        let owner = format!("{name}/1");
        store.claim_lineage(name, &owner, 60_000).unwrap();
        store.act_for(Holder { owner, lease_ms });
        store
    }

    /// A partition's watermark while it has a window open: the window's start.
    fn start(processor: &StreamProcessor) -> Option<i64> {
        processor.checkpoint().open_window.start_ms
    }

    fn fenced<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
        matches!(result, Err(StoreError::Fenced(_)))
    }

    #[test]
    fn a_partitions_state_and_parts_move_with_it_and_its_former_owner_is_fenced() {
        let Some(url) = testing::postgres_database() else {
            return;
        };
        let (mut a, mut b) = (joined(&url, "a", 60_000), joined(&url, "b", 60_000));
        let parts = ["t/0".to_string(), "t/1".to_string()];
        a.claim_partitions("s", &parts).unwrap();
        let (p0, closed) = cut(0, &[1000, 1500, 2100]);
        assert_eq!(closed.len(), 1);
        a.commit_partition("s", "t/0", &p0.checkpoint(), start(&p0), &closed)
            .unwrap();
        let (p1, _) = cut(1, &[1200]);
        a.commit_partition("s", "t/1", &p1.checkpoint(), start(&p1), &[])
            .unwrap();
        // t/1 moves to b mid-interval: b resumes from a's state, and a can write it no more.
        let claimed = b.claim_partitions("s", &parts[1..]).unwrap();
        assert_eq!(claimed, vec![("t/1".to_string(), Some(1))]);
        let state = b.partition_state("s", "t/1").unwrap().unwrap();
        assert_eq!(state, p1.checkpoint());
        assert!(fenced(a.commit_partition(
            "s",
            "t/1",
            &p1.checkpoint(),
            None,
            &[]
        )));
        assert_eq!(
            a.partition_state("s", "t/0").unwrap(),
            Some(p0.checkpoint())
        );
    }

    #[test]
    fn one_process_merges_an_interval_once_every_partition_is_past_it() {
        let Some(url) = testing::postgres_database() else {
            return;
        };
        let (mut a, b) = (joined(&url, "a", 1), joined(&url, "b", 60_000));
        a.claim_partitions("s", &["t/0".to_string(), "t/1".to_string()])
            .unwrap();
        let merger = a
            .claim_merger("s", None)
            .unwrap()
            .expect("nobody merges yet");
        assert_eq!((merger.epoch, merger.next_index), (1, 0));
        let (p0, closed0) = cut(0, &[1000, 1500, 2100]);
        a.commit_partition("s", "t/0", &p0.checkpoint(), start(&p0), &closed0)
            .unwrap();
        let (p1, _) = cut(1, &[1200]);
        a.commit_partition("s", "t/1", &p1.checkpoint(), start(&p1), &[])
            .unwrap();
        assert_eq!(
            a.ready_interval(&merger, 2).unwrap(),
            None,
            "t/1 is inside the interval"
        );
        let (p1, closed1) = cut(1, &[1200, 2300]);
        a.commit_partition("s", "t/1", &p1.checkpoint(), start(&p1), &closed1)
            .unwrap();
        // A partition nobody has claimed yet holds every interval back, ...
        assert_eq!(
            a.ready_interval(&merger, 3).unwrap(),
            None,
            "t/2 has no owner yet"
        );
        assert!(a.ready_interval(&merger, 2).unwrap().is_some());
        // ... and so does one whose watermark is not known yet.
        a.claim_partitions("s", &["t/2".to_string()]).unwrap();
        assert_eq!(
            a.ready_interval(&merger, 3).unwrap(),
            None,
            "t/2 is not known yet"
        );
        let idle = StreamProcessor::new(settings(), None).unwrap();
        a.commit_partition("s", "t/2", &idle.checkpoint(), Some(5000), &[])
            .unwrap();
        let ready = a
            .ready_interval(&merger, 3)
            .unwrap()
            .expect("all are past it");
        assert_eq!((ready.start_ms, ready.end_ms), (1000, 2000));
        let names: Vec<&str> = ready.parts.iter().map(|p| p.part.as_str()).collect();
        assert_eq!(names, ["t/0", "t/1"]);

        let mut judge = StreamProcessor::new(settings(), None).unwrap();
        let parts = ready.parts.iter().map(|p| p.part_data.clone()).collect();
        let mut window = judge.judge_parts(merger.next_index, parts).unwrap();
        assert_eq!(window.report.window.records, 3);
        let mut since_retrain = SinceRetrain::new(&settings().schema, 100, 0);
        since_retrain.add(&Dataset::new(settings().schema));
        let after = Merger {
            next_index: 1,
            merged_until: Some(ready.end_ms),
            since_retrain: Some(since_retrain),
            ..merger.clone()
        };
        let none = |_: &[JudgedWindow]| crate::store::Outbox::default();
        a.commit_merged(&after, &mut window, &ready.parts, 10, &[], none)
            .unwrap();
        assert_eq!(a.latest_windows("s", 10).unwrap()[0].index, 0);
        assert_eq!(
            a.ready_interval(&after, 3).unwrap(),
            None,
            "its parts are consumed"
        );

        // a's lease (1 ms) is over: b takes the merging over with the stream's numbering, and
        // a can commit nothing more.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let taken = b
            .claim_merger("s", None)
            .unwrap()
            .expect("a's lease expired");
        assert_eq!(
            (taken.epoch, taken.next_index, taken.merged_until),
            (2, 1, Some(2000))
        );
        assert_eq!(
            taken.since_retrain, after.since_retrain,
            "the data since the retrain too"
        );
        assert!(fenced(a.commit_merged(
            &after,
            &mut window,
            &[],
            10,
            &[],
            none
        )));
        assert_eq!(
            b.claim_merger("s", Some(&taken)).unwrap(),
            Some(taken.clone())
        );
        assert_eq!(a.claim_merger("s", Some(&after)).unwrap(), None);
        // b stops and gives the merging up: a takes it at once, with the stream's state.
        b.release_merger(&taken).unwrap();
        let back = a.claim_merger("s", None).unwrap().expect("released");
        assert_eq!((back.epoch, back.next_index), (3, 1));
        assert!(b.claim_merger("s", Some(&taken)).unwrap().is_none());

        // A part of the merged interval published late goes into the next one.
        let (p0, late) = cut(0, &[1800, 3200]);
        a.commit_partition("s", "t/0", &p0.checkpoint(), start(&p0), &late)
            .unwrap();
        let (p1, next) = cut(1, &[2300, 3100]);
        a.commit_partition("s", "t/1", &p1.checkpoint(), start(&p1), &next)
            .unwrap();
        let ready = b
            .ready_interval(&taken, 3)
            .unwrap()
            .expect("both are past 3000");
        assert_eq!((ready.start_ms, ready.late.len()), (2000, 1));
    }
}
