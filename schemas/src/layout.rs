//! The data directory's folders, locks and Parquet settings: where the tables, the
//! embedded log and culla's own files live. The tables' contents (their Delta logs,
//! commits and snapshots) belong to the `culla-table` crate.

use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{
    WriterProperties, WriterPropertiesBuilder, WriterVersion,
};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Errors reading or writing the data directory's files.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file of the data directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Result alias of this module.
pub type Result<T, E = LayoutError> = std::result::Result<T, E>;

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The tables of a data directory.
pub const TABLE_EVENTS: &str = "events";
/// Dead letters.
pub const TABLE_DEAD_LETTERS: &str = "dead_letters";

/// Paths inside one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// A data directory at `root` (not created until written).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `events/`, hive-partitioned by `source` and `event_date`.
    pub fn events_dir(&self) -> PathBuf {
        self.root.join(TABLE_EVENTS)
    }
    /// `dead_letters/`, partitioned by `received_date`.
    pub fn dead_letters_dir(&self) -> PathBuf {
        self.root.join(TABLE_DEAD_LETTERS)
    }
    /// `events/_delta_log/`: the `events` table's Delta log (changes with every commit).
    pub fn events_log_dir(&self) -> PathBuf {
        self.events_dir().join("_delta_log")
    }
    /// `_culla/writers/`: a lock file per live writer process, so recovery can tell a
    /// dead writer's uncommitted files from a live writer's work in progress.
    pub fn writers_dir(&self) -> PathBuf {
        self.root.join("_culla").join("writers")
    }
    /// `log/`: the embedded local event log.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }
    /// Absolute path of a data-directory-relative path.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// The Parquet writer settings every file culla writes starts from: zstd level 1,
/// Parquet 1.0 data pages (the widest reader support: DuckDB, pandas, Excel's and Power
/// BI's Parquet connectors) and `created_by` naming culla and its version. Ingest, the
/// read caches and `culla query --format parquet` add their row groups, statistics and
/// per-column settings on top.
pub fn parquet_writer_properties() -> WriterPropertiesBuilder {
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_created_by(format!("culla {}", env!("CARGO_PKG_VERSION")));
    // Min/max statistics quote values: none for the columns that identify a family
    // or a contact, so a file's footer never names one (an erased family must not
    // survive in the statistics of a file that no longer holds its rows).
    for col in IDENTIFYING_COLUMNS {
        b = b.set_column_statistics_enabled(
            datafusion::parquet::schema::types::ColumnPath::from(*col),
            datafusion::parquet::file::properties::EnabledStatistics::None,
        );
    }
    b
}

/// Columns that identify a family or a contact: never in a file's statistics.
pub const IDENTIFYING_COLUMNS: &[&str] = &["family", "contact_id"];

/// The value of hive partition `key` in a data-directory path, e.g. `2024-03-05` for
/// `event_date` in `events/source=milano-020202/event_date=2024-03-05/part.parquet`.
pub fn partition_value<'p>(path: &'p str, key: &str) -> Option<&'p str> {
    path.split('/').find_map(|seg| {
        seg.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// Takes the data directory's read lock, shared: held by culla's readers while a query
/// lists and reads files, so a compaction never swaps files under them. Released on drop.
pub fn read_lock_shared(dir: &DataDir) -> Result<fs::File> {
    let f = open_lock(dir)?;
    f.lock_shared()
        .map_err(io_err("lock", &dir.root.join("_culla/read.lock")))?;
    Ok(f)
}

/// Takes the read lock exclusively if nobody holds it, without waiting: `Ok(None)` when
/// a reader or a compaction has it. Readers use it to tidy their caches. Released on drop.
pub fn try_read_lock_exclusive(dir: &DataDir) -> Result<Option<fs::File>> {
    let f = open_lock(dir)?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => {
            Err(io_err("lock", &dir.root.join("_culla/read.lock"))(e))
        }
    }
}

/// Takes the read lock exclusively: held by compaction (and recovery) only for the
/// moment it renames new files in and deletes replaced ones. Released on drop.
pub fn read_lock_exclusive(dir: &DataDir) -> Result<fs::File> {
    let f = open_lock(dir)?;
    f.lock()
        .map_err(io_err("lock", &dir.root.join("_culla/read.lock")))?;
    Ok(f)
}

fn open_lock(dir: &DataDir) -> Result<fs::File> {
    let d = dir.root.join("_culla");
    fs::create_dir_all(&d).map_err(io_err("create", &d))?;
    let p = d.join("read.lock");
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io_err("open", &p))
}

/// fsyncs a directory so renames and new entries in it survive a power cut.
pub fn sync_dir(path: &Path) -> Result<()> {
    let d = fs::File::open(path).map_err(io_err("open", path))?;
    d.sync_all().map_err(io_err("sync", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parquet_file_is_zstd_format_1_and_names_culla() {
        use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
        use datafusion::arrow::record_batch::RecordBatch;
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let batch = RecordBatch::try_from_iter([
            (
                "n",
                std::sync::Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
            ),
            (
                "s",
                std::sync::Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef,
            ),
        ])
        .expect("a batch");
        let tmp = tempfile::tempdir().expect("a temp dir");
        let path = tmp.path().join("t.parquet");
        let file = fs::File::create(&path).expect("created");
        let props = parquet_writer_properties().build();
        let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).expect("writer");
        w.write(&batch).expect("written");
        w.close().expect("closed");
        let r =
            SerializedFileReader::new(fs::File::open(&path).expect("opened")).expect("readable");
        let meta = r.metadata();
        assert_eq!(meta.file_metadata().version(), 1);
        assert_eq!(
            meta.file_metadata().created_by(),
            Some(format!("culla {}", env!("CARGO_PKG_VERSION")).as_str())
        );
        for c in meta.row_group(0).columns() {
            assert_eq!(
                c.compression(),
                Compression::ZSTD(ZstdLevel::try_new(1).unwrap())
            );
        }
    }

    #[test]
    fn partition_values_are_read_by_whole_key() {
        let p = "events/source=milano-020202/event_date=2024-03-05/part-1.parquet";
        assert_eq!(partition_value(p, "source"), Some("milano-020202"));
        assert_eq!(partition_value(p, "event_date"), Some("2024-03-05"));
        assert_eq!(partition_value(p, "date"), None);
        assert_eq!(partition_value("events/sources=x/p", "source"), None);
    }
}
