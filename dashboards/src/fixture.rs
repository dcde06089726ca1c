//! Writes events straight into a data directory, the way ingest lays them out: for
//! tests, benchmarks and examples that need a data directory without running ingest.
//!
//! Lines are validated with `culla-schemas` (invalid ones are skipped and counted),
//! grouped by `source` and local `event_date`, written as one Parquet file per
//! partition into `_culla/staging/`, committed to the manifest in one commit, then
//! renamed into `events/source=…/event_date=…/`. Calling it again adds another commit,
//! which is how the dashboard test shows data arriving while `culla serve` runs.

use crate::{Error, Result};
use culla_schemas::arrow::{EventBatchBuilder, Lineage, event_date};
use std::collections::BTreeMap;
use std::path::Path;

/// What [`write_events`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// Events written.
    pub events: usize,
    /// Lines skipped as invalid.
    pub invalid: usize,
    /// Parquet files added.
    pub files: usize,
    /// Sequence number of the commit.
    pub seq: u64,
}

/// Validates `lines` (NDJSON events) and commits them to the data directory `data`
/// as new Parquet files; `tag` makes the file names unique per call.
pub fn write_events<'a>(
    data: &Path,
    lines: impl IntoIterator<Item = &'a [u8]>,
    tag: &str,
) -> Result<Written> {
    let now = chrono::Utc::now();
    let mut parts: BTreeMap<(String, String), EventBatchBuilder> = BTreeMap::new();
    let mut w = Written::default();
    for (offset, line) in lines.into_iter().enumerate() {
        let Ok(ev) = culla_schemas::parse_event(line, now) else {
            w.invalid += 1;
            continue;
        };
        let raw = String::from_utf8_lossy(line);
        let topic = ev.event_type().topic().as_str();
        let key = (
            ev.source.clone(),
            event_date(&ev).format("%Y-%m-%d").to_string(),
        );
        parts.entry(key).or_default().append(
            &ev,
            &raw,
            &Lineage {
                topic,
                partition: 0,
                offset: offset as i64,
            },
        );
        w.events += 1;
    }
    let mut batches = Vec::with_capacity(parts.len());
    for ((source, date), mut builder) in parts {
        let batch = builder.finish().map_err(|e| Error::Arrow(e.to_string()))?;
        batches.push((source, date, batch));
    }
    let seq = culla_queries::fixture::commit_partitions(
        data,
        &batches,
        &format!("part-{tag}"),
        "fixture",
    )
    .map_err(|e| Error::NoData(e.to_string()))?;
    w.files = batches.len();
    w.seq = seq;
    Ok(w)
}
/// Text of every `<td>`/`<th>` cell of an HTML document (for tests that check what a
/// published table shows).
pub fn cells(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tag in ["<td", "<th"] {
        let mut rest = html;
        while let Some(i) = rest.find(tag) {
            rest = &rest[i..];
            let Some(gt) = rest.find('>') else { break };
            let Some(end) = rest.find("</t") else { break };
            if end > gt {
                out.push(rest[gt + 1..end].trim().to_string());
            }
            rest = &rest[gt..];
        }
    }
    out
}
