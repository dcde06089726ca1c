//! Parquet files of the data directory: how they are written and read.
//!
//! Every file is written straight into its table folder under a name that carries its
//! writer's id (`part-<writer>-<uuid>.parquet`), fsynced with its folder, and only then
//! committed to the table's Delta log (`culla-table`): Delta readers see a file once the
//! commit names it. A writer holds an exclusive lock on `_culla/writers/<writer id>.lock`
//! while it lives, so recovery can tell a dead writer's uncommitted files (deleted) from
//! a live writer's files in progress (left alone). The Parquet settings are chosen for the tools
//! analysts use (DuckDB, pandas, Power BI): plain zstd (level 1, on the bulky columns;
//! in a small freshly ingested file only on those with enough data to pay for it),
//! ~128k-row row groups, statistics on, Parquet 1.0 encodings, `at` as INT64
//! `TIMESTAMP(MICROS, isAdjustedToUTC=true)`. fsync is the slowest step on ordinary
//! disks, so a commit's many files and directories are synced concurrently
//! ([`sync_files`], [`sync_dirs`]).

use crate::error::io_err;
use crate::{Error, Result};
use culla_schemas::layout::{self, DataDir};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Columns whose values are (nearly) all distinct: a dictionary would only be built and
/// thrown away, so they are written plain.
const UNIQUE_COLUMNS: &[&str] = &["event_id", "raw", "raw_text", "contact_id", "offset", "at"];

/// Columns that carry the bulk of a file's bytes; the others (enums, flags, sparse
/// payload fields) are dictionary- and RLE-encoded to a few bytes per page, so zstd is
/// not worth a compression context per column chunk on them.
const COMPRESSED_COLUMNS: &[&str] = &[
    "event_id",
    "contact_id",
    "family",
    "at",
    "at_local",
    "raw",
    "raw_text",
    "offset",
    "need_id",
    "need_ids",
    "referral_id",
    "appointment_id",
    "key",
    "detail",
];

/// Smallest column chunk, in bytes of Arrow data (about its plain-encoded size), that a
/// freshly ingested file compresses. Every compressed column chunk gets its own zstd
/// compressor and decompressor, and creating each runs `cpuid`, which a virtual machine
/// traps: on the reference machine creating them took as much CPU as compressing (12 %
/// of an ingest run's CPU samples against 11 %, docs/bench-ingest-kafka.md, session 10). Ingest's
/// files hold one commit's events of one source and day (hundreds of rows), so only
/// their bulky columns pass this; `culla compact` rewrites them into large files with
/// every bulky column compressed.
pub const MIN_COMPRESSED_CHUNK_BYTES: usize = 16 * 1024;

/// The writer settings of every culla Parquet file.
pub fn writer_properties() -> WriterProperties {
    writer_properties_for(None)
}

/// The writer settings of a file of `schema`: zstd level 1 on the bulky columns, no
/// dictionary on the unique ones, no statistics on the raw JSON.
pub fn writer_properties_for(
    schema: Option<&datafusion::arrow::datatypes::Schema>,
) -> WriterProperties {
    writer_properties_except(schema, |_| false)
}

/// [`writer_properties_for`], but the columns for which `small` is true are stored
/// uncompressed.
fn writer_properties_except(
    schema: Option<&datafusion::arrow::datatypes::Schema>,
    small: impl Fn(usize) -> bool,
) -> WriterProperties {
    let mut b = layout::parquet_writer_properties()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page);
    if let Some(schema) = schema {
        for (i, f) in schema.fields().iter().enumerate() {
            let name = f.name().as_str();
            let path = ColumnPath::from(name);
            if !COMPRESSED_COLUMNS.contains(&name) || small(i) {
                b = b.set_column_compression(path.clone(), Compression::UNCOMPRESSED);
            }
            if UNIQUE_COLUMNS.contains(&name) {
                b = b.set_column_dictionary_enabled(path.clone(), false);
            }
            if matches!(name, "raw" | "raw_text" | "detail")
                || layout::IDENTIFYING_COLUMNS.contains(&name)
            {
                b = b.set_column_statistics_enabled(path, EnabledStatistics::None);
            }
        }
    }
    b.build()
}

/// The writer settings of a file holding just `batches` (all of `schema`): those of
/// [`writer_properties_for`], with the columns under [`MIN_COMPRESSED_CHUNK_BYTES`] of
/// data stored uncompressed.
pub fn writer_properties_for_batches(schema: &Schema, batches: &[RecordBatch]) -> WriterProperties {
    let bytes: Vec<usize> = (0..schema.fields().len())
        .map(|i| {
            batches
                .iter()
                .filter_map(|b| b.columns().get(i))
                .map(|c| c.to_data().get_slice_memory_size().unwrap_or(usize::MAX))
                .sum()
        })
        .collect();
    writer_properties_except(Some(schema), |i| {
        bytes
            .get(i)
            .is_some_and(|&n| n < MIN_COMPRESSED_CHUNK_BYTES)
    })
}

