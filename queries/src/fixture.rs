//! Builds small data directories straight from NDJSON events, for tests and benches
//! (no ingest pipeline needed): each line is validated with
//! [`culla_schemas::parse_event`], the events are grouped by source and local date and
//! written as `DIR/events/source=…/event_date=…/part-0.parquet` with the `events` file
//! schema, as ingest would lay them out.

use culla_schemas::arrow::{EventBatchBuilder, Lineage, event_date};
use culla_schemas::parse_event;
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
    for ((source, date), mut b) in groups {
        let pdir = dir
            .join("events")
            .join(format!("source={source}"))
            .join(format!("event_date={date}"));
        let werr = |message: String| FixtureError::Write {
            path: pdir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&pdir).map_err(|e| werr(e.to_string()))?;
        let batch = b.finish().map_err(|e| werr(e.to_string()))?;
        let file = std::fs::File::create(pdir.join(format!("{part}.parquet")))
            .map_err(|e| werr(e.to_string()))?;
        let mut w =
            ArrowWriter::try_new(file, batch.schema(), None).map_err(|e| werr(e.to_string()))?;
        w.write(&batch).map_err(|e| werr(e.to_string()))?;
        w.close().map_err(|e| werr(e.to_string()))?;
    }
    Ok(n)
}
