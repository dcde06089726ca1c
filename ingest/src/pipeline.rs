//! The exactly-once writer: messages from an [`EventSource`] into committed Parquet.
//!
//! [`run`] first [recovers](crate::recovery) the data directory and loads the
//! `event_id`s of every live `events` file (as `u128`s: 16 bytes an event). Then it
//! polls, validates each message with `culla_schemas::parse_event`, drops duplicates,
//! sends bad messages to dead letters, and accumulates rows per (`source`, `event_date`)
//! in Arrow builders. When the pending data reaches `--max-file-mb`, or `--flush-secs`
//! pass, or the source goes idle or is stopped, it writes one zstd Parquet file per
//! partition into staging, commits the files *and* the consumed offset ranges in one
//! manifest commit, and renames the files into place. Restarting at the committed
//! offsets after a crash can therefore neither lose nor duplicate an event.
//!
//! Fencing: before committing, the writer reloads the manifest. If another process
//! committed offsets of a partition meanwhile (a Kafka rebalance handed it over), the
//! pending rows of the offsets it already covers are dropped (logged) and the range is
//! shortened, so no offset is ever committed twice.

use crate::files::{self, Staging};
use crate::privacy;
use crate::recovery;
use crate::source::{EventSource, Message, StartOffsets};
use crate::{Error, Result};
use chrono::{DateTime, NaiveDate, Utc};
use culla_schemas::arrow::{
    DeadLetter, EventBatchBuilder, Lineage, dead_letters_batch, dead_letters_file_schema,
    event_date, events_file_schema,
};
use culla_schemas::layout::{
    self, Commit, DataDir, FileEntry, OffsetRange, Snapshot, TABLE_DEAD_LETTERS, TABLE_EVENTS,
};
use culla_schemas::{Event, Invalid, Reason, parse_event};
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Int32Type, Int64Type};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Show a progress spinner on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            max_file_bytes: 64 * 1024 * 1024,
            flush_interval: Duration::from_secs(10),
            until_idle: false,
            poll_max: 8192,
            progress: false,
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
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl IngestSummary {
    /// Total dead letters.
    pub fn dead_letter_total(&self) -> u64 {
        self.dead_letters.values().sum()
    }
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
            let parts: Vec<String> = self
                .dead_letters
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            write!(f, " ({})", parts.join(", "))?;
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
        if self.fenced > 0 {
            write!(f, "; {} rows fenced off", self.fenced)?;
        }
        Ok(())
    }
}

/// A [`StartOffsets`] reading the manifest of `dir` for `origin` at each call, so a
/// partition assigned late (a Kafka rebalance) starts at the latest committed offset.
pub fn start_offsets(dir: &DataDir, origin: &'static str) -> StartOffsets {
    let dir = dir.clone();
    let snap = Arc::new(Mutex::new(Snapshot::default()));
    Arc::new(move |topic: &str, partition: i32| {
        let mut s = match snap.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if let Err(e) = files::catch_up(&dir, &mut s) {
            // Reading from the start is safe: committed offsets are skipped anyway.
            tracing::warn!("cannot read the manifest for start offsets: {e}");
        }
        s.next_offset(origin, topic, partition)
    })
}

/// A hasher for random 128-bit ids: fold the halves, multiply (ids are already uniform).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u128(&mut self, i: u128) {
        let x = (i as u64) ^ ((i >> 64) as u64).rotate_left(29);
        self.0 = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The set of stored `event_id`s.
pub type IdSet = HashSet<u128, BuildHasherDefault<IdHasher>>;

/// An `event_id` as 128 bits: the UUID's value (validation guarantees a UUID); anything
/// else (never expected) hashes to a stable value.
pub fn id128(event_id: &str) -> u128 {
    match uuid::Uuid::try_parse(event_id) {
        Ok(u) => u.as_u128(),
        Err(_) => {
            let a = u128::from(crate::locallog::fnv1a(event_id.as_bytes()));
            let mut h = IdHasher::default();
            h.write(event_id.as_bytes());
            (a << 64) | u128::from(h.finish()) | (1 << 127)
        }
    }
}

