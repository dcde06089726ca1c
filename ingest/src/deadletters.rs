//! Dead letters: listing them and replaying them through validation.
//!
//! A message that is not a valid v1 event is never lost: [`crate::pipeline`] stores it
//! in `dead_letters/received_date=…/` with its topic, partition, offset and reason.
//! [`counts`] and [`list`] read the live dead-letter files; [`replay`] re-validates them
//! (after a fix in culla, or a rule relaxed) and turns the ones now valid into events.
//! A replay is one manifest commit (operation `replay`) that adds the new `events`
//! files and removes each touched dead-letter file, adding back a rewritten file with
//! the rows still invalid: a second replay finds nothing left to turn into events, and
//! an event already stored is not stored twice (the same `event_id` dedup as ingest).
//! Redacted rows (personal data masked) are never replayed: their bytes are not the
//! original ones any more.

use crate::Result;
use crate::files;
use crate::ids::id128;
use crate::pipeline::Writer;
use chrono::{DateTime, Utc};
use culla_schemas::arrow::{DeadLetter, Lineage};
use culla_schemas::layout::{self, DataDir, TABLE_DEAD_LETTERS};
use culla_schemas::parse_event;
use culla_table::{Commit, Committed, FileEntry, Snapshot};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use std::collections::BTreeMap;
use std::fmt;

/// One dead letter as `culla deadletters list --reason X` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRow {
    /// Topic it was read from.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Reason code.
    pub reason: String,
    /// Field concerned, if any.
    pub field: Option<String>,
    /// One-line explanation.
    pub detail: String,
    /// Whether personal data was masked in the stored bytes.
    pub redacted: bool,
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    b.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| crate::Error::BadInput(format!("a dead-letter file has no column {name}")))
}

/// Rows of a `dead_letters` batch, back as [`DeadLetter`]s.
pub fn from_batch(b: &RecordBatch) -> Result<Vec<DeadLetter>> {
    let topic = column(b, "topic")?.as_string::<i32>();
    let partition = column(b, "partition")?.as_primitive::<Int32Type>();
    let offset = column(b, "offset")?.as_primitive::<Int64Type>();
    let key = column(b, "key")?.as_binary::<i32>();
    let raw = column(b, "raw")?.as_binary::<i32>();
    let reason = column(b, "reason")?.as_string::<i32>();
    let field = column(b, "field")?.as_string::<i32>();
    let detail = column(b, "detail")?.as_string::<i32>();
    let received = column(b, "received_at")?.as_primitive::<TimestampMicrosecondType>();
    let redacted = column(b, "redacted")?.as_boolean();
    Ok((0..b.num_rows())
        .map(|i| DeadLetter {
            topic: topic.value(i).to_string(),
            partition: partition.value(i),
            offset: offset.value(i),
            key: key.is_valid(i).then(|| key.value(i).to_vec()),
            raw: raw.value(i).to_vec(),
            reason: reason.value(i).to_string(),
            field: field.is_valid(i).then(|| field.value(i).to_string()),
            detail: detail.value(i).to_string(),
            received_at_us: received.value(i),
            redacted: redacted.value(i),
        })
        .collect())
}

/// Every live dead letter of `dir`, file by file.
fn read_all(dir: &DataDir, snap: &Snapshot) -> Result<Vec<(FileEntry, Vec<DeadLetter>)>> {
    let mut out = Vec::new();
    for f in snap.live_files(TABLE_DEAD_LETTERS) {
        let mut rows = Vec::new();
        for b in files::read_parquet(&dir.resolve(&f.path), None)? {
            rows.extend(from_batch(&b)?);
        }
        out.push((f.clone(), rows));
    }
    Ok(out)
}

/// Dead letters by reason code.
pub fn counts(dir: &DataDir) -> Result<BTreeMap<String, u64>> {
    let snap = Snapshot::load(dir)?;
    let _lock = layout::read_lock_shared(dir)?;
    let mut out = BTreeMap::new();
    for f in snap.live_files(TABLE_DEAD_LETTERS) {
        for b in files::open_parquet(&dir.resolve(&f.path), Some(&["reason"]))? {
            let b = b?;
            for r in b.column(0).as_string::<i32>().iter().flatten() {
                *out.entry(r.to_string()).or_default() += 1;
            }
        }
    }
    Ok(out)
}

