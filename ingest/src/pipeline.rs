//! The exactly-once writer: messages from an [`EventSource`] into committed Parquet.
//!
//! [`run`] first [recovers](crate::recovery) the data directory and indexes the
//! `event_id`s of every live `events` file ([`IdIndex`]: 6 bytes an event). Then three
//! kinds of threads work at once: the calling thread polls the source, parse workers
//! validate each polled batch with `culla_schemas::parse_event`, and one writer thread
//! takes the batches back in poll order, drops duplicates, sends bad messages to dead
//! letters, and accumulates the parsed rows per (`source`, `event_date`). When
//! the pending data reaches `--max-file-mb`, or `--flush-secs` pass, or the source goes
//! idle or is stopped, the writer writes one zstd Parquet file per partition into the
//! table folders (on several threads, fsyncs concurrently) and commits the files *and*
//! the consumed offsets (Delta transactions) through `culla-table`: dead letters first,
//! then events. Reading goes on meanwhile (bounded queues keep memory flat). Restarting
//! at the committed offsets after a crash can therefore neither lose nor duplicate an
//! event. Where the source is paced (the local log by default, Kafka when asked), the
//! reader keeps partitions in step in event time (`Pacer`), so a commit spans a few weeks
//! of events and writes a file per day of them, not per day of the whole backlog.
//!
//! Several writers on one data directory (a Kafka consumer group): a commit succeeds
//! only on top of the latest version of its table, so a writer that lost the race reads
//! the new commits and then
//! - drops pending rows whose `event_id` another writer stored meanwhile (a re-sent
//!   event read by the other process), counting them as duplicates;
//! - drops the rows of partitions read before the source's [`Epoch`] last moved (a
//!   rebalance began: the partition may already belong to another reader, which starts
//!   from the tables' transactions);
//! - shortens pending ranges another writer already committed (fencing), and drops dead
//!   letters the `dead_letters` table already holds;
//!
//! and if anything changed it rewrites its files before trying again. So no offset
//! and no `event_id` is ever committed twice. On one host the check-and-commit step also
//! runs under the directory's commit lock ([`files::commit_lock`]), which a Kafka reader
//! takes to read a newly assigned partition's start offset, so races are rare there.

use crate::error::io_err;
use crate::files::{self, Staging};
use crate::ids::{IdIndex, IdSet, day_number, file_day, id128, read_file_ids};
use crate::privacy;
use crate::recovery;
use crate::source::{Epoch, EventSource, Message, StartOffsets};
use crate::{Error, Result};
use chrono::{DateTime, NaiveDate, Utc};
use culla_schemas::arrow::{
    DeadLetter, EventBatchBuilder, Lineage, dead_letters_batch, dead_letters_file_schema,
    event_date, events_file_schema,
};
use culla_schemas::layout::{self, DataDir, TABLE_DEAD_LETTERS, TABLE_EVENTS};
use culla_schemas::validate::ymd_exact;
use culla_schemas::{Event, Invalid, Reason, parse_event};
use culla_table::{Commit, Committed, FileEntry, OffsetRange, Snapshot};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int32Type, Int64Type};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default `--max-file-mb`: raw JSON pending before a commit. Pending events cost about
/// three times their raw size in memory (plus the queue behind a commit), so 32 MB keeps
/// peak RSS near 300 MB on a million events and under 450 MB on ten million; 64 MB
/// measured 500–550 MB (docs/bench-ingest-kafka.md).
pub const DEFAULT_MAX_FILE_MB: usize = 32;

/// How [`run`] batches and when it stops.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Flush when the pending raw JSON reaches this many bytes (`--max-file-mb`); files
    /// on disk are smaller (zstd), and memory stays a small multiple of it.
    pub max_file_bytes: usize,
    /// Flush at least this often while data arrives (`--flush-secs`).
    pub flush_interval: Duration,
    /// Exit once every assigned partition is read to its end and committed.
    pub until_idle: bool,
    /// Messages asked for per poll.
    pub poll_max: usize,
    /// Validated polls that may wait for the writer (it stops taking them while it
    /// commits): more smooths the fetch over commits, and each costs about `poll_max` ×
    /// 0.8 KB of memory. 4 (8 measured 30–60 MB more at no clear gain in speed).
    pub queue_batches: usize,
    /// Show a progress spinner on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
    /// Read the partitions in step in event time (see `Pacer`): `None` (the default)
    /// does what the source suits ([`EventSource::paces_by_default`]: the local log yes,
    /// Kafka no), `Some(_)` decides for any source that can pause a partition.
    pub pace: Option<bool>,
    /// Set, each time the source is caught up (a poll found nothing) and what was
    /// pending is committed, to the number of commits this run has made plus one (0:
    /// not yet caught up): a streaming ingest warms the read caches when it moves.
    pub caught_up: Option<Arc<AtomicU64>>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_file_bytes: DEFAULT_MAX_FILE_MB * 1024 * 1024,
            flush_interval: Duration::from_secs(10),
            until_idle: false,
            poll_max: 8192,
            queue_batches: 4,
            progress: false,
            pace: None,
            caught_up: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestSummary {
    /// Events committed to `events`.
    pub events: u64,
    /// Messages dropped because their `event_id` was already stored.
    pub duplicates: u64,
    /// Dead letters committed, by reason code.
    pub dead_letters: BTreeMap<String, u64>,
    /// Parquet files committed.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Manifest commits made.
    pub commits: u64,
    /// Messages skipped because their offsets were already committed.
    pub already_committed: u64,
    /// Rows dropped because another writer committed their offsets first (fencing).
    pub fenced: u64,
    /// Fields the contract does not know, dropped from stored events, by name (a name
    /// that is not a plain identifier counts as `(other)`).
    pub dropped_fields: BTreeMap<String, u64>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl IngestSummary {
    /// Total dead letters.
    pub fn dead_letter_total(&self) -> u64 {
        self.dead_letters.values().sum()
    }
}

/// `name n, name n, …`.
fn counts(m: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
    parts.join(", ")
}

impl fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = if self.seconds > 0.0 {
            (self.events + self.duplicates + self.dead_letter_total()) as f64 / self.seconds
        } else {
            0.0
        };
        write!(
            f,
            "{} events written, {} duplicates dropped, {} dead letters",
            self.events,
            self.duplicates,
            self.dead_letter_total()
        )?;
        if !self.dead_letters.is_empty() {
            write!(f, " ({})", counts(&self.dead_letters))?;
        }
        write!(
            f,
            "; {} files, {:.1} MB, {} commits, {:.2} s ({:.0} messages/s)",
            self.files,
            self.bytes as f64 / 1e6,
            self.commits,
            self.seconds,
            rate
        )?;
        if !self.dropped_fields.is_empty() {
            write!(
                f,
                "; fields not in the contract, dropped: {}",
                counts(&self.dropped_fields)
            )?;
        }
        if self.fenced > 0 {
            write!(f, "; {} rows fenced off", self.fenced)?;
        }
        Ok(())
    }
}

/// A [`StartOffsets`] reading the tables of `dir` at each call, so a partition assigned
/// late (a Kafka rebalance) starts at the latest committed offset. It reads under the
/// commit lock ([`files::commit_lock`]): never in the middle of another writer's commit.
pub fn start_offsets(dir: &DataDir) -> StartOffsets {
    let dir = dir.clone();
    let snap = Arc::new(Mutex::new(Snapshot::default()));
    Arc::new(move |origin: &str, topic: &str, partition: i32| {
        let mut s = match snap.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let lock = files::commit_lock(&dir);
        if let Err(e) = &lock {
            tracing::warn!("cannot take the commit lock for start offsets: {e}");
        }
        if let Err(e) = culla_table::catch_up(&dir, &mut s) {
            // Reading from the start is safe: committed offsets are skipped anyway.
            tracing::warn!("cannot read the tables for start offsets: {e}");
        }
        s.next_offset(origin, topic, partition)
    })
}

