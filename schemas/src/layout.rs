//! The data directory and its manifest: which Parquet files are live, and which log
//! offsets they hold.
//!
//! The manifest is an append-only sequence of JSON commits in `_culla/manifest/`, one
//! file per commit named by its 20-digit sequence number. A commit is created with
//! create-new semantics (a hard link of a fully written, fsynced temporary file), so two
//! writers can never both take the same number: the loser reloads and retries. The live
//! state ([`Snapshot`]) is the replay of every commit: files added and not removed, and
//! for each consumed `origin/topic/partition` the next offset to read. Offsets and files
//! move in the same commit, which is what makes ingest exactly-once.

use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{
    WriterProperties, WriterPropertiesBuilder, WriterVersion,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Errors reading or writing the manifest.
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
    /// A commit file is not valid JSON of the expected shape.
    #[error("manifest commit {path} is corrupt: {source}")]
    Corrupt {
        /// The commit file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
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

/// The table names the manifest tracks.
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
    /// `_culla/manifest/`.
    pub fn manifest_dir(&self) -> PathBuf {
        self.root.join("_culla").join("manifest")
    }
    /// `_culla/staging/`: files written but not yet committed.
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("_culla").join("staging")
    }
    /// `log/`: the embedded local event log.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }
    /// Absolute path of a manifest-relative path.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// One Parquet file a commit adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Table: `events` or `dead_letters`.
    pub table: String,
    /// Final path, relative to the data directory, `/`-separated.
    pub path: String,
    /// Name of the file in `_culla/staging/` it is renamed from.
    pub staged: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// A contiguous, inclusive range of offsets a commit covers for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    /// `kafka` or `log` (the embedded local log): the same topic name on both is two streams.
    pub origin: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset covered.
    pub first: i64,
    /// Last offset covered (inclusive).
    pub last: i64,
}

/// One atomic change to the data directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commit {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// When it was committed (RFC 3339, UTC).
    pub committed_at: String,
    /// What made it: `ingest`, `compact`, `replay`.
    pub operation: String,
    /// Who made it (process id and host), for people reading the log.
    pub writer: String,
    /// Files added.
    #[serde(default)]
    pub add: Vec<FileEntry>,
    /// Paths removed (relative), e.g. the small files a compaction merged.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Offsets consumed into the added files.
    #[serde(default)]
    pub offsets: Vec<OffsetRange>,
    /// Counts for people: events, duplicates dropped, dead letters.
    #[serde(default)]
    pub stats: BTreeMap<String, u64>,
}

/// Key of one consumed stream: origin, topic, partition.
pub type StreamKey = (String, String, i32);

/// The live state: the replay of every commit.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Sequence of the last commit (0 when there is none).
    pub seq: u64,
    /// Live files by relative path.
    pub files: BTreeMap<String, FileEntry>,
    /// Next offset to read per stream (last committed + 1).
    pub next_offsets: BTreeMap<StreamKey, i64>,
    /// Files removed by some commit (a crash may have left them on disk).
    pub removed: Vec<String>,
}

/// The Parquet writer settings every file culla writes starts from: zstd level 1,
/// Parquet 1.0 data pages (the widest reader support: DuckDB, pandas, Excel's and Power
/// BI's Parquet connectors) and `created_by` naming culla and its version. Ingest, the
/// read caches and `culla query --format parquet` add their row groups, statistics and
/// per-column settings on top.
pub fn parquet_writer_properties() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_created_by(format!("culla {}", env!("CARGO_PKG_VERSION")))
}