/// Dead letters of one reason (or all), ordered by topic, partition, offset.
pub fn list(dir: &DataDir, reason: Option<&str>) -> Result<Vec<DeadLetterRow>> {
    let snap = Snapshot::load(dir)?;
    let _lock = layout::read_lock_shared(dir)?;
    let mut out: Vec<DeadLetterRow> = read_all(dir, &snap)?
        .into_iter()
        .flat_map(|(_, rows)| rows)
        .filter(|d| reason.is_none_or(|r| d.reason == r))
        .map(|d| DeadLetterRow {
            topic: d.topic,
            partition: d.partition,
            offset: d.offset,
            reason: d.reason,
            field: d.field,
            detail: d.detail,
            redacted: d.redacted,
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
    Ok(out)
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Dead letters looked at (matching `--reason`).
    pub examined: u64,
    /// Now valid, and stored as new events.
    pub replayed: u64,
    /// Now valid, but their `event_id` was already stored: removed, not stored again.
    pub duplicates: u64,
    /// Still invalid: kept.
    pub still_invalid: u64,
    /// Redacted (personal data masked): kept, never replayed.
    pub redacted: u64,
}

impl fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} dead letters examined: {} replayed into events, {} already stored, {} still invalid, {} redacted (not replayable)",
            self.examined, self.replayed, self.duplicates, self.still_invalid, self.redacted
        )
    }
}

/// Re-validates the dead letters (of `reason`, or all) and stores the ones now valid.
pub fn replay(dir: &DataDir, reason: Option<&str>) -> Result<ReplaySummary> {
    replay_at(dir, reason, Utc::now())
}

/// [`replay`] judging "in the future" against `now` (tests).
pub fn replay_at(dir: &DataDir, reason: Option<&str>, now: DateTime<Utc>) -> Result<ReplaySummary> {
    let mut w = Writer::open(dir, "replay")?;
    loop {
        w.refresh()?;
        let mut sum = ReplaySummary::default();
        let mut inserted: Vec<u128> = Vec::new();
        let mut add: Vec<FileEntry> = Vec::new();
        let mut remove: Vec<String> = Vec::new();
        let mut rewritten: Vec<(String, Vec<DeadLetter>)> = Vec::new();
        for (file, rows) in read_all(dir, w.snapshot())? {
            let mut keep = Vec::with_capacity(rows.len());
            let mut touched = false;
            for d in rows {
                if reason.is_some_and(|r| d.reason != r) {
                    keep.push(d);
                    continue;
                }
                sum.examined += 1;
                if d.redacted {
                    sum.redacted += 1;
                    keep.push(d);
                    continue;
                }
                match parse_event(&d.raw, now) {
                    Ok(ev) => {
                        touched = true;
                        let id = id128(&ev.event_id);
                        if w.accept_id(id)? {
                            inserted.push(id);
                            sum.replayed += 1;
                            let raw = String::from_utf8_lossy(&d.raw);
                            w.push_event(
                                &ev,
                                &raw,
                                &Lineage {
                                    topic: &d.topic,
                                    partition: d.partition,
                                    offset: d.offset,
                                },
                            );
                        } else {
                            sum.duplicates += 1;
                        }
                    }
                    Err(_) => {
                        sum.still_invalid += 1;
                        keep.push(d);
                    }
                }
            }
            if touched {
                remove.push(file.path.clone());
                if !keep.is_empty() {
                    let parent = file
                        .path
                        .rsplit_once('/')
                        .map_or(TABLE_DEAD_LETTERS.to_string(), |(p, _)| p.to_string());
                    rewritten.push((parent, keep));
                }
            }
        }
        if remove.is_empty() {
            w.clear();
            return Ok(sum);
        }
        add.extend(w.stage_events()?);
        for (parent, rows) in &rewritten {
            add.push(crate::pipeline::stage_dead_letters(
                w.staging(),
                parent,
                rows,
            )?);
        }
        let mut stats = BTreeMap::new();
        stats.insert("events".to_string(), sum.replayed);
        stats.insert("duplicates".to_string(), sum.duplicates);
        let mut c = Commit::new("replay", w.tag());
        c.add = add.clone();
        c.remove = remove.clone();
        c.stats = stats;
        let mut snap = w.snapshot().clone();
        if culla_table::try_commit(dir, &mut snap, &c)? == Committed::Done {
            files::delete_removed(dir, &c.remove)?;
            w.clear();
            tracing::info!(seq = snap.seq, "replay committed");
            return Ok(sum);
        }
        // Another writer committed first: start over from the new state (a part that
        // landed, the replayed events, is found stored then).
        for f in &add {
            if !snap.files.contains_key(&f.path) {
                let _ = std::fs::remove_file(dir.resolve(&f.path));
            }
        }
        for id in inserted {
            w.forget_id(&id);
        }
        w.clear();
    }
}