/// Adds the `event_id`s of one `events` file to `set`.
pub fn load_ids_from_file(path: &std::path::Path, set: &mut IdSet) -> Result<()> {
    for batch in files::open_parquet(path, Some(&["event_id"]))? {
        let batch = batch?;
        let col = batch.column(0).as_string::<i32>();
        for v in col.iter().flatten() {
            set.insert(id128(v));
        }
    }
    Ok(())
}

/// The `event_id`s of every live `events` file of `snap`.
pub fn load_ids(dir: &DataDir, snap: &Snapshot) -> Result<IdSet> {
    let rows: u64 = snap.live_files(TABLE_EVENTS).map(|f| f.rows).sum();
    let mut set = IdSet::with_capacity_and_hasher(rows as usize, Default::default());
    for f in snap.live_files(TABLE_EVENTS) {
        load_ids_from_file(&dir.resolve(&f.path), &mut set)?;
    }
    Ok(set)
}

/// Consumption state of one partition.
struct PartState {
    topic: String,
    partition: i32,
    /// Next offset the manifest has for it.
    committed_next: Option<i64>,
    /// Offsets consumed but not committed yet.
    pending: Option<(i64, i64)>,
}

/// Rows of one (`source`, `event_date`) file in the making.
#[derive(Default)]
struct Group {
    builder: EventBatchBuilder,
    batches: Vec<RecordBatch>,
}

impl Group {
    fn seal(&mut self) -> Result<()> {
        if !self.builder.is_empty() {
            self.batches.push(self.builder.finish()?);
        }
        Ok(())
    }
    fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum::<usize>() + self.builder.len()
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

impl Pending {
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