/// The value of hive partition `key` in a data-directory path, e.g. `2024-03-05` for
/// `event_date` in `events/source=milano-020202/event_date=2024-03-05/part.parquet`.
pub fn partition_value<'p>(path: &'p str, key: &str) -> Option<&'p str> {
    path.split('/').find_map(|seg| {
        seg.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

impl Snapshot {
    /// Replays the manifest of `dir`; an absent manifest is an empty snapshot.
    pub fn load(dir: &DataDir) -> Result<Snapshot> {
        Ok(Snapshot::from_commits(&read_commits(dir)?))
    }

    /// The state after `commits` (in sequence order), for a caller that has read them.
    pub fn from_commits(commits: &[Commit]) -> Snapshot {
        let mut snap = Snapshot::default();
        for c in commits {
            snap.apply(c);
        }
        snap
    }

    /// Applies one commit.
    pub fn apply(&mut self, c: &Commit) {
        self.seq = c.seq;
        for rel in &c.remove {
            self.files.remove(rel);
            self.removed.push(rel.clone());
        }
        for f in &c.add {
            self.files.insert(f.path.clone(), f.clone());
        }
        for r in &c.offsets {
            let key = (r.origin.clone(), r.topic.clone(), r.partition);
            let next = self.next_offsets.entry(key).or_insert(0);
            *next = (*next).max(r.last + 1);
        }
    }

    /// Live files of one table.
    pub fn live_files<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a FileEntry> + 'a {
        self.files.values().filter(move |f| f.table == table)
    }

    /// Next offset to read for a stream, if anything of it was ever committed.
    pub fn next_offset(&self, origin: &str, topic: &str, partition: i32) -> Option<i64> {
        self.next_offsets
            .get(&(origin.to_string(), topic.to_string(), partition))
            .copied()
    }
}

/// Sequence of the last commit of `dir` (0 when there is none), from the commit files'
/// names alone: no commit is read.
pub fn latest_seq(dir: &DataDir) -> Result<u64> {
    Ok(commit_files(dir)?.last().map_or(0, |(seq, _)| *seq))
}

/// The commit files of `dir` with their sequence numbers, in sequence order.
fn commit_files(dir: &DataDir) -> Result<Vec<(u64, PathBuf)>> {
    let mdir = dir.manifest_dir();
    let entries = match fs::read_dir(&mdir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", &mdir)(e)),
    };
    let mut names: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", &mdir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".json")
            && stem.len() == 20
            && let Ok(seq) = stem.parse::<u64>()
        {
            names.push((seq, entry.path()));
        }
    }
    names.sort();
    Ok(names)
}

/// Every commit of `dir`, in sequence order.
pub fn read_commits(dir: &DataDir) -> Result<Vec<Commit>> {
    let names = commit_files(dir)?;
    let mut commits = Vec::with_capacity(names.len());
    for (_, path) in names {
        let text = fs::read(&path).map_err(io_err("read", &path))?;
        let c: Commit = serde_json::from_slice(&text)
            .map_err(|source| LayoutError::Corrupt { path, source })?;
        commits.push(c);
    }
    Ok(commits)
}

/// Path of commit `seq`.
pub fn commit_path(dir: &DataDir, seq: u64) -> PathBuf {
    dir.manifest_dir().join(format!("{seq:020}.json"))
}

/// Writes `commit` as number `commit.seq` if no other writer took that number first.
///
/// Returns `Ok(false)` when the number is taken: reload the snapshot, check the commit
/// still applies, and retry with the next number. The commit is durable when this
/// returns `Ok(true)` (file and directory fsynced).
pub fn try_commit(dir: &DataDir, commit: &Commit) -> Result<bool> {
    let mdir = dir.manifest_dir();
    fs::create_dir_all(&mdir).map_err(io_err("create", &mdir))?;
    let tmp = mdir.join(format!(".tmp-{}-{}", std::process::id(), commit.seq));
    {
        let mut f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        let body = serde_json::to_vec_pretty(commit).expect("a commit always serialises");
        f.write_all(&body).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
    }
    let dest = commit_path(dir, commit.seq);
    let linked = fs::hard_link(&tmp, &dest);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(&mdir)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err("commit", &dest)(e)),
    }
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

    fn commit(seq: u64, add: &[&str], remove: &[&str], last: i64) -> Commit {
        Commit {
            seq,
            committed_at: "2026-11-23T10:00:00Z".into(),
            operation: "test".into(),
            writer: "test".into(),
            add: add
                .iter()
                .map(|p| FileEntry {
                    table: TABLE_EVENTS.into(),
                    path: p.to_string(),
                    staged: format!("{p}.staged"),
                    rows: 1,
                    bytes: 1,
                })
                .collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
            offsets: vec![OffsetRange {
                origin: "log".into(),
                topic: "calls".into(),
                partition: 0,
                first: 0,
                last,
            }],
            stats: BTreeMap::new(),
        }
    }

    #[test]
    fn commits_replay_and_numbers_are_taken_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert_eq!(Snapshot::load(&dir).unwrap().seq, 0);
        assert!(try_commit(&dir, &commit(1, &["events/a"], &[], 9)).unwrap());
        assert!(!try_commit(&dir, &commit(1, &["events/x"], &[], 99)).unwrap());
        assert!(try_commit(&dir, &commit(2, &["events/b"], &["events/a"], 19)).unwrap());
        let snap = Snapshot::load(&dir).unwrap();
        assert_eq!(snap.seq, 2);
        let live: Vec<_> = snap
            .live_files(TABLE_EVENTS)
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(live, vec!["events/b"]);
        assert_eq!(snap.next_offset("log", "calls", 0), Some(20));
        assert_eq!(snap.next_offset("kafka", "calls", 0), None);
    }
}
