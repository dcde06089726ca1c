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
use culla_schemas::layout::{Commit, DataDir, FileEntry, Snapshot, TABLE_EVENTS, try_commit};
use datafusion::parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;
use std::path::Path;

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

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
    let dir = DataDir::new(data);
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
    let staging = dir.staging_dir();
    std::fs::create_dir_all(&staging).map_err(io("create", &staging))?;
    let mut add = Vec::new();
    for ((source, date), mut builder) in parts {
        let batch = builder.finish().map_err(|e| Error::Arrow(e.to_string()))?;
        let staged = format!("fixture-{tag}-{source}-{date}.parquet");
        let staged_path = staging.join(&staged);
        let file = std::fs::File::create(&staged_path).map_err(io("create", &staged_path))?;
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None)
            .map_err(|e| Error::Arrow(e.to_string()))?;
        writer
            .write(&batch)
            .map_err(|e| Error::Arrow(e.to_string()))?;
        writer.close().map_err(|e| Error::Arrow(e.to_string()))?;
        let bytes = std::fs::metadata(&staged_path)
            .map_err(io("stat", &staged_path))?
            .len();
        add.push(FileEntry {
            table: TABLE_EVENTS.into(),
            path: format!("events/source={source}/event_date={date}/part-{tag}.parquet"),
            staged,
            rows: batch.num_rows() as u64,
            bytes,
        });
    }
    let mut seq = Snapshot::load(&dir)
        .map_err(|e| Error::NoData(e.to_string()))?
        .seq
        + 1;
    loop {
        let commit = Commit {
            seq,
            committed_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            operation: "fixture".into(),
            writer: format!("culla-dashboards fixture pid {}", std::process::id()),
            add: add.clone(),
            remove: Vec::new(),
            offsets: Vec::new(),
            stats: BTreeMap::from([("events".to_string(), w.events as u64)]),
        };
        if try_commit(&dir, &commit).map_err(|e| Error::NoData(e.to_string()))? {
            break;
        }
        seq += 1;
    }
    for f in &add {
        let from = staging.join(&f.staged);
        let to = dir.resolve(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        std::fs::rename(&from, &to).map_err(io("rename", &from))?;
    }
    w.files = add.len();
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