/// Writes `batches` (all of `schema`) as one Parquet file at `path`, fsynced; returns its size.
pub fn write_parquet(path: &Path, schema: SchemaRef, batches: &[RecordBatch]) -> Result<u64> {
    let (file, len) = write_parquet_unsynced(path, schema, batches)?;
    file.sync_all().map_err(io_err("sync", path))?;
    Ok(len)
}

/// Writes `batches` as one Parquet file at `path` without fsyncing it: the caller syncs
/// the returned file (see [`sync_files`]) before anything refers to it.
pub fn write_parquet_unsynced(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .map_err(io_err("create", path))?;
    let perr = |source| Error::Parquet {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let props = writer_properties_for_batches(&schema, batches);
    let mut w = ArrowWriter::try_new(
        std::io::BufWriter::with_capacity(1 << 20, file),
        schema,
        Some(props),
    )
    .map_err(perr)?;
    for b in batches {
        if b.num_rows() > 0 {
            w.write(b).map_err(perr)?;
        }
    }
    let file = w
        .into_inner()
        .map_err(perr)?
        .into_inner()
        .map_err(|e| io_err("write", path)(e.into_error()))?;
    let len = file.metadata().map_err(io_err("stat", path))?.len();
    Ok((file, len))
}

/// Most threads [`sync_files`] and [`sync_dirs`] use: fsync waits on the disk, not the
/// CPU, and a journaling filesystem commits concurrent fsyncs together.
const SYNC_THREADS: usize = 32;

/// fsyncs files on several threads at once; the first error wins.
pub fn sync_files(files: &[(File, PathBuf)]) -> Result<()> {
    parallel(files, |(f, p)| f.sync_all().map_err(io_err("sync", p)))
}

/// fsyncs directories on several threads at once; the first error wins.
pub fn sync_dirs(dirs: &[PathBuf]) -> Result<()> {
    parallel(dirs, |d| layout::sync_dir(d).map_err(Error::from))
}

fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    parallel_map(items, SYNC_THREADS, f)
        .into_iter()
        .flatten()
        .collect()
}

