//! A consolidated, read-only copy of the event log, so a question opens one file, not
//! a thousand.
//!
//! Ingest writes one small Parquet file per source and day (and per commit), which is
//! right for exactly-once writing and for DuckDB users browsing partitions, and slow for
//! a reader that must open every one of them for each question: one simulated year is
//! about a thousand files, and opening them costs more than the question itself. So the
//! first reader after a commit copies the table's live event files into a handful,
//! `_culla/cache/events-<seq>/NNN.parquet`, one per event type (the `events` table's
//! columns, partition values included, so a projection that reads one type skips the
//! other files by their statistics), and every later reader of the same table
//! version reads those.
//!
//! Correctness rests on the table's Delta log, never on a directory listing: the copy
//! holds exactly the live files of sequence `seq` (the `events` version + 1); each file's footer records the sequence, its row count and
//! the number of files in the copy, checked on every use. When later commits only added event files (streaming ingest),
//! a reader uses the copy plus those few files read into memory; when a commit removed
//! event files (compaction, recovery), or the additions are many, the copy is rebuilt.
//! Every file of a copy is sealed ([`crate::sealed`]) and checked whole before use; a
//! damaged copy is rebuilt. Anything else unexpected (a read-only directory, a missing
//! table file) makes the reader fall back to the table's files, as without a cache; `CULLA_CACHE=off`
//! does the same on purpose. Stale copies are deleted by [`cleanup`] when no reader
//! holds the data directory's read lock.

