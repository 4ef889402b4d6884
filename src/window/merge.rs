//! One stream-wide window from its partition parts (several instances sharing a store).
//!
//! Each partition's records are cut into duration windows of their own; the window a
//! partition closes for an interval is that partition's *part* of the interval. The parts of
//! one interval merge into the stream's window for it exactly: counts add, raw values join,
//! summaries on the same layouts add ([`super::summary`]), offset ranges are per partition
//! already. Parts of one interval must not overlap (one part per partition, each published
//! once); merging is then commutative and associative, so the merged window does not depend on
//! which instance published which part or in which order they are read.

use super::state::ClosedWindow;
use super::summary::WindowSummaries;
use crate::decode::Column;

/// Parts that cannot make one window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot merge window parts: {0}")]
pub struct MergeError(String);

impl MergeError {
    /// An error in words.
    pub fn new(message: String) -> MergeError {
        MergeError(message)
    }
}

/// Merges the parts of one interval into window `index` of the stream. `parts` must be
/// non-empty, of the same interval and schema, and cover different partitions; summarised
/// parts must be on the same baseline and bins.
pub fn merge_parts(index: u64, parts: Vec<ClosedWindow>) -> Result<ClosedWindow, MergeError> {
    let several = parts.len() > 1;
    let mut parts = parts.into_iter();
    let Some(mut merged) = parts.next() else {
        return Err(MergeError("no parts to merge".into()));
    };
    merged.index = index;
    for part in parts {
        absorb(&mut merged, part)?;
    }
    if let (Some(rows), true) = (&merged.rows, several) {
        merged.rows = Some(in_time_order(rows));
    }
    Ok(merged)
}

/// Record lines (as windows keep them: `{"ts":…,` first when the record has a time) in
/// event-time order; lines of equal time, and lines without one (first), keep their order.
fn in_time_order(rows: &str) -> String {
    let time = |line: &str| -> Option<i64> {
        let rest = line.strip_prefix("{\"ts\":")?;
        let end = rest.find([',', '}'])?;
        rest[..end].parse().ok()
    };
    let mut lines: Vec<&str> = rows.lines().collect();
    lines.sort_by_key(|line| time(line));
    let mut sorted = String::with_capacity(rows.len());
    for line in lines {
        sorted.push_str(line);
        sorted.push('\n');
    }
    sorted
}

/// Adds `part` into `merged`.
fn absorb(merged: &mut ClosedWindow, part: ClosedWindow) -> Result<(), MergeError> {
    if (merged.start_ms, merged.end_ms) != (part.start_ms, part.end_ms) {
        return Err(MergeError(format!(
            "parts of different intervals: {:?}..{:?} and {:?}..{:?}",
            merged.start_ms, merged.end_ms, part.start_ms, part.end_ms
        )));
    }
    // Two parts of one partition: only a wholly late one (of an interval merged before, see
    // `WindowPart::late_into`) may join the partition's part; its offsets widen the range.
    let late = part.records > 0 && part.late_records == part.records;
    if let Some(key) = part
        .offsets
        .keys()
        .find(|k| merged.offsets.contains_key(*k))
        .filter(|_| !late)
    {
        return Err(MergeError(format!("two parts of partition {key}")));
    }
    if merged.data.columns.len() != part.data.columns.len() {
        return Err(MergeError("parts of different schemas".into()));
    }
    merge_summaries(&mut merged.summaries, part.summaries)?;
    if merged.layouts.is_none() {
        merged.layouts = part.layouts;
    }
    for (into, from) in merged.data.columns.iter_mut().zip(part.data.columns) {
        merge_column(into, from)?;
    }
    for (field, count) in part.data.unknown_fields {
        *merged.data.unknown_fields.entry(field).or_insert(0) += count;
    }
    merged.data.records += part.data.records;
    merged.records += part.records;
    merged.late_records += part.late_records;
    merged.labelled += part.labelled;
    merged.correct += part.correct;
    merged.residuals.merge(&part.residuals);
    (merged.outputs.append(part.outputs))
        .map_err(|err| MergeError::new(format!("outputs: {err}")))?;
    merged.joint = match (merged.joint.take(), part.joint) {
        (Some(mut joint), Some(more)) => {
            (joint.merge(more)).map_err(|err| MergeError::new(format!("rows: {err}")))?;
            Some(joint)
        }
        // A part without its sample leaves the window's incomplete: none is kept.
        _ => None,
    };
    for (key, range) in part.offsets {
        let span = merged.offsets.entry(key).or_insert(range);
        span.first = span.first.min(range.first);
        span.last = span.last.max(range.last);
    }
    merged.rows = match (merged.rows.take(), part.rows) {
        (Some(mut rows), Some(more)) => {
            rows.push_str(&more);
            Some(rows)
        }
        // A part without its records makes the window's records incomplete: none are kept.
        _ => None,
    };
    Ok(())
}

fn merge_summaries(
    into: &mut Option<WindowSummaries>,
    from: Option<WindowSummaries>,
) -> Result<(), MergeError> {
    let Some(from) = from else {
        return Ok(());
    };
    let Some(into) = into else {
        *into = Some(from);
        return Ok(());
    };
    if (&into.baseline, into.bins, into.columns.len())
        != (&from.baseline, from.bins, from.columns.len())
    {
        return Err(MergeError(format!(
            "parts summarised on different baselines or bins: {} ({} bins) and {} ({} bins)",
            into.baseline, into.bins, from.baseline, from.bins
        )));
    }
    for (mine, theirs) in into.columns.iter_mut().zip(from.columns) {
        match (mine.as_mut(), theirs) {
            (Some(mine), Some(theirs)) => mine.merge(&theirs),
            (None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
    }
    Ok(())
}

fn merge_column(into: &mut Column, from: Column) -> Result<(), MergeError> {
    match (into, from) {
        (Column::Numeric(into), Column::Numeric(from)) => {
            into.values.extend(from.values);
            into.quality.add(from.quality);
        }
        (Column::Categorical(into), Column::Categorical(from)) => {
            for (label, count) in from.counts {
                *into.counts.entry(label).or_insert(0) += count;
            }
            into.quality.add(from.quality);
        }
        (into, from) => {
            return Err(MergeError(format!(
                "a {} column and a {} column",
                into.kind().as_str(),
                from.kind().as_str()
            )))
        }
    }
    Ok(())
}
