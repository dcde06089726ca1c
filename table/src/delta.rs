//! The Delta log of culla's tables, through `deltalake-core`: creating a table, reading
//! its commits as culla [`Commit`]s, and writing a commit at an exact version.
//!
//! `deltalake-core` is asynchronous and culla's writers and readers are not: every call
//! runs on this module's own small runtime ([`block`]), so it works the same from a plain
//! thread and from inside another Tokio runtime (DataFusion's).

use crate::{Commit, FileEntry, OffsetRange, Result, TableError};
use culla_schemas::arrow::{dead_letters_file_schema, events_table_schema};
use culla_schemas::layout::{DataDir, TABLE_DEAD_LETTERS, TABLE_EVENTS};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake_core::kernel::transaction::{CommitData, TransactionError};
use deltalake_core::kernel::{Action, Add, Remove, StructType, Transaction};
use deltalake_core::logstore::{
    CommitOrBytes, LogStoreRef, StorageConfig, get_actions, logstore_for,
};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::LazyLock;

/// The runtime `deltalake-core`'s futures run on.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("culla-table")
        .enable_all()
        .build()
        .expect("the table layer's runtime starts")
});

/// Runs `f` on the table runtime and waits for it.
fn block<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    RUNTIME.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv()
        .expect("the table runtime finishes what it starts")
}

fn err(table: &str, e: impl std::fmt::Display) -> TableError {
    TableError::Delta {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// The partition columns of a table, in directory order.
fn partition_columns(table: &str) -> &'static [&'static str] {
    if table == TABLE_EVENTS {
        &["source", "event_date"]
    } else {
        &["received_date"]
    }
}

/// The table's schema: the file columns, then the partition columns.
fn table_schema(table: &str) -> Schema {
    if table == TABLE_EVENTS {
        events_table_schema().as_ref().clone()
    } else {
        let mut fields: Vec<Field> = dead_letters_file_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("received_date", DataType::Utf8, false));
        Schema::new(fields)
    }
}

fn log_store(dir: &DataDir, table: &str) -> Result<LogStoreRef> {
    let root = dir.root().join(table);
    let abs = if root.is_absolute() {
        root
    } else {
        std::env::current_dir()
            .map_err(|e| err(table, e))?
            .join(root)
    };
    let url = url::Url::from_directory_path(&abs)
        .map_err(|()| err(table, format!("{} is not a usable path", abs.display())))?;
    logstore_for(&url, StorageConfig::default()).map_err(|e| err(table, e))
}

/// Refuses a data directory of culla's old JSON-manifest layout.
pub fn refuse_old_layout(dir: &DataDir) -> Result<()> {
    if dir.root().join("_culla").join("manifest").is_dir() {
        return Err(TableError::OldLayout(dir.root().display().to_string()));
    }
    Ok(())
}

/// Creates both tables if they do not exist yet (a writer's first step).
pub fn ensure_tables(dir: &DataDir) -> Result<()> {
    refuse_old_layout(dir)?;
    for table in [TABLE_EVENTS, TABLE_DEAD_LETTERS] {
        if latest_seq(dir, table)? > 0 {
            continue;
        }
        let store = log_store(dir, table)?;
        let schema: StructType = (&table_schema(table))
            .try_into_kernel()
            .map_err(|e| err(table, e))?;
        let name = table.to_string();
        let partitions = partition_columns_owned(table);
        let created = block(async move {
            CreateBuilder::new()
                .with_log_store(store)
                .with_table_name(name)
                .with_columns(schema.fields().cloned())
                .with_partition_columns(partitions)
                .with_save_mode(SaveMode::Ignore)
                .await
                .map(|_| ())
        });
        if let Err(e) = created
            && latest_seq(dir, table)? == 0
        {
            return Err(err(table, e));
        }
    }
    Ok(())
}