    /// Drops pending rows read from `topic`/`partition` at offsets below `below`;
    /// returns the dropped rows' ids and how many dead letters went.
    fn drop_rows(&mut self, topic: &str, partition: i32, below: i64) -> Result<(Vec<u128>, usize)> {
        let mut ids = Vec::new();
        for dates in self.groups.values_mut() {
            for g in dates.values_mut() {
                g.seal()?;
                for b in &mut g.batches {
                    let t = b
                        .column_by_name("topic")
                        .map(|c| c.as_string::<i32>().clone())
                        .ok_or_else(|| Error::BadInput("batch without topic".into()))?;
                    let p = b
                        .column_by_name("partition")
                        .map(|c| c.as_primitive::<Int32Type>().clone())
                        .ok_or_else(|| Error::BadInput("batch without partition".into()))?;
                    let o = b
                        .column_by_name("offset")
                        .map(|c| c.as_primitive::<Int64Type>().clone())
                        .ok_or_else(|| Error::BadInput("batch without offset".into()))?;
                    let ev = b
                        .column_by_name("event_id")
                        .map(|c| c.as_string::<i32>().clone())
                        .ok_or_else(|| Error::BadInput("batch without event_id".into()))?;
                    let keep: BooleanArray = (0..b.num_rows())
                        .map(|i| {
                            let drop = t.value(i) == topic
                                && p.value(i) == partition
                                && o.value(i) < below;
                            if drop {
                                ids.push(id128(ev.value(i)));
                            }
                            Some(!drop)
                        })
                        .collect();
                    if keep.false_count() > 0 {
                        *b = filter_record_batch(b, &keep)?;
                    }
                }
                g.batches.retain(|b| b.num_rows() > 0);
            }
            dates.retain(|_, g| g.rows() > 0);
        }
        self.groups.retain(|_, d| !d.is_empty());
        let before = self.dead.len();
        self.dead
            .retain(|d| !(d.topic == topic && d.partition == partition && d.offset < below));
        Ok((ids, before - self.dead.len()))
    }
}

/// Builds the dead letter of a message that failed validation, masking personal data.
pub fn dead_letter(m: Message, inv: &Invalid, received: DateTime<Utc>) -> DeadLetter {
    let (raw, mut redacted) = if inv.reason == Reason::PersonalData {
        let masked = privacy::mask(&m.payload).unwrap_or(m.payload);
        (privacy::mask_all_digits(&masked), true)
    } else {
        match privacy::mask(&m.payload) {
            Some(masked) => (masked, true),
            None => (m.payload, false),
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
        detail: clean(inv.message.clone()),
        received_at_us: received.timestamp_micros(),
        redacted,
    }
}

/// Validates messages, on two threads when there are many.
fn parse_all(msgs: &[Message], now: DateTime<Utc>) -> Vec<Result<Event, Invalid>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    if msgs.len() < 2048 || threads < 2 {
        return msgs.iter().map(|m| parse_event(&m.payload, now)).collect();
    }
    let chunk = msgs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = msgs
            .chunks(chunk)
            .map(|c| {
                s.spawn(move || {
                    c.iter()
                        .map(|m| parse_event(&m.payload, now))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(msgs.len());
        for h in handles {
            match h.join() {
                Ok(v) => out.extend(v),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        out
    })
}

/// The state of one writer over a data directory.
pub(crate) struct Writer<'a> {
    dir: &'a DataDir,
    origin: String,
    staging: Staging,
    snap: Snapshot,
    ids: IdSet,
    parts: Vec<PartState>,
    pending: Pending,
    tag: String,
    /// Counts of what was committed.
    pub summary: IngestSummary,
}

impl<'a> Writer<'a> {
    /// Recovers `dir`, loads its snapshot and stored ids.
    pub(crate) fn open(dir: &'a DataDir, origin: &str) -> Result<Writer<'a>> {
        let staging = Staging::open(dir)?;
        let (snap, rep) = recovery::recover(dir)?;
        if !rep.is_clean() {
            tracing::info!(?rep, "recovered the data directory");
        }
        let ids = load_ids(dir, &snap)?;
        tracing::debug!(
            ids = ids.len(),
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
        self.parts.push(PartState {
            topic: topic.to_string(),
            partition,
            committed_next,
            pending: None,
        });
        self.parts.len() - 1
    }

    /// Whether nothing waits to be committed.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.parts.iter().all(|p| p.pending.is_none())
    }

    /// Validates and accumulates a poll's messages.
    pub(crate) fn process(&mut self, msgs: Vec<Message>) -> Result<()> {
        let now = Utc::now();
        let parsed = parse_all(&msgs, now);
        if self.pending.since.is_none() && !msgs.is_empty() {
            self.pending.since = Some(Instant::now());
        }
        let mut last: Option<usize> = None;
        for (m, r) in msgs.into_iter().zip(parsed) {
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
                None => ps.pending = Some((m.offset, m.offset)),
            }
            self.pending.raw_bytes += m.payload.len();
            match r {
                Ok(ev) => {
                    if !self.ids.insert(id128(&ev.event_id)) {
                        self.pending.duplicates += 1;
                        continue;
                    }
                    let raw = std::str::from_utf8(&m.payload).unwrap_or_default();
                    let date = event_date(&ev);
                    self.pending.group(&ev.source, date).builder.append(
                        &ev,
                        raw,
                        &Lineage {
                            topic: &m.topic,
                            partition: m.partition,
                            offset: m.offset,
                        },
                    );
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
            let (ids, dead) = self.pending.drop_rows(topic, partition, i64::MAX)?;
            for id in &ids {
                self.ids.remove(id);
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

    /// Applies commits of other processes: their offsets fence ours, their events join the ids.
    fn absorb(&mut self) -> Result<()> {
        let new = files::catch_up(self.dir, &mut self.snap)?;
        for c in &new {
            if c.operation == "compact" {
                continue; // rewrites stored rows: no new ids
            }
            for f in c.add.iter().filter(|f| f.table == TABLE_EVENTS) {
                let fin = self.dir.resolve(&f.path);
                let staged = self.dir.staging_dir().join(&f.staged);
                let path = if staged.exists() { staged } else { fin.clone() };
                match load_ids_from_file(&path, &mut self.ids) {
                    Ok(()) => {}
                    Err(_) if fin.exists() => load_ids_from_file(&fin, &mut self.ids)?,
                    Err(e) => return Err(e),
                }
            }
        }
        if !new.is_empty() {
            for ps in &mut self.parts {
                ps.committed_next = self.snap.next_offset(&self.origin, &ps.topic, ps.partition);
            }
        }
        Ok(())
    }

    /// Shortens or drops pending ranges another writer already committed; true if any changed.
    fn fence(&mut self) -> Result<bool> {
        let mut changed = false;
        for i in 0..self.parts.len() {
            let (Some(n), Some((first, last))) =
                (self.parts[i].committed_next, self.parts[i].pending)
            else {
                continue;
            };
            if n <= first {
                continue;
            }
            let topic = self.parts[i].topic.clone();
            let partition = self.parts[i].partition;
            let (ids, dead) = self.pending.drop_rows(&topic, partition, n)?;
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

    /// Writes the pending rows to staging; returns the file entries.
    fn stage(&mut self) -> Result<Vec<FileEntry>> {
        let mut out = Vec::new();
        let mut groups: Vec<(&String, &mut HashMap<NaiveDate, Group>)> =
            self.pending.groups.iter_mut().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
        for (source, dates) in groups {
            for (date, g) in dates.iter_mut() {
                g.seal()?;
                let rows: usize = g.batches.iter().map(|b| b.num_rows()).sum();
                if rows == 0 {
                    continue;
                }
                let name = self.staging.new_name();
                let bytes = files::write_parquet(
                    &self.staging.path(&name),
                    events_file_schema(),
                    &g.batches,
                )?;
                out.push(FileEntry {
                    table: TABLE_EVENTS.into(),
                    path: format!(
                        "{TABLE_EVENTS}/source={}/event_date={}/{}",
                        files::hive_value(source),
                        date.format("%Y-%m-%d"),
                        files::part_name()
                    ),
                    staged: name,
                    rows: rows as u64,
                    bytes,
                });
            }
        }
        let mut by_day: BTreeMap<NaiveDate, Vec<DeadLetter>> = BTreeMap::new();
        for d in &self.pending.dead {
            let day = DateTime::<Utc>::from_timestamp_micros(d.received_at_us)
                .map_or_else(|| Utc::now().date_naive(), |t| t.date_naive());
            by_day.entry(day).or_default().push(d.clone());
        }
        for (day, rows) in by_day {
            out.push(stage_dead_letters(&self.staging, day, &rows)?);
        }
        if !out.is_empty() {
            self.staging.sync()?;
        }
        Ok(out)
    }

    fn discard(&self, staged: &[FileEntry]) {
        for f in staged {
            let _ = std::fs::remove_file(self.staging.path(&f.staged));
        }
    }

    /// Commits everything pending (files and offsets together); a no-op when idle.
    pub(crate) fn commit(&mut self, source: Option<&mut dyn EventSource>) -> Result<()> {
        if self.is_idle() {
            return Ok(());
        }
        let mut staged: Option<Vec<FileEntry>> = None;
        let commit = loop {
            self.absorb()?;
            if self.fence()?
                && let Some(old) = staged.take()
            {
                self.discard(&old);
            }
            if staged.is_none() {
                staged = Some(self.stage()?);
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
                return Ok(());
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
            let c = Commit {
                seq: self.snap.seq + 1,
                committed_at: files::now_rfc3339(),
                operation: "ingest".into(),
                writer: self.tag.clone(),
                add,
                remove: Vec::new(),
                offsets,
                stats,
            };
            if layout::try_commit(self.dir, &c)? {
                break c;
            }
            tracing::debug!(
                seq = c.seq,
                "commit number taken by another writer; retrying"
            );
        };
        self.snap.apply(&commit);
        files::publish(self.dir, &commit.add)?;
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
        let mut hints = Vec::new();
        for p in &mut self.parts {
            if let Some((_, last)) = p.pending.take() {
                p.committed_next = Some(last + 1);
                hints.push((p.topic.clone(), p.partition, last + 1));
            }
        }
        self.reset_pending();
        tracing::debug!(seq = commit.seq, files = commit.add.len(), "committed");
        if let Some(src) = source
            && let Err(e) = src.commit_hint(&hints)
        {
            tracing::warn!("cannot tell the broker the committed offsets (only a hint): {e}");
        }
        Ok(())
    }

    fn reset_pending(&mut self) {
        self.pending = Pending::default();
        for p in &mut self.parts {
            p.pending = None;
        }
    }

    /// Applies commits made by other processes since the last look.
    pub(crate) fn refresh(&mut self) -> Result<()> {
        self.absorb()
    }

    /// The manifest state this writer knows.
    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snap
    }

    /// Stored ids (dedup set), for replay.
    pub(crate) fn ids_mut(&mut self) -> &mut IdSet {
        &mut self.ids
    }

    /// Appends an already validated event (replay) to the pending rows.
    pub(crate) fn push_event(&mut self, ev: &Event, raw: &str, from: &Lineage<'_>) {
        self.pending.raw_bytes += raw.len();
        self.pending
            .group(&ev.source, event_date(ev))
            .builder
            .append(ev, raw, from);
    }

    /// Writes the pending events (no offsets) to staging, for replay.
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

    /// The staging area of this writer.
    pub(crate) fn staging(&self) -> &Staging {
        &self.staging
    }

    /// The writer tag.
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }
}

/// Writes one dead-letter file for `day` to staging.
pub(crate) fn stage_dead_letters(
    staging: &Staging,
    day: NaiveDate,
    rows: &[DeadLetter],
) -> Result<FileEntry> {
    let batch = dead_letters_batch(rows)?;
    let name = staging.new_name();
    let bytes = files::write_parquet(&staging.path(&name), dead_letters_file_schema(), &[batch])?;
    Ok(FileEntry {
        table: TABLE_DEAD_LETTERS.into(),
        path: format!(
            "{TABLE_DEAD_LETTERS}/received_date={}/{}",
            day.format("%Y-%m-%d"),
            files::part_name()
        ),
        staged: name,
        rows: rows.len() as u64,
        bytes,
    })
}

/// Reads `source` into `dir` until it is idle (`--until-idle`) or `stop` is set, committing
/// files and offsets together; see the module documentation.
pub fn run(
    source: &mut dyn EventSource,
    dir: &DataDir,
    opts: &IngestOptions,
    stop: &AtomicBool,
) -> Result<IngestSummary> {
    let started = Instant::now();
    let mut w = Writer::open(dir, source.origin())?;
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
    loop {
        if stop.load(Ordering::Relaxed) {
            tracing::info!("stopping: committing what is pending");
            break;
        }
        let timeout = match w.pending.since {
            Some(s) => opts
                .flush_interval
                .saturating_sub(s.elapsed())
                .min(Duration::from_millis(200)),
            None => Duration::from_millis(200),
        };
        let polled = source.poll(poll_max, timeout)?;
        for (t, p) in &polled.revoked {
            w.revoke(t, *p)?;
        }
        let n = polled.messages.len();
        let idle = n == 0;
        if !idle {
            bar.inc(n as u64);
            w.process(polled.messages)?;
        }
        let finished = opts.until_idle && n < poll_max && source.caught_up()?;
        if w.due(opts) || (idle && !w.is_idle()) || finished {
            w.commit(Some(&mut *source))?;
            bar.set_message(format!("{} events committed", w.summary.events));
        }
        if finished && w.is_idle() {
            break;
        }
    }
    w.commit(Some(&mut *source))?;
    bar.finish_and_clear();
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