/// Consumption state of one partition.
struct PartState {
    topic: String,
    partition: i32,
    /// Next offset the `events` table has for it.
    committed_next: Option<i64>,
    /// Offset below which its dead letters are stored (a commit whose dead letters
    /// landed but whose events did not).
    dead_next: Option<i64>,
    /// Offsets consumed but not committed yet.
    pending: Option<(i64, i64)>,
    /// The source epoch the pending offsets were read in.
    epoch: u64,
}

/// A validated event waiting for its commit, with the message it came in.
struct Row {
    ev: Event,
    /// [`id128`] of the `event_id`.
    id: u128,
    /// The message (its key dropped): raw text and lineage.
    msg: Message,
}

/// What a parse worker makes of one message.
pub(crate) struct Parsed {
    ev: Event,
    id: u128,
    date: NaiveDate,
}

/// Rows of one (`source`, `event_date`) file in the making. They are kept as events and
/// turned into Arrow columns only when the file is written, on the encoding threads, in
/// one allocation per column: the single writer thread only deduplicates and sorts.
///
/// Rows are stored in chunks of [`CHUNK_ROWS`]: a group never reallocates (and copies)
/// its rows as it grows, and every chunk is the same size, so the allocator reuses the
/// chunks of one commit for the next instead of keeping blocks of every size.
#[derive(Default)]
struct Group {
    chunks: Vec<Vec<Row>>,
    len: usize,
    raw_bytes: usize,
}

/// Rows per chunk of a [`Group`].
const CHUNK_ROWS: usize = 256;

impl Group {
    fn push(&mut self, row: Row) {
        self.raw_bytes += row.msg.payload.len();
        self.len += 1;
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK_ROWS => c.push(row),
            _ => {
                let mut c = Vec::with_capacity(CHUNK_ROWS);
                c.push(row);
                self.chunks.push(c);
            }
        }
    }

    fn rows(&self) -> impl Iterator<Item = &Row> {
        self.chunks.iter().flatten()
    }

    /// Keeps the rows `keep` accepts.
    fn retain(&mut self, mut keep: impl FnMut(&Row) -> bool) {
        for c in &mut self.chunks {
            c.retain(|r| {
                let k = keep(r);
                if !k {
                    self.len -= 1;
                    self.raw_bytes -= r.msg.payload.len();
                }
                k
            });
        }
        self.chunks.retain(|c| !c.is_empty());
    }

    /// The `events` batch of these rows.
    fn batch(&self) -> Result<RecordBatch> {
        let mut b = EventBatchBuilder::with_capacity(self.len);
        for r in self.rows() {
            let raw = std::str::from_utf8(&r.msg.payload).unwrap_or_default();
            b.append(
                &r.ev,
                raw,
                &Lineage {
                    topic: &r.msg.topic,
                    partition: r.msg.partition,
                    offset: r.msg.offset,
                },
            );
        }
        Ok(b.finish()?)
    }
}

/// Everything accepted since the last commit.
#[derive(Default)]
pub(crate) struct Pending {
    groups: HashMap<String, HashMap<NaiveDate, Group>>,
    dead: Vec<DeadLetter>,
    raw_bytes: usize,
    duplicates: u64,
    since: Option<Instant>,
}

/// A row of a pending batch, as the drop predicates see it.
struct RowRef<'r> {
    topic: &'r str,
    partition: i32,
    offset: i64,
    id: u128,
}

/// Prefix of the commit statistics counting dropped unknown fields by name.
pub const DROPPED_FIELD: &str = "dropped_field:";

impl Pending {
    /// How many of the pending events carried each unknown (dropped) field.
    fn dropped_fields(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for dates in self.groups.values() {
            for g in dates.values() {
                for r in g.rows() {
                    for name in &r.ev.dropped {
                        *out.entry(name.clone()).or_default() += 1;
                    }
                }
            }
        }
        out
    }

    fn group(&mut self, source: &str, date: NaiveDate) -> &mut Group {
        if !self.groups.contains_key(source) {
            self.groups.insert(source.to_string(), HashMap::new());
        }
        self.groups
            .get_mut(source)
            .map(|m| m.entry(date).or_default())
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.dead.is_empty() && self.duplicates == 0
    }

    /// Drops the pending rows `row` selects and the dead letters `dead` selects; returns
    /// the dropped rows' ids and how many dead letters went.
    fn drop_where(
        &mut self,
        mut row: impl FnMut(&RowRef<'_>) -> bool,
        mut dead: impl FnMut(&DeadLetter) -> bool,
    ) -> (Vec<u128>, usize) {
        let mut ids = Vec::new();
        for dates in self.groups.values_mut() {
            for g in dates.values_mut() {
                g.retain(|r| {
                    let drop = row(&RowRef {
                        topic: &r.msg.topic,
                        partition: r.msg.partition,
                        offset: r.msg.offset,
                        id: r.id,
                    });
                    if drop {
                        ids.push(r.id);
                    }
                    !drop
                });
            }
            dates.retain(|_, g| g.len > 0);
        }
        self.groups.retain(|_, d| !d.is_empty());
        let before = self.dead.len();
        self.dead.retain(|d| !dead(d));
        (ids, before - self.dead.len())
    }

    /// Drops pending rows read from `topic`/`partition` at offsets below `below`.
    fn drop_rows(&mut self, topic: &str, partition: i32, below: i64) -> (Vec<u128>, usize) {
        self.drop_where(
            |r| r.partition == partition && r.offset < below && r.topic == topic,
            |d| d.partition == partition && d.offset < below && d.topic == topic,
        )
    }
}

/// Builds the dead letter of a message that failed validation, masking personal data.
pub fn dead_letter(m: Message, inv: &Invalid, received: DateTime<Utc>) -> DeadLetter {
    // A message too large keeps only its first KiB.
    let mut payload = m.payload;
    let cut = inv.reason == Reason::TooLarge && payload.len() > 1024;
    if cut {
        payload.truncate(1024);
    }
    // Free text first, while the message is still JSON (masking digits breaks numbers).
    let (payload, text_masked) = match privacy::mask_free_text(&payload) {
        Some(masked) => (masked, true),
        None => (payload, cut),
    };
    let (raw, mut redacted) = if inv.reason == Reason::PersonalData {
        let masked = privacy::mask(&payload).unwrap_or(payload);
        (privacy::mask_all_digits(&masked), true)
    } else {
        match privacy::mask(&payload) {
            Some(masked) => (masked, true),
            None => (payload, text_masked),
        }
    };
    let key = m.key.map(|k| match privacy::mask(&k) {
        Some(masked) => {
            redacted = true;
            masked
        }
        None => k,
    });
    let clean = |s: String| match privacy::mask(s.as_bytes()) {
        Some(v) => String::from_utf8_lossy(&v).into_owned(),
        None => s,
    };
    DeadLetter {
        topic: m.topic,
        partition: m.partition,
        offset: m.offset,
        key,
        raw,
        reason: inv.reason.as_str().to_string(),
        field: inv.field.clone().map(clean),
        detail: privacy::mask_quoted_free_text(&clean(inv.message.clone())),
        received_at_us: received.timestamp_micros(),
        redacted,
    }
}

/// Validates a batch of messages (one parse worker's share), with each event's id
/// and partition date worked out here, off the single writer thread.
fn parse_batch(msgs: &[Message], now: DateTime<Utc>) -> Vec<Result<Parsed, Invalid>> {
    msgs.iter()
        .map(|m| {
            parse_event(&m.payload, now).map(|ev| Parsed {
                id: id128(&ev.event_id),
                date: event_date(&ev),
                ev,
            })
        })
        .collect()
}

/// The state of one writer over a data directory.
pub(crate) struct Writer<'a> {
    dir: &'a DataDir,
    origin: String,
    staging: Staging,
    snap: Snapshot,
    ids: IdIndex,
    parts: Vec<PartState>,
    pending: Pending,
    tag: String,
    /// The source's rebalance counter, if its partitions can be taken away.
    epoch: Option<Epoch>,
    /// Counts of what was committed.
    pub summary: IngestSummary,
}