/// Runs `f` on the items on up to `threads` threads, each taking the next item in turn;
/// returns one slot per item, in the order of `items`. A thread stops at its first error,
/// so after an error some slots may be `None` (never run).
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Option<Result<R>>> {
    let threads = threads.min(items.len()).max(1);
    if threads == 1 {
        let mut out: Vec<Option<Result<R>>> = Vec::with_capacity(items.len());
        for item in items {
            let r = f(item);
            let failed = r.is_err();
            out.push(Some(r));
            if failed {
                break;
            }
        }
        out.resize_with(items.len(), || None);
        return out;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<Vec<(usize, Result<R>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let r = f(item);
                        let failed = r.is_err();
                        mine.push((i, r));
                        if failed {
                            break;
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out: Vec<Option<Result<R>>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in done.into_iter().flatten() {
        out[i] = Some(r);
    }
    out
}

/// Opens (creating it if needed) a lock file, without locking it yet.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))
}

/// Takes the data directory's commit lock (`_culla/commit.lock`), exclusively, waiting
/// for it; released on drop.
///
/// Ingest writers hold it from re-reading the manifest to writing their commit, and a
/// Kafka reader holds it while it reads the manifest for a newly assigned partition's
/// start offset: so a new owner reads the manifest either before a previous owner's
/// commit starts or after it is durable, never in between, and a writer that finds the
/// partition's epoch changed (see `EventSource::epoch`) drops its rows instead.
pub fn commit_lock(dir: &DataDir) -> Result<File> {
    let d = dir.root().join("_culla");
    fs::create_dir_all(&d).map_err(io_err("create", &d))?;
    let p = d.join("commit.lock");
    let f = open_lock_file(&p)?;
    f.lock().map_err(io_err("lock", &p))?;
    Ok(f)
}

/// Opens a Parquet file for reading in batches, optionally only some columns (by name).
pub fn open_parquet(
    path: &Path,
    columns: Option<&[&str]>,
) -> Result<datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let perr = |source| Error::Parquet {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(io_err("open", path))?;
    let mut b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(perr)?;
    if let Some(cols) = columns {
        let mask = ProjectionMask::columns(b.parquet_schema(), cols.iter().copied());
        b = b.with_projection(mask);
    }
    b.with_batch_size(8192).build().map_err(perr)
}

/// Reads a whole Parquet file (small files, tests, replay).
pub fn read_parquet(path: &Path, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    let reader = open_parquet(path, columns)?;
    let mut out = Vec::new();
    for b in reader {
        out.push(b?);
    }
    Ok(out)
}

/// This process's right to write uncommitted files into the tables' folders.
pub struct Staging {
    root: PathBuf,
    writer_id: String,
    lock_path: PathBuf,
    _lock: File,
}

impl Staging {
    /// Registers a new writer (takes its lock in `_culla/writers/`).
    pub fn open(data: &DataDir) -> Result<Staging> {
        let dir = data.writers_dir();
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let writer_id = uuid::Uuid::new_v4().simple().to_string();
        let lock_path = dir.join(format!("{writer_id}.lock"));
        let lock = open_lock_file(&lock_path)?;
        lock.lock().map_err(io_err("lock", &lock_path))?;
        Ok(Staging {
            root: data.root().to_path_buf(),
            writer_id,
            lock_path,
            _lock: lock,
        })
    }

    /// A fresh file of this writer in folder `rel_dir` (relative to the data directory,
    /// created if needed): its relative and absolute paths.
    pub fn new_file(&self, rel_dir: &str) -> Result<(String, PathBuf)> {
        let rel = format!(
            "{rel_dir}/part-{}-{}.parquet",
            self.writer_id,
            uuid::Uuid::new_v4().simple()
        );
        let abs = self.root.join(&rel);
        if let Some(parent) = abs.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        Ok((rel, abs))
    }

    /// Absolute path of a data-directory-relative path.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// fsyncs the folders of `rels` (new names survive a power cut).
    pub fn sync(&self, rels: &[&str]) -> Result<()> {
        let dirs: BTreeSet<PathBuf> = rels
            .iter()
            .filter_map(|r| self.root.join(r).parent().map(Path::to_path_buf))
            .collect();
        sync_dirs(&dirs.into_iter().collect::<Vec<_>>())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// Who writes the commits of this process (version, process id, host), for people.
pub fn writer_tag() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!(
        "culla-{} pid {} on {host}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    )
}

/// Deletes files that a commit removed, under the exclusive read lock.
pub fn delete_removed(dir: &DataDir, paths: &[String]) -> Result<usize> {
    let present: Vec<PathBuf> = paths
        .iter()
        .map(|p| dir.resolve(p))
        .filter(|p| p.exists())
        .collect();
    if present.is_empty() {
        return Ok(0);
    }
    let _lock = layout::read_lock_exclusive(dir)?;
    delete_files(&present)
}

/// Deletes `paths` (those already gone are not counted) and syncs their folders;
/// returns how many it deleted.
pub fn delete_files(paths: &[PathBuf]) -> Result<usize> {
    let mut n = 0;
    let mut dirs = BTreeSet::new();
    for p in paths {
        match fs::remove_file(p) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("delete", p)(e)),
        }
        if let Some(parent) = p.parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    for d in dirs {
        layout::sync_dir(&d)?;
    }
    Ok(n)
}

/// Path of a hive partition value: the slug rules of `source` keep these plain, and
/// anything else is percent-encoded so it cannot leave its directory.
pub fn hive_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.starts_with('.') {
        out.replace_range(0..1, "%2E");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use std::sync::Arc;

    /// The codec of each column chunk of the file `rows` rows of `raw` (300 bytes each),
    /// `event_id` (36) and `offset` (8) are written to.
    fn codecs(rows: usize) -> Vec<(String, Compression)> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("raw", DataType::Utf8, false),
            Field::new("event_id", DataType::Utf8, false),
            Field::new("offset", DataType::Int64, false),
        ]));
        let raw: StringArray = (0..rows).map(|i| Some(format!("{i:0>300}"))).collect();
        let ids: StringArray = (0..rows)
            .map(|i| Some(format!("00000000-0000-4000-8000-{i:012x}")))
            .collect();
        let offsets = Int64Array::from_iter_values(0..rows as i64);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(raw), Arc::new(ids), Arc::new(offsets)],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        write_parquet(&path, schema, &[batch]).unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let rg = reader.metadata().row_group(0);
        rg.columns()
            .iter()
            .map(|c| (c.column_path().string(), c.compression()))
            .collect()
    }

    #[test]
    fn small_chunks_are_stored_plain_and_bulky_ones_compressed() {
        let zstd = |c: &Compression| matches!(c, Compression::ZSTD(_));
        // 100 rows: raw holds 30,000 bytes (over the 16 KiB bar), event_id 3,600 plus
        // offsets, offset 800: only raw is worth a compression context.
        let small = codecs(100);
        assert!(zstd(&small[0].1), "{small:?}");
        assert_eq!(small[1].1, Compression::UNCOMPRESSED, "{small:?}");
        assert_eq!(small[2].1, Compression::UNCOMPRESSED, "{small:?}");
        // 5,000 rows: offset holds 40,000 bytes, event_id 180,000: all three compressed,
        // as in the large files `culla compact` writes.
        let large = codecs(5_000);
        assert!(large.iter().all(|(_, c)| zstd(c)), "{large:?}");
    }
}