use culla_schemas::arrow::events_table_schema;
use culla_schemas::layout::{self, DataDir, TABLE_EVENTS};
use culla_table::{Commit, FileEntry, Snapshot};
use datafusion::arrow::array::{
    Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::kernels::aggregate::max;
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::EnabledStatistics;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Event files added since the copy that are read into memory rather than rebuilding it.
const MAX_DELTA_FILES: usize = 64;
/// Rows per row group of the copy: enough groups for every core on a year or more.
const ROW_GROUP_ROWS: usize = 64 * 1024;
const KEY_SEQ: &str = "culla.cache.seq";
const KEY_ROWS: &str = "culla.cache.rows";
const KEY_MAX_AT: &str = "culla.cache.max_at_us";
const KEY_FILES: &str = "culla.cache.files";

/// Whether readers use the cache: on unless `CULLA_CACHE` is `off`, `0` or `false`.
pub fn enabled() -> bool {
    !matches!(
        std::env::var("CULLA_CACHE").ok().as_deref(),
        Some("off" | "0" | "false" | "no")
    )
}

/// `_culla/cache/`.
pub fn cache_dir(data: &Path) -> PathBuf {
    data.join("_culla").join("cache")
}

/// What a reader reads `events` from.
#[derive(Debug)]
pub struct Prepared {
    /// Manifest sequence the rows are exactly the live event files of.
    pub seq: u64,
    /// The consolidated copy's directory (of a sequence at most `seq`).
    pub copy: PathBuf,
    /// Rows of files committed after the copy was made (empty when it is current).
    pub recent: Vec<RecordBatch>,
    /// Latest event instant (µs since the epoch) over the copy and the recent rows.
    pub max_at_us: Option<i64>,
    /// The sources the live event files hold (their `source=` partitions), sorted.
    pub sources: Vec<String>,
}

/// Finds or builds the consolidated copy for the data directory's current manifest.
///
/// `Ok(None)`: no committed event file (nothing to consolidate: read the partitions).
/// Errors are reasons to fall back to listing; the caller logs them.
pub fn prepare(data: &Path) -> Result<Option<Prepared>, String> {
    let dir = DataDir::new(data);
    // The log is read once: the snapshot, and the commits a reused copy lacks.
    let commits = culla_table::read_commits(&dir, TABLE_EVENTS, 0).map_err(|e| e.to_string())?;
    let snap = Snapshot::from_commits(&commits);
    let live: Vec<&FileEntry> = snap.live_files(TABLE_EVENTS).collect();
    if live.is_empty() {
        return Ok(None);
    }
    let sources: Vec<String> = live
        .iter()
        .filter_map(|f| layout::partition_value(&f.path, "source"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(str::to_string)
        .collect();
    let cdir = cache_dir(data);
    if let Some((base, path)) = newest_copy(&cdir, snap.seq) {
        match reuse(&dir, &snap, &commits, base, &path) {
            Ok(Some(p)) => return Ok(Some(Prepared { sources, ..p })),
            Ok(None) => {}
            Err(e) => tracing::debug!(copy = %path.display(), error = %e, "cache copy not usable"),
        }
    }
    let started = std::time::Instant::now();
    let (copy, max_at_us) = build(&dir, &snap, &live)?;
    tracing::debug!(
        seq = snap.seq,
        files = live.len(),
        ms = started.elapsed().as_millis() as u64,
        "event log consolidated for reading"
    );
    Ok(Some(Prepared {
        seq: snap.seq,
        copy,
        recent: Vec::new(),
        max_at_us,
        sources,
    }))
}

/// The copy with the highest sequence not above `seq`.
fn newest_copy(cdir: &Path, seq: u64) -> Option<(u64, PathBuf)> {
    fs::read_dir(cdir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let s = copy_seq(&name.to_string_lossy())?;
            (s <= seq).then(|| (s, e.path()))
        })
        .max_by_key(|(s, _)| *s)
}

fn copy_seq(name: &str) -> Option<u64> {
    name.strip_prefix("events-")?.parse().ok()
}

/// Uses the copy of sequence `base` if its footer checks out and the commits since
/// only added a few event files; `Ok(None)` when it must be rebuilt.
fn reuse(
    dir: &DataDir,
    snap: &Snapshot,
    commits: &[Commit],
    base: u64,
    path: &Path,
) -> Result<Option<Prepared>, String> {
    let (seq, max_at) = read_copy(path)?;
    if seq != base {
        return Err(format!("footer says sequence {seq}, name says {base}"));
    }
    if base == snap.seq {
        return Ok(Some(Prepared {
            seq: base,
            copy: path.to_path_buf(),
            recent: Vec::new(),
            max_at_us: max_at,
            sources: Vec::new(),
        }));
    }
    let mut added: Vec<FileEntry> = Vec::new();
    for c in commits.iter().filter(|c| c.seq > base && c.seq <= snap.seq) {
        if c.remove.iter().any(|r| r.starts_with(TABLE_EVENTS)) {
            return Ok(None);
        }
        added.extend(c.add.iter().filter(|f| f.table == TABLE_EVENTS).cloned());
    }
    if added.len() > MAX_DELTA_FILES {
        return Ok(None);
    }
    let schema = events_table_schema();
    let mut recent = Vec::new();
    let mut max_at_us = max_at;
    for f in &added {
        for b in read_entry(dir, f, &schema)? {
            max_at_us = max_at_us.max(batch_max_at(&b));
            recent.push(b);
        }
    }
    Ok(Some(Prepared {
        seq: snap.seq,
        copy: path.to_path_buf(),
        recent,
        max_at_us,
        sources: Vec::new(),
    }))
}

/// (sequence, latest event µs) of a copy, after checking every file: whole (its seal,
/// [`crate::sealed::check`]), and in its footer the same sequence, the row count it
/// recorded, and the number of files it was made with.
fn read_copy(dir: &Path) -> Result<(u64, Option<i64>), String> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("list {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let mut seq = None;
    let mut max_at: Option<i64> = None;
    for path in &files {
        crate::sealed::check(path)?;
        let (s, n, m) = read_footer(path)?;
        if n != files.len() {
            return Err(format!("{} files, made with {n}", files.len()));
        }
        if seq.is_some_and(|q| q != s) {
            return Err("files of different sequences".into());
        }
        seq = Some(s);
        max_at = max_at.max(m);
    }
    Ok((seq.ok_or("an empty copy")?, max_at))
}

/// (sequence, files of the copy, latest event µs) recorded in one file's footer.
fn read_footer(path: &Path) -> Result<(u64, usize, Option<i64>), String> {
    let file = fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| e.to_string())?;
    let meta = reader.metadata().file_metadata();
    let kv = |key: &str| {
        meta.key_value_metadata()
            .and_then(|kvs| kvs.iter().find(|k| k.key == key))
            .and_then(|k| k.value.clone())
    };
    let seq = kv(KEY_SEQ)
        .and_then(|v| v.parse().ok())
        .ok_or("no sequence in the footer")?;
    let rows: u64 = kv(KEY_ROWS)
        .and_then(|v| v.parse().ok())
        .ok_or("no row count in the footer")?;
    if rows != meta.num_rows() as u64 {
        return Err(format!(
            "footer says {rows} rows, file has {}",
            meta.num_rows()
        ));
    }
    let files = kv(KEY_FILES)
        .and_then(|v| v.parse().ok())
        .ok_or("no file count in the footer")?;
    let max_at = kv(KEY_MAX_AT).and_then(|v| v.parse().ok());
    Ok((seq, files, max_at))
}

/// Path of a live file.
fn locate(dir: &DataDir, f: &FileEntry) -> Result<PathBuf, String> {
    let placed = dir.resolve(&f.path);
    if placed.exists() {
        return Ok(placed);
    }
    Err(format!("committed file {} is missing", f.path))
}

/// The rows of one live event file with its partition values as columns.
fn read_entry(
    dir: &DataDir,
    f: &FileEntry,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, String> {
    let (source, date) = partition_values(&f.path)?;
    let path = locate(dir, f)?;
    let file = fs::File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut rows = 0u64;
    for b in reader {
        let b = b.map_err(|e| format!("read {}: {e}", path.display()))?;
        let n = b.num_rows();
        rows += n as u64;
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols.push(Arc::new(StringArray::from(vec![source.as_str(); n])));
        cols.push(Arc::new(StringArray::from(vec![date.as_str(); n])));
        out.push(
            RecordBatch::try_new(schema.clone(), cols)
                .map_err(|e| format!("{}: {e}", path.display()))?,
        );
    }
    if rows != f.rows {
        return Err(format!(
            "{} has {rows} rows, the table log says {}",
            f.path, f.rows
        ));
    }
    Ok(out)
}

/// `source` and `event_date` from `events/source=S/event_date=D/file.parquet`.
fn partition_values(rel: &str) -> Result<(String, String), String> {
    match (
        layout::partition_value(rel, "source"),
        layout::partition_value(rel, "event_date"),
    ) {
        (Some(s), Some(d)) => Ok((s.to_string(), d.to_string())),
        _ => Err(format!("{rel} is not under source=…/event_date=…")),
    }
}

fn batch_max_at(b: &RecordBatch) -> Option<i64> {
    b.column_by_name("at")?
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .and_then(max)
}

/// Copies every live event file into `_culla/cache/events-<seq>/`, one file per event
/// type (so a question reading, say, only `family.profiled` rows skips every other
/// file by its statistics): files are read on every core and written by this thread
/// as they arrive; the directory appears under its name only once complete.
fn build(
    dir: &DataDir,
    snap: &Snapshot,
    live: &[&FileEntry],
) -> Result<(PathBuf, Option<i64>), String> {
    let cdir = cache_dir(dir.root());
    fs::create_dir_all(&cdir).map_err(|e| format!("create {}: {e}", cdir.display()))?;
    let dest = cdir.join(format!("events-{:020}", snap.seq));
    let tmp = cdir.join(format!(".tmp-{}-{:020}", std::process::id(), snap.seq));
    let _ = fs::remove_dir_all(&tmp);
    let result = fs::create_dir(&tmp)
        .map_err(|e| format!("create {}: {e}", tmp.display()))
        .and_then(|()| write_copy(dir, snap.seq, live, &tmp));
    let max_at = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if dest.exists() {
        // Made meanwhile by another reader, who may be reading it: kept when whole.
        if let Ok((seq, max_at)) = read_copy(&dest)
            && seq == snap.seq
        {
            let _ = fs::remove_dir_all(&tmp);
            return Ok((dest, max_at));
        }
        let _ = fs::remove_dir_all(&dest);
    }
    fs::rename(&tmp, &dest).map_err(|e| {
        let _ = fs::remove_dir_all(&tmp);
        format!("rename to {}: {e}", dest.display())
    })?;
    Ok((dest, max_at))
}

/// The rows of `b` split by the value of its `type` column.
fn split_by_type(b: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, String> {
    let types = b
        .column_by_name("type")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or("no type column")?;
    let mut by: Vec<(String, Vec<u32>)> = Vec::new();
    for i in 0..types.len() {
        let t = types.value(i);
        match by.iter_mut().find(|(k, _)| k == t) {
            Some((_, rows)) => rows.push(i as u32),
            None => by.push((t.to_string(), vec![i as u32])),
        }
    }
    if by.len() == 1 {
        return Ok(by.into_iter().map(|(t, _)| (t, b.clone())).collect());
    }
    by.into_iter()
        .map(|(t, rows)| {
            let idx = UInt32Array::from(rows);
            let cols = b
                .columns()
                .iter()
                .map(|c| take(c, &idx, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            RecordBatch::try_new(b.schema(), cols)
                .map(|r| (t, r))
                .map_err(|e| e.to_string())
        })
        .collect()
}

type CopyWriter = ArrowWriter<crate::sealed::SealWriter<std::io::BufWriter<fs::File>>>;

/// The name the `i`-th file of a copy is written under until sealed.
fn part_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!(".{i:03}.parquet.part"))
}

fn write_copy(
    dir: &DataDir,
    seq: u64,
    live: &[&FileEntry],
    tmp: &Path,
) -> Result<Option<i64>, String> {
    let schema = events_table_schema();
    let expected: u64 = live.iter().map(|f| f.rows).sum();
    let props = layout::parquet_writer_properties()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    // One writer per event type, in order of first appearance: (type, writer, rows, max at).
    let mut writers: Vec<(String, CopyWriter, u64, Option<i64>)> = Vec::new();
    let mut write = |b: &RecordBatch| -> Result<(), String> {
        for (t, part) in split_by_type(b)? {
            let i = match writers.iter().position(|(k, ..)| *k == t) {
                Some(i) => i,
                None => {
                    let path = part_file(tmp, writers.len());
                    let file = fs::File::create(&path)
                        .map_err(|e| format!("create {}: {e}", path.display()))?;
                    let w = ArrowWriter::try_new(
                        crate::sealed::SealWriter::new(std::io::BufWriter::new(file)),
                        schema.clone(),
                        Some(props.clone()),
                    )
                    .map_err(|e| e.to_string())?;
                    writers.push((t, w, 0, None));
                    writers.len() - 1
                }
            };
            let (_, w, rows, max_at) = &mut writers[i];
            *rows += part.num_rows() as u64;
            *max_at = (*max_at).max(batch_max_at(&part));
            w.write(&part).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(live.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<RecordBatch>, String>>(workers * 4);
    let mut failure: Option<String> = None;
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, schema) = (&next, &schema);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(f) = live.get(i) else { break };
                    let r = read_entry(dir, f, schema);
                    let stop = r.is_err();
                    if tx.send(r).is_err() || stop {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for r in rx {
            if failure.is_some() {
                continue;
            }
            let done = r.and_then(|batches| batches.iter().try_for_each(&mut write));
            if let Err(e) = done {
                failure = Some(e);
                // Stop the readers: nothing more will be written.
                next.store(usize::MAX / 2, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let rows: u64 = writers.iter().map(|(_, _, n, _)| n).sum();
    if rows != expected {
        return Err(format!("read {rows} rows, the table log says {expected}"));
    }
    let files = writers.len();
    let mut latest: Option<i64> = None;
    for (i, (_, mut w, n, max_at)) in writers.into_iter().enumerate() {
        latest = latest.max(max_at);
        for (k, v) in [
            (KEY_SEQ, Some(seq.to_string())),
            (KEY_ROWS, Some(n.to_string())),
            (KEY_FILES, Some(files.to_string())),
            (KEY_MAX_AT, max_at.map(|m| m.to_string())),
        ] {
            if let Some(v) = v {
                w.append_key_value_metadata(KeyValue::new(k.to_string(), v));
            }
        }
        let (buf, hash) = w.into_inner().map_err(|e| e.to_string())?.finish();
        let file = buf
            .into_inner()
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
        crate::sealed::seal(file, &part_file(tmp, i), tmp, &format!("{i:03}"), hash)
            .map_err(|e| format!("write {}: {e}", tmp.display()))?;
    }
    Ok(latest)
}

/// Deletes what no reader needs any more: copies older than the newest one, projection
/// caches of older manifest sequences, and temporary files left by a crash. Call it
/// only while holding the data directory's read lock exclusively.
pub fn cleanup(data: &Path) {
    let cdir = cache_dir(data);
    let Ok(entries) = fs::read_dir(&cdir) else {
        return;
    };
    let seq = culla_table::latest_seq(&DataDir::new(data)).unwrap_or(0);
    let entries: Vec<_> = entries.flatten().collect();
    let newest = entries
        .iter()
        .filter_map(|e| copy_seq(&e.file_name().to_string_lossy()))
        .filter(|s| *s <= seq)
        .max();
    for e in &entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let stale = if let Some(s) = copy_seq(&name) {
            Some(s) != newest
        } else if let Some(s) = crate::cache::projection_seq(&name) {
            s != seq
        } else {
            name.starts_with(".tmp-")
        };
        if stale {
            let p = e.path();
            let removed = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            if let Err(err) = removed {
                tracing::debug!(path = %p.display(), error = %err, "stale cache entry kept");
            }
        }
    }
}
