//! Builds small data directories straight from NDJSON events, for tests and benches
//! (no ingest pipeline needed): each line is validated with
//! [`culla_schemas::parse_event`], the events are grouped by source and local date and
//! written as `DIR/events/source=…/event_date=…/part-0.parquet` with the `events` file
//! schema, as ingest would lay them out, and committed to the `events` Delta table
//! through `culla-table` the way ingest commits ([`commit_partitions`]).

use culla_schemas::arrow::{EventBatchBuilder, Lineage, event_date};
use culla_schemas::parse_event;
use culla_table::{Commit, Committed, DataDir, FileEntry, Snapshot, TABLE_EVENTS, try_commit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;
use std::path::Path;

/// Errors building a fixture.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A line is not a valid event.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// Why.
        message: String,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Writes the events of `ndjson` (one event per line; blank lines skipped) into the data
/// directory `dir`; returns how many events were written.
pub fn write_ndjson(ndjson: &str, dir: &Path) -> Result<usize, FixtureError> {
    write_ndjson_part(ndjson, dir, "part-0")
}

/// Like [`write_ndjson`], naming the files `<part>.parquet` so several chunks can be
/// written into the same directory.
pub fn write_ndjson_part(ndjson: &str, dir: &Path, part: &str) -> Result<usize, FixtureError> {
    let now = chrono::Utc::now();
    let mut groups: BTreeMap<(String, String), EventBatchBuilder> = BTreeMap::new();
    let mut n = 0;
    for (i, line) in ndjson.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ev = parse_event(line.as_bytes(), now).map_err(|e| FixtureError::Invalid {
            line: i + 1,
            message: e.message.clone(),
        })?;
        let key = (
            ev.source.clone(),
            event_date(&ev).format("%Y-%m-%d").to_string(),
        );
        let topic = ev.event_type().topic().as_str();
        groups.entry(key).or_default().append(
            &ev,
            line,
            &Lineage {
                topic,
                partition: 0,
                offset: i as i64,
            },
        );
        n += 1;
    }
    let mut parts = Vec::with_capacity(groups.len());
    for ((source, date), mut b) in groups {
        let batch = b.finish().map_err(|e| FixtureError::Write {
            path: format!("source={source}/event_date={date}"),
            message: e.to_string(),
        })?;
        parts.push((source, date, batch));
    }
    commit_partitions(dir, &parts, part, "fixture")?;
    Ok(n)
}

/// Writes one Parquet file per `(source, event_date, rows)` partition, named
/// `<tag>.parquet`, into the `events` table of the data directory `dir` and commits them
/// as one commit made by `operation`, as ingest does; returns the table's sequence after it.
pub fn commit_partitions(
    dir: &Path,
    parts: &[(String, String, RecordBatch)],
    tag: &str,
    operation: &str,
) -> Result<u64, FixtureError> {
    let data = DataDir::new(dir);
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |e: &dyn std::fmt::Display| FixtureError::Write {
            path: path.clone(),
            message: e.to_string(),
        }
    };
    let terr = err(&data.events_dir());
    culla_table::ensure_tables(&data).map_err(|e| terr(&e))?;
    let mut add = Vec::with_capacity(parts.len());
    let mut events = 0u64;
    for (source, date, batch) in parts {
        let rel = format!("events/source={source}/event_date={date}/{tag}.parquet");
        let path = data.resolve(&rel);
        let werr = err(&path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| werr(&e))?;
        }
        let file = std::fs::File::create(&path).map_err(|e| werr(&e))?;
        let mut w = ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| werr(&e))?;
        w.write(batch).map_err(|e| werr(&e))?;
        w.close().map_err(|e| werr(&e))?;
        let bytes = std::fs::metadata(&path).map_err(|e| werr(&e))?.len();
        events += batch.num_rows() as u64;
        add.push(FileEntry {
            table: TABLE_EVENTS.into(),
            path: rel,
            rows: batch.num_rows() as u64,
            bytes,
        });
    }
    let mut commit = Commit::new(
        operation,
        &format!("culla fixture pid {}", std::process::id()),
    );
    commit.add = add;
    commit.stats = BTreeMap::from([("events".to_string(), events)]);
    let mut snap = Snapshot::load(&data).map_err(|e| terr(&e))?;
    loop {
        match try_commit(&data, &mut snap, &commit).map_err(|e| terr(&e))? {
            Committed::Done => return Ok(snap.seq),
            Committed::Lost => {
                culla_table::catch_up(&data, &mut snap).map_err(|e| terr(&e))?;
            }
        }
    }
}