fn partition_columns_owned(table: &str) -> Vec<String> {
    partition_columns(table)
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The table's version + 1 from the log's listing (0 when there is no table).
pub fn latest_seq(dir: &DataDir, table: &str) -> Result<u64> {
    if !dir.root().join(table).join("_delta_log").is_dir() {
        return Ok(0);
    }
    let store = log_store(dir, table)?;
    let latest = block(async move {
        if !store.is_delta_table_location().await? {
            return Ok(None);
        }
        store.get_latest_version(0).await.map(Some)
    })
    .map_err(|e: deltalake_core::DeltaTableError| err(table, e))?;
    Ok(latest.map_or(0, |v| v + 1))
}

/// The commits of `table` after sequence `from_seq` (versions `from_seq` and on).
pub fn read_commits(dir: &DataDir, table: &str, from_seq: u64) -> Result<Vec<Commit>> {
    if !dir.root().join(table).join("_delta_log").is_dir() {
        return Ok(Vec::new());
    }
    let store = log_store(dir, table)?;
    let entries = block(async move {
        let mut out = Vec::new();
        let mut version = from_seq;
        while let Some(bytes) = store.read_commit_entry(version).await? {
            out.push((version, get_actions(version, &bytes)?));
            version += 1;
        }
        Ok::<_, deltalake_core::DeltaTableError>(out)
    })
    .map_err(|e| err(table, e))?;
    Ok(entries
        .into_iter()
        .map(|(version, actions)| to_commit(table, version, actions))
        .collect())
}

/// The culla view of one Delta commit.
fn to_commit(table: &str, version: u64, actions: Vec<Action>) -> Commit {
    let mut c = Commit {
        table: table.to_string(),
        seq: version + 1,
        committed_at: String::new(),
        operation: String::new(),
        writer: String::new(),
        add: Vec::new(),
        remove: Vec::new(),
        offsets: Vec::new(),
        stats: BTreeMap::new(),
    };
    let mut ranges: Vec<OffsetRange> = Vec::new();
    for a in actions {
        match a {
            Action::Add(add) => {
                let rows = add
                    .stats
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .and_then(|v| v.get("numRecords").and_then(Value::as_u64))
                    .unwrap_or(0);
                c.add.push(FileEntry {
                    table: table.to_string(),
                    path: format!("{table}/{}", decode_path(&add.path)),
                    rows,
                    bytes: add.size.max(0) as u64,
                });
            }
            Action::Remove(r) => c.remove.push(format!("{table}/{}", decode_path(&r.path))),
            Action::Txn(t) => {
                if let Some((origin, topic, partition)) = parse_app_id(&t.app_id) {
                    ranges.push(OffsetRange {
                        origin,
                        topic,
                        partition,
                        first: t.version - 1,
                        last: t.version - 1,
                    });
                }
            }
            Action::CommitInfo(info) => {
                if let Some(ts) = info.timestamp {
                    c.committed_at = chrono::DateTime::from_timestamp_millis(ts)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_default();
                }
                if let Some(Value::Object(culla)) = info.info.get("culla") {
                    let s = |k: &str| culla.get(k).and_then(Value::as_str).unwrap_or("");
                    c.operation = s("operation").to_string();
                    c.writer = s("writer").to_string();
                    if let Some(Value::Object(stats)) = culla.get("stats") {
                        for (k, v) in stats {
                            c.stats.insert(k.clone(), v.as_u64().unwrap_or(0));
                        }
                    }
                    if let Some(Value::Array(rs)) = culla.get("offsets") {
                        for r in rs {
                            let first = r.get("first").and_then(Value::as_i64);
                            let last = r.get("last").and_then(Value::as_i64);
                            let key = r
                                .get("origin")
                                .and_then(Value::as_str)
                                .zip(r.get("topic").and_then(Value::as_str))
                                .zip(r.get("partition").and_then(Value::as_i64));
                            if let (Some(first), Some(last), Some(((o, t), p))) = (first, last, key)
                            {
                                // The first offsets, for people; the transactions decide.
                                if let Some(x) = ranges.iter_mut().find(|x| {
                                    x.origin == o && x.topic == t && i64::from(x.partition) == p
                                }) && x.last == last
                                {
                                    x.first = first;
                                }
                            }
                        }
                    }
                } else if c.operation.is_empty() {
                    c.operation = info.operation.clone().unwrap_or_default();
                }
            }
            _ => {}
        }
    }
    c.offsets = ranges;
    c
}

/// The application id of a stream's transaction.
fn app_id(origin: &str, topic: &str, partition: i32) -> String {
    format!("culla:{origin}:{topic}:{partition}")
}

fn parse_app_id(id: &str) -> Option<(String, String, i32)> {
    let rest = id.strip_prefix("culla:")?;
    let (origin, rest) = rest.split_once(':')?;
    let (topic, partition) = rest.rsplit_once(':')?;
    Some((
        origin.to_string(),
        topic.to_string(),
        partition.parse().ok()?,
    ))
}

/// A Delta path is a URI path: the `%` of culla's percent-encoded partition values is
/// itself encoded.
fn encode_path(rel: &str) -> String {
    rel.replace('%', "%25")
}

fn decode_path(p: &str) -> String {
    let bytes = p.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = p
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The partition values of a file, from its folder names (`key=value`, percent-decoded).
fn partition_values(table: &str, in_table: &str) -> HashMap<String, Option<String>> {
    partition_columns(table)
        .iter()
        .map(|k| {
            let v = culla_schemas::layout::partition_value(in_table, k).map(decode_path);
            (k.to_string(), v)
        })
        .collect()
}

/// Writes `part` (one table's) as version `seq` of `table`; `None` when another writer
/// took that version first.
pub fn try_commit(dir: &DataDir, table: &str, seq: u64, part: &Commit) -> Result<Option<Commit>> {
    let prefix = format!("{table}/");
    let now = chrono::Utc::now().timestamp_millis();
    let data_change = part.operation != "compact";
    let mut actions: Vec<Action> = Vec::new();
    for f in &part.add {
        let in_table = f.path.strip_prefix(&prefix).unwrap_or(&f.path);
        actions.push(Action::Add(Add {
            path: encode_path(in_table),
            partition_values: partition_values(table, in_table),
            size: f.bytes as i64,
            modification_time: now,
            data_change,
            stats: Some(json!({ "numRecords": f.rows }).to_string()),
            ..Default::default()
        }));
    }
    for p in &part.remove {
        let in_table = p.strip_prefix(&prefix).unwrap_or(p);
        actions.push(Action::Remove(Remove {
            path: encode_path(in_table),
            data_change,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(false),
            partition_values: Some(partition_values(table, in_table)),
            size: None,
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        }));
    }
    let txns: Vec<Transaction> = part
        .offsets
        .iter()
        .map(|r| {
            Transaction::new_with_last_update(
                app_id(&r.origin, &r.topic, r.partition),
                r.last + 1,
                Some(now),
            )
        })
        .collect();
    let culla = json!({
        "operation": part.operation,
        "writer": part.writer,
        "stats": part.stats,
        "offsets": part.offsets.iter().map(|r| json!({
            "origin": r.origin, "topic": r.topic, "partition": r.partition,
            "first": r.first, "last": r.last,
        })).collect::<Vec<_>>(),
    });
    let operation = if data_change {
        DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(partition_columns_owned(table)),
            predicate: None,
        }
    } else {
        DeltaOperation::Optimize {
            predicate: None,
            target_size: 0,
        }
    };
    let data = CommitData::new(
        actions,
        operation,
        HashMap::from([("culla".to_string(), culla)]),
        txns,
    );
    let bytes = data.get_bytes().map_err(|e| err(table, e))?;
    let store = log_store(dir, table)?;
    let written = block(async move {
        store
            .write_commit_entry(seq, CommitOrBytes::LogBytes(bytes), uuid::Uuid::new_v4())
            .await
    });
    match written {
        Ok(()) => {}
        Err(TransactionError::VersionAlreadyExists(_)) => return Ok(None),
        Err(e) => return Err(err(table, e)),
    }
    let mut done = to_commit(table, seq, data.actions);
    done.committed_at = part.committed_at.clone();
    Ok(Some(done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_and_paths_round_trip() {
        assert_eq!(
            parse_app_id(&app_id("kafka", "culla.calls", 3)),
            Some(("kafka".into(), "culla.calls".into(), 3))
        );
        assert_eq!(parse_app_id("other:1"), None);
        let p = "source=a%2Fb/event_date=2024-01-01/part-x.parquet";
        assert_eq!(decode_path(&encode_path(p)), p);
        let pv = partition_values(TABLE_EVENTS, p);
        assert_eq!(pv["source"].as_deref(), Some("a/b"));
        assert_eq!(pv["event_date"].as_deref(), Some("2024-01-01"));
    }

    #[test]
    fn both_schemas_convert_to_delta() {
        for t in [TABLE_EVENTS, TABLE_DEAD_LETTERS] {
            let s: std::result::Result<StructType, _> = (&table_schema(t)).try_into_kernel();
            assert!(s.is_ok(), "{t}: {s:?}");
        }
    }
}
