//! culla's table layer: the data directory's two Delta Lake tables, `events` and
//! `dead_letters`, and the one place that writes and reads their commits.
//!
//! Each table is a Delta table in its own folder (`DIR/events`, `DIR/dead_letters`),
//! so DuckDB's `delta_scan`, Python `deltalake`, Spark and Power BI read exactly the
//! committed files. culla writes its own Parquet files into the table folder (under a
//! name that carries the writer's id, so recovery can tell a dead writer's orphans from
//! a live writer's work) and then commits them as Delta `add` actions through
//! `deltalake-core`'s log store, which creates commit `N` only if nobody else did
//! (put-if-absent): a writer that loses the race re-reads the log and tries again.
//!
//! Exactly once: every ingest commit carries, for each `origin/topic/partition` it
//! consumed, a Delta application transaction (`txn`, app id `culla:<origin>:<topic>:<partition>`,
//! version = the next offset to read), in the same commit as the rows. The two tables are
//! committed separately, dead letters first: so an `events` commit implies that the dead
//! letters of its offsets are stored, and a restart resumes at the `events` transactions
//! while dropping dead letters below the `dead_letters` ones ([`Snapshot::dead_letters_next`]).
//!
//! The in-memory [`Snapshot`] is the replay of both tables' commits: live files, and the
//! next offset per stream. Its `seq` is the `events` table's version + 1 (0 before the
//! table exists); read caches are keyed by it.

mod delta;

pub use culla_schemas::layout::{
    DataDir, LayoutError, TABLE_DEAD_LETTERS, TABLE_EVENTS, parquet_writer_properties,
    partition_value, read_lock_exclusive, read_lock_shared, sync_dir, try_read_lock_exclusive,
};
pub use delta::{ensure_tables, refuse_old_layout};
use std::collections::BTreeMap;

/// Errors of the table layer.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A file of the data directory could not be read or written.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The Delta log could not be read or written.
    #[error("table {table}: {message}")]
    Delta {
        /// `events` or `dead_letters`.
        table: String,
        /// What went wrong.
        message: String,
    },
    /// The directory holds culla's old manifest layout, which is not read any more.
    #[error(
        "{0} was written by an older culla (a `_culla/manifest` folder, not Delta tables); \
         rebuild it from the log into a new directory: `culla ingest --data NEW_DIR …` \
         (for the embedded log, `--log OLD_DIR/log`)"
    )]
    OldLayout(String),
}

/// Result alias of this crate.
pub type Result<T, E = TableError> = std::result::Result<T, E>;

/// One Parquet file a commit adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Table: `events` or `dead_letters`.
    pub table: String,
    /// Path relative to the data directory, `/`-separated, starting with the table's
    /// folder: `events/source=…/event_date=…/part-….parquet`.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// A contiguous, inclusive range of offsets a commit covers for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// One atomic change: to write, the files and offsets of both tables (split by
/// [`try_commit`] into one Delta commit per table); as read back, one table's commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// As read: the table this commit belongs to.
    pub table: String,
    /// As read: the table's version + 1 (so the first commit, the table's creation, is 1).
    pub seq: u64,
    /// When it was committed (RFC 3339, UTC).
    pub committed_at: String,
    /// What made it: `ingest`, `compact`, `replay`.
    pub operation: String,
    /// Who made it (process id and host), for people reading the log.
    pub writer: String,
    /// Files added.
    pub add: Vec<FileEntry>,
    /// Paths removed (relative to the data directory), e.g. the small files a
    /// compaction merged.
    pub remove: Vec<String>,
    /// Offsets consumed into the added files.
    pub offsets: Vec<OffsetRange>,
    /// Counts for people: events, duplicates dropped, dead letters.
    pub stats: BTreeMap<String, u64>,
}

impl Commit {
    /// A new commit to write (its table and sequence are decided by [`try_commit`]).
    pub fn new(operation: &str, writer: &str) -> Commit {
        Commit {
            table: String::new(),
            seq: 0,
            committed_at: now_rfc3339(),
            operation: operation.to_string(),
            writer: writer.to_string(),
            add: Vec::new(),
            remove: Vec::new(),
            offsets: Vec::new(),
            stats: BTreeMap::new(),
        }
    }
}

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Key of one consumed stream: origin, topic, partition.
pub type StreamKey = (String, String, i32);

/// The live state of both tables: the replay of their commits.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `events` version + 1 (0 when the table does not exist).
    pub seq: u64,
    /// `dead_letters` version + 1 (0 when the table does not exist).
    pub dead_letters_seq: u64,
    /// Live files of both tables, by path relative to the data directory.
    pub files: BTreeMap<String, FileEntry>,
    /// Next offset to read per stream, from the `events` table's transactions.
    pub next_offsets: BTreeMap<StreamKey, i64>,
    /// Next offset per stream whose dead letters are stored, from the `dead_letters`
    /// table's transactions.
    pub dead_letters_next: BTreeMap<StreamKey, i64>,
    /// Files removed by some commit (a crash may have left them on disk).
    pub removed: Vec<String>,
}