impl<'a> Writer<'a> {
    /// Recovers `dir`, loads its snapshot and stored ids.
    pub(crate) fn open(dir: &'a DataDir, origin: &str) -> Result<Writer<'a>> {
        culla_table::ensure_tables(dir)?;
        let staging = Staging::open(dir)?;
        let (mut snap, rep) = recovery::recover(dir)?;
        if !rep.is_clean() {
            tracing::info!(?rep, "recovered the data directory");
        }
        let ids = {
            // A compaction may have swapped files since the recovery: bring the snapshot
            // up to date and read its files' ids under the shared read lock, which
            // compactions wait for.
            let _lock = layout::read_lock_shared(dir)?;
            culla_table::catch_up(dir, &mut snap)?;
            IdIndex::load(dir, &snap)?
        };
        tracing::debug!(
            ids = ids.stored_len(),
            index_bytes = ids.heap_bytes(),
            seq = snap.seq,
            "loaded the stored event ids"
        );
        Ok(Writer {
            dir,
            origin: origin.to_string(),
            staging,
            snap,
            ids,
            parts: Vec::new(),
            pending: Pending::default(),
            tag: files::writer_tag(),
            epoch: None,
            summary: IngestSummary::default(),
        })
    }

    fn part_index(&mut self, topic: &str, partition: i32) -> usize {
        if let Some(i) = self
            .parts
            .iter()
            .position(|p| p.partition == partition && p.topic == topic)
        {
            return i;
        }
        let committed_next = self.snap.next_offset(&self.origin, topic, partition);
        let dead_next = self.snap.dead_letters_next(&self.origin, topic, partition);
        self.parts.push(PartState {
            topic: topic.to_string(),
            partition,
            committed_next,
            dead_next,
            pending: None,
            epoch: 0,
        });
        self.parts.len() - 1
    }

    /// Whether nothing waits to be committed.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.parts.iter().all(|p| p.pending.is_none())
    }

    /// Accumulates a poll's messages and their validation results (same order), read
    /// in source epoch `epoch`.
    fn process(
        &mut self,
        msgs: Vec<Message>,
        parsed: Vec<Result<Parsed, Invalid>>,
        epoch: u64,
    ) -> Result<()> {
        let now = Utc::now();
        if self.pending.since.is_none() && !msgs.is_empty() {
            self.pending.since = Some(Instant::now());
        }
        let mut last: Option<usize> = None;
        for (mut m, r) in msgs.into_iter().zip(parsed) {
            let i = match last {
                Some(i)
                    if self.parts[i].partition == m.partition && self.parts[i].topic == m.topic =>
                {
                    i
                }
                _ => self.part_index(&m.topic, m.partition),
            };
            last = Some(i);
            let ps = &mut self.parts[i];
            if ps.committed_next.is_some_and(|n| m.offset < n) {
                self.summary.already_committed += 1;
                continue;
            }
            match &mut ps.pending {
                Some((_, l)) if m.offset <= *l => continue, // delivered again
                Some((_, l)) => *l = m.offset,
                None => {
                    ps.pending = Some((m.offset, m.offset));
                    ps.epoch = epoch;
                }
            }
            self.pending.raw_bytes += m.payload.len();
            match r {
                Ok(Parsed { ev, id, date }) => {
                    if !self.ids.insert_pending(self.dir, id)? {
                        self.pending.duplicates += 1;
                        continue;
                    }
                    m.key = None;
                    self.pending
                        .group(&ev.source, date)
                        .push(Row { ev, id, msg: m });
                }
                Err(_) if ps.dead_next.is_some_and(|n| m.offset < n) => {
                    // Its dead letter is stored already (a commit cut short after
                    // its dead letters landed).
                    continue;
                }
                Err(inv) => {
                    tracing::debug!(topic = %m.topic, partition = m.partition, offset = m.offset, reason = %inv.reason, "dead letter");
                    self.pending.dead.push(dead_letter(m, &inv, now));
                }
            }
        }
        Ok(())
    }

    /// Forgets pending data of a partition taken away by a rebalance.
    pub(crate) fn revoke(&mut self, topic: &str, partition: i32) -> Result<()> {
        let Some(i) = self
            .parts
            .iter()
            .position(|p| p.partition == partition && p.topic == topic)
        else {
            return Ok(());
        };
        let ps = self.parts.remove(i);
        if ps.pending.is_some() {
            let (ids, dead) = self.pending.drop_rows(topic, partition, i64::MAX);
            for id in &ids {
                self.ids.remove_pending(id);
            }
            tracing::info!(
                topic,
                partition,
                rows = ids.len() + dead,
                "partition revoked; its uncommitted rows are left to the new owner"
            );
        }
        Ok(())
    }

    /// Whether the pending data should be committed now.
    pub(crate) fn due(&self, opts: &IngestOptions) -> bool {
        self.pending.raw_bytes >= opts.max_file_bytes
            || self
                .pending
                .since
                .is_some_and(|s| s.elapsed() >= opts.flush_interval)
    }

    /// Applies commits of other processes: their offsets fence ours, their events join
    /// the ids, and pending rows whose `event_id` another writer stored meanwhile are
    /// dropped as duplicates. Returns true if pending rows were dropped.
    fn absorb(&mut self) -> Result<bool> {
        let new = culla_table::catch_up(self.dir, &mut self.snap)?;
        let mut taken: IdSet = IdSet::default();
        let dir = self.dir;
        for c in &new {
            if c.operation == "compact" || c.table != TABLE_EVENTS {
                continue; // compaction rewrites stored rows: no new ids
            }
            for f in c.add.iter().filter(|f| f.table == TABLE_EVENTS) {
                let day = file_day(f);
                let ids = &mut self.ids;
                read_file_ids(dir, f, |id| {
                    if ids.is_pending(&id) {
                        taken.insert(id);
                    }
                    ids.insert_stored(id, day);
                })?;
            }
        }
        if !new.is_empty() {
            for ps in &mut self.parts {
                ps.committed_next = self.snap.next_offset(&self.origin, &ps.topic, ps.partition);
                ps.dead_next = self
                    .snap
                    .dead_letters_next(&self.origin, &ps.topic, ps.partition);
            }
        }
        if taken.is_empty() {
            return Ok(false);
        }
        let (ids, _) = self
            .pending
            .drop_where(|r| taken.contains(&r.id), |_| false);
        if ids.is_empty() {
            return Ok(false); // the known ids were our own stored events, none pending
        }
        // Stored by the other writer: their ids are known as stored now.
        for id in &ids {
            self.ids.remove_pending(id);
        }
        self.pending.duplicates += ids.len() as u64;
        tracing::info!(
            dropped = ids.len(),
            "another writer stored some pending events first; dropping our copies"
        );
        Ok(true)
    }

    /// Drops the pending rows of partitions read in an earlier source epoch (a rebalance
    /// started since: the partition may already belong to another reader, which starts
    /// from the tables). True if any were dropped.
    fn drop_stale(&mut self) -> Result<bool> {
        let Some(now) = self.epoch.as_ref().map(|e| e.load(Ordering::SeqCst)) else {
            return Ok(false);
        };
        let stale: Vec<(String, i32)> = self
            .parts
            .iter()
            .filter(|p| p.pending.is_some() && p.epoch != now)
            .map(|p| (p.topic.clone(), p.partition))
            .collect();
        for (topic, partition) in &stale {
            tracing::info!(
                topic,
                partition,
                "a rebalance began before these rows were committed; leaving them to the partition's owner"
            );
            self.revoke(topic, *partition)?;
        }
        Ok(!stale.is_empty())
    }