impl Snapshot {
    /// Replays both tables of `dir`; absent tables are empty. A directory of the old
    /// manifest layout is refused ([`TableError::OldLayout`]).
    pub fn load(dir: &DataDir) -> Result<Snapshot> {
        refuse_old_layout(dir)?;
        let mut snap = Snapshot::default();
        catch_up(dir, &mut snap)?;
        Ok(snap)
    }

    /// The state after `commits` (of either table, each table's in order).
    pub fn from_commits(commits: &[Commit]) -> Snapshot {
        let mut snap = Snapshot::default();
        for c in commits {
            snap.apply(c);
        }
        snap
    }

    /// Applies one commit as read back from its table.
    pub fn apply(&mut self, c: &Commit) {
        let dead = c.table == TABLE_DEAD_LETTERS;
        if dead {
            self.dead_letters_seq = c.seq;
        } else {
            self.seq = c.seq;
        }
        for rel in &c.remove {
            self.files.remove(rel);
            self.removed.push(rel.clone());
        }
        for f in &c.add {
            self.files.insert(f.path.clone(), f.clone());
        }
        let offsets = if dead {
            &mut self.dead_letters_next
        } else {
            &mut self.next_offsets
        };
        for r in &c.offsets {
            let key = (r.origin.clone(), r.topic.clone(), r.partition);
            let next = offsets.entry(key).or_insert(0);
            *next = (*next).max(r.last + 1);
        }
    }

    /// Live files of one table.
    pub fn live_files<'a>(&'a self, table: &'a str) -> impl Iterator<Item = &'a FileEntry> + 'a {
        self.files.values().filter(move |f| f.table == table)
    }

    /// Next offset to read for a stream, if anything of it was ever committed to `events`.
    pub fn next_offset(&self, origin: &str, topic: &str, partition: i32) -> Option<i64> {
        self.next_offsets
            .get(&(origin.to_string(), topic.to_string(), partition))
            .copied()
    }

    /// The offset below which a stream's dead letters are stored already.
    pub fn dead_letters_next(&self, origin: &str, topic: &str, partition: i32) -> Option<i64> {
        self.dead_letters_next
            .get(&(origin.to_string(), topic.to_string(), partition))
            .copied()
    }
}

/// Applies the commits written to either table since `snap` (by any process); returns them.
pub fn catch_up(dir: &DataDir, snap: &mut Snapshot) -> Result<Vec<Commit>> {
    let mut out = Vec::new();
    for table in [TABLE_DEAD_LETTERS, TABLE_EVENTS] {
        let from = if table == TABLE_EVENTS {
            snap.seq
        } else {
            snap.dead_letters_seq
        };
        for c in delta::read_commits(dir, table, from)? {
            snap.apply(&c);
            out.push(c);
        }
    }
    Ok(out)
}

/// Every commit of `table` from sequence `from_seq + 1` on (all of them for 0).
pub fn read_commits(dir: &DataDir, table: &str, from_seq: u64) -> Result<Vec<Commit>> {
    refuse_old_layout(dir)?;
    delta::read_commits(dir, table, from_seq)
}

/// The `events` table's sequence (version + 1; 0 when there is no table), from the
/// log's listing alone.
pub fn latest_seq(dir: &DataDir) -> Result<u64> {
    delta::latest_seq(dir, TABLE_EVENTS)
}

/// A number that grows with every commit to either table (the sum of both tables'
/// sequences; 0 when neither exists): what a cache of answers over both is valid for.
pub fn data_version(dir: &DataDir) -> Result<u64> {
    Ok(delta::latest_seq(dir, TABLE_EVENTS)? + delta::latest_seq(dir, TABLE_DEAD_LETTERS)?)
}

/// What [`try_commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// Every part is durable; the snapshot was advanced.
    Done,
    /// Another writer committed first (to one table or both): catch up, check what
    /// still applies, and try again. A part that did land (the dead letters) is in the
    /// log and comes back with the catch-up.
    Lost,
}

/// Commits `commit` on top of `snap` if no other writer committed since, one Delta
/// commit per table, each with the transactions of its offsets. On [`Committed::Done`]
/// `snap` includes the commit.
///
/// The order makes a commit cut short safe: ingest commits its dead letters first (the
/// events' transactions then imply them), a replay its events first (the dead letters
/// it would remove are found stored when it runs again).
///
/// The files must already be in place in their table folders, written and synced.
pub fn try_commit(dir: &DataDir, snap: &mut Snapshot, commit: &Commit) -> Result<Committed> {
    let order = if commit.operation == "replay" {
        [TABLE_EVENTS, TABLE_DEAD_LETTERS]
    } else {
        [TABLE_DEAD_LETTERS, TABLE_EVENTS]
    };
    for table in order {
        let part = Commit {
            table: table.to_string(),
            add: commit
                .add
                .iter()
                .filter(|f| f.table == table)
                .cloned()
                .collect(),
            remove: commit
                .remove
                .iter()
                .filter(|p| table_of(p) == Some(table))
                .cloned()
                .collect(),
            ..commit.clone()
        };
        // A table takes part when it has files to change; the events table also takes
        // the offsets of a commit that stored nothing (all duplicates), so they move on.
        let offsets_only = table == TABLE_EVENTS && !part.offsets.is_empty();
        if part.add.is_empty() && part.remove.is_empty() && !offsets_only {
            continue;
        }
        let part = Commit {
            offsets: if commit.operation == "compact" {
                Vec::new()
            } else {
                part.offsets
            },
            ..part
        };
        let seq = if table == TABLE_EVENTS {
            snap.seq
        } else {
            snap.dead_letters_seq
        };
        match delta::try_commit(dir, table, seq, &part)? {
            Some(done) => snap.apply(&done),
            None => return Ok(Committed::Lost),
        }
    }
    Ok(Committed::Done)
}