    /// Shortens or drops pending ranges another writer already committed; true if any
    /// changed. (A pending range may start after the table's end: Kafka offsets have
    /// gaps, e.g. transaction markers, so that is logged, not refused.)
    fn fence(&mut self) -> Result<bool> {
        let mut changed = false;
        for ps in &self.parts {
            let Some(n) = ps.dead_next else { continue };
            let (_, dead) = self.pending.drop_where(
                |_| false,
                |d| d.partition == ps.partition && d.offset < n && d.topic == ps.topic,
            );
            if dead > 0 {
                tracing::info!(
                    topic = %ps.topic,
                    partition = ps.partition,
                    dropped = dead,
                    "these dead letters are stored already; dropping our copy"
                );
                changed = true;
            }
        }
        for i in 0..self.parts.len() {
            let (Some(n), Some((first, last))) =
                (self.parts[i].committed_next, self.parts[i].pending)
            else {
                continue;
            };
            if n <= first {
                if n < first {
                    tracing::debug!(
                        topic = %self.parts[i].topic,
                        partition = self.parts[i].partition,
                        first,
                        committed_next = n,
                        "offsets between the table's end and the pending range were never delivered"
                    );
                }
                continue;
            }
            let topic = self.parts[i].topic.clone();
            let partition = self.parts[i].partition;
            let (ids, dead) = self.pending.drop_rows(&topic, partition, n);
            // The other writer stored those events: their ids stay known.
            self.summary.fenced += (ids.len() + dead) as u64;
            tracing::warn!(
                topic,
                partition,
                first,
                last,
                committed_next = n,
                dropped = ids.len() + dead,
                "another writer committed these offsets first; dropping our copy"
            );
            self.parts[i].pending = if n > last { None } else { Some((n, last)) };
            changed = true;
        }
        Ok(changed)
    }

    /// Writes the pending rows into the table folders (uncommitted); returns the file entries.
    fn stage(&mut self) -> Result<Vec<FileEntry>> {
        let mut jobs: Vec<(&str, NaiveDate, &Group)> = Vec::new();
        for (source, dates) in &self.pending.groups {
            for (date, g) in dates {
                if g.len > 0 {
                    jobs.push((source, *date, g));
                }
            }
        }
        jobs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut out = stage_event_files(&self.staging, &jobs)?;
        let mut by_day: BTreeMap<NaiveDate, Vec<DeadLetter>> = BTreeMap::new();
        for d in &self.pending.dead {
            let day = DateTime::<Utc>::from_timestamp_micros(d.received_at_us)
                .map_or_else(|| Utc::now().date_naive(), |t| t.date_naive());
            by_day.entry(day).or_default().push(d.clone());
        }
        for (day, rows) in by_day {
            out.push(stage_dead_letters(
                &self.staging,
                &dead_letters_dir(day),
                &rows,
            )?);
        }
        let rels: Vec<&str> = out.iter().map(|f| f.path.as_str()).collect();
        self.staging.sync(&rels)?;
        Ok(out)
    }

    /// Deletes written files that no commit took (a part that did land stays).
    fn discard(&self, staged: &[FileEntry]) {
        for f in staged {
            if !self.snap.files.contains_key(&f.path) {
                let _ = std::fs::remove_file(self.staging.path(&f.path));
            }
        }
    }

    /// Commits everything pending (files and offsets together); a no-op when idle.
    /// Returns the partitions' new next offsets (for the broker's hint).
    pub(crate) fn commit(&mut self) -> Result<Vec<(String, i32, i64)>> {
        if self.is_idle() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let mut staging_ms = 0.0;
        let mut staged: Option<Vec<FileEntry>> = None;
        let commit = loop {
            // The files are written outside the lock; the checks and the commit inside.
            if staged.is_none() {
                let t = Instant::now();
                staged = Some(self.stage()?);
                staging_ms += t.elapsed().as_secs_f64() * 1e3;
            }
            let _lock = files::commit_lock(self.dir)?;
            let absorbed = self.absorb()?;
            let stale = self.drop_stale()?;
            let fenced = self.fence()?;
            if absorbed || stale || fenced {
                if let Some(old) = staged.take() {
                    self.discard(&old);
                }
                continue;
            }
            let add = staged.clone().unwrap_or_default();
            let offsets: Vec<OffsetRange> = self
                .parts
                .iter()
                .filter_map(|p| {
                    p.pending.map(|(first, last)| OffsetRange {
                        origin: self.origin.clone(),
                        topic: p.topic.clone(),
                        partition: p.partition,
                        first,
                        last,
                    })
                })
                .collect();
            if add.is_empty() && offsets.is_empty() {
                self.reset_pending();
                return Ok(Vec::new());
            }
            let mut stats = BTreeMap::new();
            let ev_rows: u64 = add
                .iter()
                .filter(|f| f.table == TABLE_EVENTS)
                .map(|f| f.rows)
                .sum();
            stats.insert("events".to_string(), ev_rows);
            stats.insert("duplicates".to_string(), self.pending.duplicates);
            stats.insert("dead_letters".to_string(), self.pending.dead.len() as u64);
            for (name, n) in self.pending.dropped_fields() {
                stats.insert(format!("{DROPPED_FIELD}{name}"), n);
            }
            let mut c = Commit::new("ingest", &self.tag);
            c.add = add;
            c.offsets = offsets;
            c.stats = stats;
            match culla_table::try_commit(self.dir, &mut self.snap, &c)? {
                Committed::Done => break c,
                Committed::Lost => tracing::debug!(
                    seq = self.snap.seq,
                    "another writer committed first; catching up and retrying"
                ),
            }
        };
        // Committed: the rows' ids are stored now, even if a rename below fails.
        for dates in self.pending.groups.values() {
            for (date, g) in dates {
                let day = day_number(*date);
                for r in g.rows() {
                    self.ids.insert_stored(r.id, day);
                }
            }
        }
        let s = &mut self.summary;
        s.commits += 1;
        s.duplicates += self.pending.duplicates;
        for f in &commit.add {
            s.files += 1;
            s.bytes += f.bytes;
            if f.table == TABLE_EVENTS {
                s.events += f.rows;
            }
        }
        for d in &self.pending.dead {
            *s.dead_letters.entry(d.reason.clone()).or_default() += 1;
        }
        let dropped: Vec<(String, u64)> = commit
            .stats
            .iter()
            .filter_map(|(k, n)| Some((k.strip_prefix(DROPPED_FIELD)?.to_string(), *n)))
            .collect();
        if !dropped.is_empty() {
            tracing::warn!(
                fields = ?dropped,
                "fields not in the event contract were dropped (not stored); fix the producer"
            );
        }
        for (name, n) in dropped {
            *s.dropped_fields.entry(name).or_default() += n;
        }
        let mut hints = Vec::new();
        for p in &mut self.parts {
            if let Some((_, last)) = p.pending.take() {
                p.committed_next = Some(last + 1);
                hints.push((p.topic.clone(), p.partition, last + 1));
            }
        }
        self.reset_pending();
        tracing::debug!(
            seq = self.snap.seq,
            files = commit.add.len(),
            staging_ms,
            commit_ms = started.elapsed().as_secs_f64() * 1e3,
            stored_ids = self.ids.stored_len(),
            id_index_mb = self.ids.heap_bytes() as f64 / 1e6,
            rss_mb = crate::memory::resident_mb(),
            "committed"
        );
        Ok(hints)
    }

    fn reset_pending(&mut self) {
        let old = std::mem::take(&mut self.pending);
        // Freeing a commit's worth of events (hundreds of thousands of small strings
        // allocated by the parse workers) took a quarter of the writer thread's time:
        // it happens on a short-lived thread instead, while the writer goes on.
        if !old.is_empty() {
            let spawned = std::thread::Builder::new()
                .name("culla-free".into())
                .spawn(move || drop(old));
            if let Err(e) = spawned {
                tracing::debug!("freeing on the writer thread: {e}");
            }
        }
        self.ids.clear_pending();
        for p in &mut self.parts {
            p.pending = None;
        }
    }

    /// Applies commits made by other processes since the last look.
    pub(crate) fn refresh(&mut self) -> Result<()> {
        self.absorb().map(|_| ())
    }

    /// The table state this writer knows.
    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// Accepts `id` as pending unless it is stored or pending already (replay); true if
    /// it is new.
    pub(crate) fn accept_id(&mut self, id: u128) -> Result<bool> {
        self.ids.insert_pending(self.dir, id)
    }

    /// Forgets a pending id accepted by [`Self::accept_id`] (a replay attempt given up).
    pub(crate) fn forget_id(&mut self, id: &u128) {
        self.ids.remove_pending(id);
    }

    /// Appends an already validated event (replay) to the pending rows.
    pub(crate) fn push_event(&mut self, ev: &Event, raw: &str, from: &Lineage<'_>) {
        self.pending.raw_bytes += raw.len();
        self.pending.group(&ev.source, event_date(ev)).push(Row {
            ev: ev.clone(),
            id: id128(&ev.event_id),
            msg: Message {
                topic: from.topic.to_string(),
                partition: from.partition,
                offset: from.offset,
                key: None,
                payload: raw.as_bytes().to_vec(),
            },
        });
    }

    /// Writes the pending events (no offsets), uncommitted, for replay.
    pub(crate) fn stage_events(&mut self) -> Result<Vec<FileEntry>> {
        let dead = std::mem::take(&mut self.pending.dead);
        let out = self.stage();
        self.pending.dead = dead;
        out
    }

    /// Clears pending rows after a replay attempt.
    pub(crate) fn clear(&mut self) {
        self.reset_pending();
    }

    /// This writer's right to write files.
    pub(crate) fn staging(&self) -> &Staging {
        &self.staging
    }

    /// The writer tag.
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }
}

/// The folder of the dead letters received on `day`.
pub(crate) fn dead_letters_dir(day: NaiveDate) -> String {
    format!(
        "{TABLE_DEAD_LETTERS}/received_date={}",
        day.format("%Y-%m-%d")
    )
}

/// Writes one dead-letter file into folder `rel_dir` of the `dead_letters` table.
pub(crate) fn stage_dead_letters(
    staging: &Staging,
    rel_dir: &str,
    rows: &[DeadLetter],
) -> Result<FileEntry> {
    let batch = dead_letters_batch(rows)?;
    let (path, abs) = staging.new_file(rel_dir)?;
    let bytes = files::write_parquet(&abs, dead_letters_file_schema(), &[batch])?;
    Ok(FileEntry {
        table: TABLE_DEAD_LETTERS.into(),
        path,
        rows: rows.len() as u64,
        bytes,
    })
}