/// The table a data-directory-relative path belongs to.
pub fn table_of(rel: &str) -> Option<&'static str> {
    match rel.split('/').next() {
        Some(TABLE_EVENTS) => Some(TABLE_EVENTS),
        Some(TABLE_DEAD_LETTERS) => Some(TABLE_DEAD_LETTERS),
        _ => None,
    }
}

/// The writer id in a data file's name (`part-<writer>-<uuid>.parquet`), if it has one.
pub fn writer_of(rel: &str) -> Option<&str> {
    let name = rel.rsplit('/').next()?;
    let rest = name.strip_prefix("part-")?;
    let (writer, tail) = rest.split_once('-')?;
    (writer.len() == 32 && tail.ends_with(".parquet")).then_some(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> FileEntry {
        FileEntry {
            table: table_of(path).unwrap().to_string(),
            path: path.to_string(),
            rows: 1,
            bytes: 1,
        }
    }

    fn write_file(dir: &DataDir, rel: &str) {
        let p = dir.resolve(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"PAR1").unwrap();
    }

    #[test]
    fn commits_replay_offsets_move_and_a_stale_writer_loses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        assert_eq!(Snapshot::load(&dir).unwrap().seq, 0);
        ensure_tables(&dir).unwrap();
        let mut a = Snapshot::load(&dir).unwrap();
        let mut b = a.clone();
        assert_eq!((a.seq, a.dead_letters_seq), (1, 1));

        let ev = "events/source=milano-020202/event_date=2024-03-05/part-a.parquet";
        let dl = "dead_letters/received_date=2024-03-05/part-b.parquet";
        write_file(&dir, ev);
        write_file(&dir, dl);
        let mut c = Commit::new("ingest", "test");
        c.add = vec![entry(ev), entry(dl)];
        c.offsets = vec![OffsetRange {
            origin: "log".into(),
            topic: "calls".into(),
            partition: 0,
            first: 0,
            last: 9,
        }];
        assert_eq!(try_commit(&dir, &mut a, &c).unwrap(), Committed::Done);
        assert_eq!(a.next_offset("log", "calls", 0), Some(10));
        assert_eq!(a.dead_letters_next("log", "calls", 0), Some(10));

        // b read the tables before a committed: its commit is refused, not duplicated.
        assert_eq!(try_commit(&dir, &mut b, &c).unwrap(), Committed::Lost);
        catch_up(&dir, &mut b).unwrap();
        assert_eq!(b.files.len(), 2);
        assert_eq!(b.next_offset("log", "calls", 0), Some(10));

        let merged = "events/source=milano-020202/event_date=2024-03-05/part-c.parquet";
        write_file(&dir, merged);
        let mut m = Commit::new("compact", "test");
        m.add = vec![entry(merged)];
        m.remove = vec![ev.to_string()];
        assert_eq!(try_commit(&dir, &mut b, &m).unwrap(), Committed::Done);
        let snap = Snapshot::load(&dir).unwrap();
        let live: Vec<_> = snap
            .live_files(TABLE_EVENTS)
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(live, vec![merged]);
        assert_eq!(snap.seq, 3);
        assert_eq!(snap.next_offset("log", "calls", 0), Some(10));
        assert_eq!(snap.next_offset("kafka", "calls", 0), None);
        assert_eq!(latest_seq(&dir).unwrap(), 3);
        let commits = read_commits(&dir, TABLE_EVENTS, 1).unwrap();
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[1].operation, "compact");
        assert_eq!(commits[1].remove, vec![ev.to_string()]);
    }

    #[test]
    fn an_old_manifest_directory_is_refused_with_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("_culla/manifest")).unwrap();
        let err = Snapshot::load(&DataDir::new(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("older culla") && err.contains("new directory"),
            "{err}"
        );
    }

    #[test]
    fn writer_ids_are_read_from_file_names() {
        let w = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            writer_of(&format!("events/source=x/part-{w}-1234.parquet")),
            Some(w)
        );
        assert_eq!(writer_of("events/source=x/part-1234.parquet"), None);
        assert_eq!(writer_of("events/x.parquet"), None);
    }
}