/// Writes one `events` file per (source, date) into staging, on up to
/// [`parse_threads`] threads; returns the entries in the order of `jobs`.
fn stage_event_files(
    staging: &Staging,
    jobs: &[(&str, NaiveDate, &Group)],
) -> Result<Vec<FileEntry>> {
    type Written = (FileEntry, std::fs::File, std::path::PathBuf);
    let write = |(source, date, group): &(&str, NaiveDate, &Group)| -> Result<Written> {
        let (rel, path) = staging.new_file(&format!(
            "{TABLE_EVENTS}/source={}/event_date={}",
            files::hive_value(source),
            date.format("%Y-%m-%d"),
        ))?;
        let batch = group.batch()?;
        let (file, bytes) = files::write_parquet_unsynced(&path, events_file_schema(), &[batch])?;
        let entry = FileEntry {
            table: TABLE_EVENTS.into(),
            path: rel,
            rows: group.len as u64,
            bytes,
        };
        Ok((entry, file, path))
    };
    let mut written: Vec<Written> = Vec::with_capacity(jobs.len());
    let mut first_err = None;
    for r in files::parallel_map(jobs, parse_threads(), write)
        .into_iter()
        .flatten()
    {
        match r {
            Ok(w) => written.push(w),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    let (entries, handles): (Vec<FileEntry>, Vec<(std::fs::File, std::path::PathBuf)>) =
        written.into_iter().map(|(e, f, p)| (e, (f, p))).unzip();
    let synced = match first_err {
        Some(e) => Err(e),
        None => files::sync_files(&handles),
    };
    if let Err(e) = synced {
        for (_, p) in &handles {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    Ok(entries)
}

/// How many days of event time a partition may run ahead of the slowest one being read.
const PACE_SLACK_DAYS: i64 = 3;

/// Polls after which a partition that delivered nothing no longer holds others back.
const PACE_ACTIVE_POLLS: u64 = 4;

/// Keeps the partitions being read together in event time. A consumer shares its fetches
/// fairly by bytes, so while there is a backlog a small topic (chats) runs through the
/// year ahead of a large one (calls), and each commit then spans most of the year: a
/// file per (source, day) for hundreds of days, where reading in step needs a few dozen.
/// Partitions more than [`PACE_SLACK_DAYS`] ahead of the slowest active one are paused
/// and resumed once it catches up; a poll that finds nothing resumes every partition, so
/// pacing can delay a partition but never stall ingest.
///
/// A newly assigned partition that has delivered nothing yet may be the slowest of all
/// (a Kafka partition's first fetch can come 100 ms after another's, long enough to read
/// a small topic's whole backlog): until it delivers, or a poll finds nothing, every
/// partition that has delivered waits.
#[derive(Default)]
struct Pacer {
    polls: u64,
    /// Every assigned partition the pacer has heard of (`EventSource::assignment`).
    known: HashSet<(String, i32)>,
    /// Whether `known` holds the current assignment (read again after a revocation,
    /// not on every poll).
    assignment_read: bool,
    /// Assigned partitions that have delivered nothing since, and no poll found
    /// nothing since: they hold the others back.
    silent: HashSet<(String, i32)>,
    /// The poll at which each partition last delivered messages.
    seen: HashMap<(String, i32), u64>,
    /// The latest event date each partition delivered.
    latest: HashMap<(String, i32), NaiveDate>,
    paused: HashSet<(String, i32)>,
}

impl Pacer {
    /// Forgets partitions taken away by a rebalance.
    fn forget(&mut self, parts: &[(String, i32)]) {
        for p in parts {
            self.seen.remove(p);
            self.paused.remove(p);
            self.latest.remove(p);
            self.known.remove(p);
            self.silent.remove(p);
        }
        self.assignment_read = false;
    }

    fn resume_all(&mut self, source: &mut dyn EventSource) -> Result<()> {
        if self.paused.is_empty() {
            return Ok(());
        }
        let all: Vec<(String, i32)> = self.paused.drain().collect();
        source.set_paused(&all, false)
    }

    /// Pauses or resumes partitions after a poll that returned `msgs`.
    fn after_poll(&mut self, source: &mut dyn EventSource, msgs: &[Message]) -> Result<()> {
        self.polls += 1;
        if !self.assignment_read {
            let assigned = source.assignment();
            self.assignment_read = !assigned.is_empty();
            for p in assigned {
                if self.known.insert(p.clone()) {
                    self.silent.insert(p);
                }
            }
        }
        if msgs.is_empty() {
            self.silent.clear();
            return self.resume_all(source);
        }
        // Messages come in runs per partition: one map update per run.
        let mut run: Option<(&str, i32, Option<NaiveDate>)> = None;
        let polls = self.polls;
        let mut flush = |run: Option<(&str, i32, Option<NaiveDate>)>| {
            if let Some((t, p, d)) = run {
                let key = (t.to_string(), p);
                if let Some(d) = d {
                    let l = self.latest.entry(key.clone()).or_insert(d);
                    *l = (*l).max(d);
                }
                self.silent.remove(&key);
                self.seen.insert(key, polls);
            }
        };
        for m in msgs {
            let d = at_date_hint(&m.payload);
            match &mut run {
                Some((t, p, latest)) if *p == m.partition && *t == m.topic => {
                    *latest = (*latest).max(d);
                }
                _ => {
                    flush(run.take());
                    run = Some((&m.topic, m.partition, d));
                }
            }
        }
        flush(run);
        let (pause, resume) = {
            let fr = &self.latest;
            // Read now: not paused, and delivered in the last few polls.
            let reading = |p: &(String, i32)| {
                !self.paused.contains(p)
                    && self
                        .seen
                        .get(p)
                        .is_some_and(|s| self.polls - s < PACE_ACTIVE_POLLS)
            };
            if !self.silent.is_empty() {
                let all: Vec<(String, i32)> = fr.keys().filter(|p| reading(p)).cloned().collect();
                (all, Vec::new())
            } else {
                let slowest = fr.iter().filter(|(p, _)| reading(p)).map(|(_, d)| *d).min();
                let Some(slowest) = slowest else {
                    return self.resume_all(source);
                };
                let limit = slowest + chrono::Duration::days(PACE_SLACK_DAYS);
                let pause: Vec<(String, i32)> = fr
                    .iter()
                    .filter(|(p, d)| **d > limit && reading(p))
                    .map(|(p, _)| p.clone())
                    .collect();
                let resume: Vec<(String, i32)> = self
                    .paused
                    .iter()
                    .filter(|p| fr.get(*p).is_none_or(|d| *d <= limit))
                    .cloned()
                    .collect();
                (pause, resume)
            }
        };
        if !resume.is_empty() {
            for p in &resume {
                self.paused.remove(p);
            }
            source.set_paused(&resume, false)?;
        }
        if !pause.is_empty() {
            tracing::trace!(
                partitions = pause.len(),
                "pausing partitions ahead in event time"
            );
            source.set_paused(&pause, true)?;
            self.paused.extend(pause);
        }
        Ok(())
    }
}

/// The date of an event's `at`, read straight from the raw JSON (`"at":"YYYY-MM-DD…`)
/// without parsing the message: the reader paces partitions with it before the parse
/// workers see the messages. `None` when it cannot be found (the message is paced as
/// if it had no date; validation judges it later).
fn at_date_hint(payload: &[u8]) -> Option<NaiveDate> {
    const KEY: &[u8] = b"\"at\":\"";
    let i = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    ymd_exact(payload.get(i..i + 10)?)
}

/// What the reading thread hands the writing thread, in order.
enum Item {
    /// Messages and their validation results, read in a source epoch.
    Batch(Vec<Message>, Vec<Result<Parsed, Invalid>>, u64),
    /// Partitions taken away by a rebalance (after the messages sent before).
    Revoke(Vec<(String, i32)>),
    /// A poll found nothing new: commit what is pending (low latency when quiet).
    Idle,
    /// Commit what is pending and stop (`--until-idle` finished, or a stop was asked).
    Finish,
}

/// Messages waiting for validation by a parse worker, with their place in the order.
type ParseJob = (u64, Vec<Message>, u64);

/// How many threads validate messages: the cores, at most 4, at least 1.
fn parse_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
}

/// The writing thread: takes items in sequence order (they may arrive out of order
/// from the parse workers), accumulates, commits when due; returns at `Finish`.
fn write_loop(
    w: &mut Writer<'_>,
    rx: Receiver<(u64, Item)>,
    hints: Sender<Vec<(String, i32, i64)>>,
    opts: &IngestOptions,
    bar: &indicatif::ProgressBar,
) -> Result<bool> {
    let mut next = 0u64;
    let mut held: BTreeMap<u64, Item> = BTreeMap::new();
    let commit = |w: &mut Writer<'_>| -> Result<()> {
        let h = w.commit()?;
        if !h.is_empty() {
            let _ = hints.send(h);
        }
        bar.set_message(format!("{} events committed", w.summary.events));
        Ok(())
    };
    while let Ok((seq, item)) = rx.recv() {
        held.insert(seq, item);
        while let Some(item) = held.remove(&next) {
            next += 1;
            match item {
                Item::Batch(msgs, parsed, epoch) => {
                    w.process(msgs, parsed, epoch)?;
                    if w.due(opts) {
                        commit(w)?;
                    }
                }
                Item::Revoke(parts) => {
                    for (t, p) in &parts {
                        w.revoke(t, *p)?;
                    }
                }
                Item::Idle => {
                    if !w.is_idle() || w.due(opts) {
                        commit(w)?;
                    }
                    if let Some(c) = &opts.caught_up {
                        c.store(w.summary.commits + 1, Ordering::Relaxed);
                    }
                }
                Item::Finish => {
                    commit(w)?;
                    return Ok(true);
                }
            }
        }
    }
    // The reading side stopped without `Finish` (it failed): nothing more to do.
    Ok(false)
}

/// Reads `source` into `dir` until it is idle (`--until-idle`) or `stop` is set, committing
/// files and offsets together; see the module documentation.
///
/// Three kinds of threads: this one polls the source (and passes the broker its offset
/// hints), parse workers validate the polled batches, and one writer thread deduplicates,
/// builds the Arrow batches, writes the Parquet files and commits. Bounded queues between
/// them keep memory flat, and the source is read while files are written.
pub fn run(
    source: &mut dyn EventSource,
    dir: &DataDir,
    opts: &IngestOptions,
    stop: &AtomicBool,
) -> Result<IngestSummary> {
    let started = Instant::now();
    let mut w = Writer::open(dir, source.origin())?;
    w.epoch = source.epoch();
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} messages read ({per_sec}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let poll_max = opts.poll_max.max(1);
    let workers = parse_threads();
    let (to_writer, from_readers) = sync_channel::<(u64, Item)>(opts.queue_batches.max(1));
    let (to_parse, parse_jobs) = sync_channel::<ParseJob>(workers);
    let parse_jobs = Arc::new(Mutex::new(parse_jobs));
    let mut pacer = Pacer::default();
    let pace = opts.pace.unwrap_or_else(|| source.paces_by_default()) && source.can_pause();
    let (hint_tx, hint_rx) = std::sync::mpsc::channel::<Vec<(String, i32, i64)>>();
    let tell_broker = |source: &mut dyn EventSource, hints: Vec<(String, i32, i64)>| {
        if let Err(e) = source.commit_hint(&hints) {
            tracing::warn!("cannot tell the broker the committed offsets (only a hint): {e}");
        }
    };
    let (read_result, write_result) = std::thread::scope(|s| {
        for i in 0..workers {
            let jobs = parse_jobs.clone();
            let out = to_writer.clone();
            std::thread::Builder::new()
                .name(format!("culla-parse-{i}"))
                .spawn_scoped(s, move || {
                    loop {
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(p) => p.into_inner().recv(),
                        };
                        let Ok((seq, msgs, epoch)) = job else { break };
                        let parsed = parse_batch(&msgs, Utc::now());
                        if out.send((seq, Item::Batch(msgs, parsed, epoch))).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| io_err("start a thread for", Path::new("parsing"))(e))?;
        }
        drop(parse_jobs);
        let writer = {
            let bar = bar.clone();
            let w = &mut w;
            std::thread::Builder::new()
                .name("culla-write".into())
                .spawn_scoped(s, move || write_loop(w, from_readers, hint_tx, opts, &bar))
                .map_err(|e| io_err("start a thread for", Path::new("writing"))(e))?
        };
        // The reading loop; every exit path drops the senders so the threads end.
        let read = (|| -> Result<()> {
            let mut seq = 0u64;
            let send = |seq: &mut u64, item: Item| -> bool {
                let ok = to_writer.send((*seq, item)).is_ok();
                *seq += 1;
                ok
            };
            loop {
                while let Ok(h) = hint_rx.try_recv() {
                    tell_broker(source, h);
                }
                if stop.load(Ordering::Relaxed) {
                    tracing::info!("stopping: committing what is pending");
                    send(&mut seq, Item::Finish);
                    return Ok(());
                }
                let polled = source.poll(poll_max, Duration::from_millis(200))?;
                let mut alive = true;
                if !polled.revoked.is_empty() {
                    pacer.forget(&polled.revoked);
                    alive &= send(&mut seq, Item::Revoke(polled.revoked));
                }
                if pace {
                    pacer.after_poll(source, &polled.messages)?;
                }
                let n = polled.messages.len();
                if n > 0 {
                    bar.inc(n as u64);
                    alive &= to_parse.send((seq, polled.messages, polled.epoch)).is_ok();
                    seq += 1;
                } else {
                    alive &= send(&mut seq, Item::Idle);
                }
                if !alive {
                    return Ok(()); // the writer failed: its error is reported below
                }
                if opts.until_idle && n < poll_max && source.caught_up()? {
                    tracing::debug!("caught up: committing what is pending");
                    send(&mut seq, Item::Finish);
                    return Ok(());
                }
            }
        })();
        drop(to_parse);
        drop(to_writer);
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        Ok::<_, Error>((read, written))
    })?;
    while let Ok(h) = hint_rx.try_recv() {
        tell_broker(source, h);
    }
    bar.finish_and_clear();
    write_result?;
    read_result?;
    w.summary.seconds = started.elapsed().as_secs_f64();
    Ok(w.summary.clone())
}

/// One stored event's id and where it was read from (tests and audits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoredEvent {
    /// `event_id`.
    pub event_id: String,
    /// Topic read from.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Every row of the live `events` files of `dir`, as ids and lineage.
pub fn stored_events(dir: &DataDir) -> Result<Vec<StoredEvent>> {
    let snap = Snapshot::load(dir)?;
    let _lock = layout::read_lock_shared(dir)?;
    let mut out = Vec::new();
    for f in snap.live_files(TABLE_EVENTS) {
        let path = dir.resolve(&f.path);
        for b in files::open_parquet(&path, Some(&["event_id", "topic", "partition", "offset"]))? {
            let b = b?;
            let col = |n: &str| {
                b.column_by_name(n)
                    .cloned()
                    .ok_or_else(|| Error::BadInput(format!("{} has no column {n}", path.display())))
            };
            let (id, t, p, o) = (
                col("event_id")?,
                col("topic")?,
                col("partition")?,
                col("offset")?,
            );
            let (id, t) = (id.as_string::<i32>(), t.as_string::<i32>());
            let (p, o) = (p.as_primitive::<Int32Type>(), o.as_primitive::<Int64Type>());
            for i in 0..b.num_rows() {
                out.push(StoredEvent {
                    event_id: id.value(i).to_string(),
                    topic: t.value(i).to_string(),
                    partition: p.value(i),
                    offset: o.value(i),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn row(i: usize, partition: i32) -> Row {
        let json = format!(
            r#"{{"event_id":"00000000-0000-4000-8000-{i:012x}","type":"call.received","v":1,"at":"2024-03-05T09:12:44+01:00","source":"milano-020202","contact_id":"c-{i}","family":"a1b2c3d4e5f60718","ivr_path":"4-3"}}"#
        );
        let ev = parse_event(json.as_bytes(), Utc::now()).expect("a valid event");
        Row {
            id: id128(&ev.event_id),
            ev,
            msg: Message {
                topic: "calls".into(),
                partition,
                offset: i as i64,
                key: None,
                payload: json.into_bytes(),
            },
        }
    }

    #[test]
    fn dropping_rows_across_chunks_keeps_counts_order_and_batch() {
        let date = NaiveDate::from_ymd_opt(2024, 3, 5).expect("a date");
        let n = 3 * CHUNK_ROWS + 17;
        let mut p = Pending::default();
        let mut raw = Vec::new();
        for i in 0..n {
            let r = row(i, (i % 2) as i32);
            raw.push(r.msg.payload.len());
            p.group("milano-020202", date).push(r);
        }
        // Partition 1's rows below offset 500: the odd offsets 1, 3, …, 499.
        let (ids, dead) = p.drop_rows("calls", 1, 500);
        assert_eq!((ids.len(), dead), (250, 0));
        let kept: Vec<usize> = (0..n).filter(|i| !(i % 2 == 1 && *i < 500)).collect();
        let g = &p.groups["milano-020202"][&date];
        assert_eq!(g.len, kept.len());
        assert_eq!(g.raw_bytes, kept.iter().map(|i| raw[*i]).sum::<usize>());
        let offsets: Vec<i64> = g.rows().map(|r| r.msg.offset).collect();
        let expected: Vec<i64> = kept.iter().map(|i| *i as i64).collect();
        assert_eq!(offsets, expected);
        // The file's batch holds the same rows in the same order.
        let b = g.batch().expect("a batch");
        let col = b
            .column_by_name("offset")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .expect("offset column");
        assert_eq!(col.values().to_vec(), expected);
        // Dropping everything leaves no group behind.
        p.drop_rows("calls", 0, i64::MAX);
        p.drop_rows("calls", 1, i64::MAX);
        assert!(p.groups.is_empty());
    }

    #[test]
    fn the_date_hint_reads_at_without_parsing() {
        let d = |s: &str| at_date_hint(s.as_bytes());
        let ymd = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd);
        assert_eq!(
            d(r#"{"event_id":"x","at":"2024-03-05T09:12:44+01:00","v":1}"#),
            ymd(2024, 3, 5)
        );
        assert_eq!(
            d(r#"{"v":1,"at":"2023-12-31T23:59:59Z"}"#),
            ymd(2023, 12, 31)
        );
        assert_eq!(d(r#"{"v":1,"at" : "2024-03-05"}"#), None); // spaced: no hint
        assert_eq!(d(r#"{"at":"2024-3-5T09:00:00Z"}"#), None);
        assert_eq!(d(r#"{"at":"2024-02-30T09:00:00Z"}"#), None);
        assert_eq!(d(r#"{"at":"2024-03"#), None);
        assert_eq!(d("not json"), None);
    }

    /// A source that only records what the pacer asks of it.
    #[derive(Default)]
    struct Recorder {
        assigned: Vec<(String, i32)>,
        paused: Vec<(String, i32)>,
        resumed: Vec<(String, i32)>,
    }

    impl EventSource for Recorder {
        fn origin(&self) -> &str {
            "log-test"
        }
        fn poll(&mut self, _: usize, _: Duration) -> Result<crate::source::Polled> {
            Ok(crate::source::Polled::default())
        }
        fn assignment(&self) -> Vec<(String, i32)> {
            self.assigned.clone()
        }
        fn caught_up(&mut self) -> Result<bool> {
            Ok(true)
        }
        fn commit_hint(&mut self, _: &[(String, i32, i64)]) -> Result<()> {
            Ok(())
        }
        fn set_paused(&mut self, parts: &[(String, i32)], paused: bool) -> Result<()> {
            let log = if paused {
                &mut self.paused
            } else {
                &mut self.resumed
            };
            log.extend_from_slice(parts);
            Ok(())
        }
    }

    fn msgs(parts: &[(&str, i32, u32)]) -> Vec<Message> {
        parts
            .iter()
            .enumerate()
            .map(|(i, (topic, partition, day))| Message {
                topic: topic.to_string(),
                partition: *partition,
                offset: i as i64,
                key: None,
                payload: format!(r#"{{"v":1,"at":"2024-03-{day:02}T10:00:00+01:00"}}"#)
                    .into_bytes(),
            })
            .collect()
    }

    #[test]
    fn partitions_ahead_in_event_time_wait_and_an_empty_poll_frees_them() {
        let (calls, chats) = (("calls".to_string(), 0), ("chats".to_string(), 0));
        let mut src = Recorder::default();
        let mut p = Pacer::default();
        // Calls at 1 March, chats at 10 March: 10 > 1 + 3, chats wait.
        p.after_poll(
            &mut src,
            &msgs(&[("calls", 0, 1), ("calls", 0, 1), ("chats", 0, 10)]),
        )
        .expect("paced");
        assert_eq!(src.paused, vec![chats.clone()]);
        // Calls reach 6 March: 10 > 6 + 3, chats still wait.
        p.after_poll(&mut src, &msgs(&[("calls", 0, 6)]))
            .expect("paced");
        assert!(src.resumed.is_empty());
        // Calls reach 7 March: 10 ≤ 7 + 3, chats go on; calls are never paused.
        p.after_poll(&mut src, &msgs(&[("calls", 0, 7)]))
            .expect("paced");
        assert_eq!(src.resumed, vec![chats.clone()]);
        assert!(!src.paused.contains(&calls));
        // Chats run ahead again (20 March), then a poll finds nothing: all resume.
        p.after_poll(&mut src, &msgs(&[("chats", 0, 20)]))
            .expect("paced");
        assert_eq!(src.paused, vec![chats.clone(), chats.clone()]);
        p.after_poll(&mut src, &[]).expect("paced");
        assert_eq!(src.resumed, vec![chats.clone(), chats.clone()]);
        // A partition that stopped delivering no longer holds others back: calls last
        // delivered at poll 1; chats run ahead at polls 2–5 and are paused at poll 2; at
        // poll 5 calls have been silent for 4 polls, so no unpaused partition is being
        // read and chats resume; at poll 6 nothing is paused again.
        let mut src = Recorder::default();
        let mut p = Pacer::default();
        p.after_poll(&mut src, &msgs(&[("calls", 0, 1), ("chats", 0, 2)]))
            .expect("paced");
        assert!(src.paused.is_empty());
        for day in [10, 11, 12] {
            p.after_poll(&mut src, &msgs(&[("chats", 0, day)]))
                .expect("paced");
        }
        assert_eq!((src.paused.len(), src.resumed.len()), (1, 0));
        p.after_poll(&mut src, &msgs(&[("chats", 0, 13)]))
            .expect("paced");
        assert_eq!((src.paused.len(), src.resumed.len()), (1, 1));
        p.after_poll(&mut src, &msgs(&[("chats", 0, 14)]))
            .expect("paced");
        assert_eq!((src.paused.len(), src.resumed.len()), (1, 1));
    }

    #[test]
    fn a_partition_assigned_but_silent_holds_the_others_until_it_delivers_or_a_poll_is_empty() {
        let (calls, chats) = (("calls".to_string(), 0), ("chats".to_string(), 0));
        let fresh = || {
            let src = Recorder {
                assigned: vec![calls.clone(), chats.clone()],
                ..Recorder::default()
            };
            (src, Pacer::default())
        };
        let (mut src, mut p) = fresh();
        // Only chats delivered (1 March): calls may be behind, so chats wait.
        p.after_poll(&mut src, &msgs(&[("chats", 0, 1)]))
            .expect("paced");
        assert_eq!(src.paused, vec![chats.clone()]);
        // Calls deliver 1 March: chats (1 ≤ 1 + 3) go on.
        p.after_poll(&mut src, &msgs(&[("calls", 0, 1)]))
            .expect("paced");
        assert_eq!(src.resumed, vec![chats.clone()]);
        // Again, but calls never deliver: the first empty poll frees chats for good.
        let (mut src, mut p) = fresh();
        p.after_poll(&mut src, &msgs(&[("chats", 0, 1)]))
            .expect("paced");
        assert_eq!(src.paused, vec![chats.clone()]);
        p.after_poll(&mut src, &[]).expect("paced");
        assert_eq!(src.resumed, vec![chats.clone()]);
        p.after_poll(&mut src, &msgs(&[("chats", 0, 2)]))
            .expect("paced");
        assert_eq!(src.paused.len(), 1, "a silent partition holds only once");
    }

    /// Rows `from..to` (ids and offsets `i`) with a date per row: the 3rd, 4th or 5th
    /// of March 2024.
    fn dated(from: usize, to: usize) -> (Vec<Message>, Vec<Result<Parsed, Invalid>>) {
        (from..to)
            .map(|i| {
                let mut r = row(i, 0);
                let day = 3 + i % 3;
                let json = String::from_utf8(r.msg.payload.clone())
                    .expect("utf-8")
                    .replace("2024-03-05T", &format!("2024-03-{day:02}T"));
                r.ev = parse_event(json.as_bytes(), Utc::now()).expect("a valid event");
                r.msg.payload = json.into_bytes();
                let parsed = Parsed {
                    id: r.id,
                    date: event_date(&r.ev),
                    ev: r.ev,
                };
                (r.msg, Ok(parsed))
            })
            .unzip()
    }

    #[test]
    fn a_duplicate_is_found_after_a_compaction_replaced_its_files() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let dir = DataDir::new(tmp.path());
        // Two commits: two files per date.
        let mut w = Writer::open(&dir, "test").expect("a writer");
        for (from, to) in [(0, 300), (300, 600)] {
            let (msgs, parsed) = dated(from, to);
            w.process(msgs, parsed, 0).expect("processed");
            w.commit().expect("committed");
        }
        // A writer that read the manifest before another process compacted the files.
        let mut w = Writer::open(&dir, "test").expect("a writer");
        let before: Vec<String> = w
            .snapshot()
            .live_files(TABLE_EVENTS)
            .map(|f| f.path.clone())
            .collect();
        let c = crate::compact::compact(&dir, &crate::compact::CompactOptions::default())
            .expect("compacted");
        assert!(c.files_in >= 6, "{c:?}");
        assert!(before.iter().all(|p| !dir.resolve(p).exists()));
        // Re-sent ids are checked against the files that hold them now.
        let (mut msgs, parsed) = dated(290, 310);
        for (k, m) in msgs.iter_mut().enumerate() {
            m.offset = 600 + k as i64;
        }
        w.process(msgs, parsed, 0)
            .expect("processed without a missing file");
        assert_eq!(w.pending.duplicates, 20);
    }

    #[test]
    fn stored_ids_survive_a_reopen_and_only_true_duplicates_are_dropped() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let dir = DataDir::new(tmp.path());
        let mut w = Writer::open(&dir, "test").expect("a writer");
        let (msgs, parsed) = dated(0, 600);
        w.process(msgs, parsed, 0).expect("processed");
        w.commit().expect("committed");
        assert_eq!(w.summary.events, 600);
        // Offsets 600..900 carry ids 300..600 again (re-sent) and 600..700 anew, plus a
        // duplicate inside the same batch.
        let mut w = Writer::open(&dir, "test").expect("a writer");
        assert_eq!(w.ids.stored_len(), 600);
        let (mut msgs, mut parsed) = dated(300, 700);
        let (m2, p2) = dated(650, 651);
        msgs.extend(m2);
        parsed.extend(p2);
        for (k, m) in msgs.iter_mut().enumerate() {
            m.offset = 600 + k as i64;
        }
        w.process(msgs, parsed, 0).expect("processed");
        w.commit().expect("committed");
        assert_eq!((w.summary.events, w.summary.duplicates), (100, 301));
        // Each re-sent id was checked against its date's files, and only those.
        assert_eq!(w.ids.verifications, 300);
        let stored: u64 = w.snapshot().live_files(TABLE_EVENTS).map(|f| f.rows).sum();
        assert_eq!(stored, 700);
        assert_eq!(w.ids.stored_len(), 700);
        // The same id with another date (stored on 5 March, re-sent dated 9 March) is a
        // duplicate too: the fingerprint names the date the first copy is stored under.
        let (mut msgs, _) = dated(5, 6);
        let json = String::from_utf8(msgs[0].payload.clone())
            .expect("utf-8")
            .replace("2024-03-05T", "2024-03-09T");
        let ev = parse_event(json.as_bytes(), Utc::now()).expect("a valid event");
        assert_eq!(
            event_date(&ev),
            NaiveDate::from_ymd_opt(2024, 3, 9).expect("a date")
        );
        msgs[0].payload = json.into_bytes();
        msgs[0].offset = 2_000;
        let parsed = vec![Ok(Parsed {
            id: id128(&ev.event_id),
            date: event_date(&ev),
            ev,
        })];
        w.process(msgs, parsed, 0).expect("processed");
        w.commit().expect("committed");
        assert_eq!((w.summary.events, w.summary.duplicates), (100, 302));
    }
}
