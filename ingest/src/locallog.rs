//! The embedded local event log: Kafka's data model in plain NDJSON files, for a single
//! machine with no broker.
//!
//! Layout: `DIR/log/<topic>/meta.json` records the number of partitions of the topic
//! (default [`DEFAULT_PARTITIONS`]); `DIR/log/<topic>/<partition>/<first offset, 20
//! digits>.ndjson` are append-only segments. A message's offset is the position of its
//! line in the partition (0-based, across segments); its partition is the FNV-1a hash of
//! its key modulo the number of partitions, so one family's events stay in order.
//!
//! `DIR/log/log-id` names the log (a random id written when the log is first opened):
//! ingest records it with every committed offset ([`EventSource::origin`] `log-<id>`),
//! so a log deleted and produced into again is a new log, read from its start, and a
//! log shorter than the offsets the tables have read from it is refused
//! ([`LocalLogSource::open`]) instead of being skipped up to them.
//!
//! [`LocalLogSink`] appends (one writer at a time, guarded by `DIR/log/.write.lock`),
//! rolls to a new segment past a size, and fsyncs on [`EventSink::flush`]. A crash can
//! leave a torn last line (no trailing newline): [`LocalLogSource`] never consumes a line
//! before its newline is there, and the writer truncates a torn tail when it opens the
//! partition. The reader finds its start segment from the file names and reads through
//! large buffers, so a backlog streams at disk speed.

use crate::error::io_err;
use crate::sink::EventSink;
use crate::source::{EventSource, Message, Polled, StartOffsets};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Partitions of a topic created by the local log, unless told otherwise.
pub const DEFAULT_PARTITIONS: u32 = 3;
/// Size past which the writer starts a new segment.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 * 1024 * 1024;

/// `DIR/log/<topic>/meta.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Number of partitions; fixed when the topic is created.
    pub partitions: u32,
}

/// FNV-1a, 32 bits: the stable hash that maps a key to its partition.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The partition of `key` in a topic of `partitions` partitions.
pub fn partition_of(key: &[u8], partitions: u32) -> i32 {
    (fnv1a(key) % partitions.max(1)) as i32
}

fn segment_name(first: i64) -> String {
    format!("{first:020}.ndjson")
}

/// Segments of a partition directory, sorted by first offset.
fn list_segments(pdir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let entries = match fs::read_dir(pdir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", pdir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", pdir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".ndjson")
            && stem.len() == 20
            && let Ok(first) = stem.parse::<i64>()
        {
            out.push((first, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a topic's `meta.json`; `None` when the topic does not exist yet.
pub fn read_meta(log_dir: &Path, topic: &str) -> Result<Option<TopicMeta>> {
    let p = log_dir.join(topic).join("meta.json");
    match fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::BadInput(format!(
                "local log metadata {} is corrupt: {e}",
                p.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", &p)(e)),
    }
}

/// Topic names present in a local log directory, sorted.
pub fn list_topics(log_dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(log_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", log_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", log_dir))?;
        if entry.path().join("meta.json").exists() {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// The name of the file holding a log's identity, in the log directory.
pub const LOG_ID_FILE: &str = "log-id";

/// The identity of the log in `log_dir`, created (and the directory with it) when the
/// log has none yet. Two processes opening a new log at once agree on one id: the id is
/// published with a hard link, which fails when the name exists.
pub fn log_id(log_dir: &Path) -> Result<String> {
    let path = log_dir.join(LOG_ID_FILE);
    let read = |path: &Path| -> Result<Option<String>> {
        match fs::read_to_string(path) {
            Ok(s) => {
                let id = s.trim();
                if id.is_empty()
                    || id.len() > 64
                    || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(Error::BadInput(format!(
                        "the local log's identity {} is damaged; delete it, and the log is read from its start as a new one",
                        path.display()
                    )));
                }
                Ok(Some(id.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", path)(e)),
        }
    };
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    fs::create_dir_all(log_dir).map_err(io_err("create", log_dir))?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let tmp = log_dir.join(format!(".log-id-{id}.tmp"));
    fs::write(&tmp, format!("{id}\n")).map_err(io_err("write", &tmp))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync", &tmp))?;
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(log_dir)?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| Error::BadInput(format!("{} vanished", path.display())))
        }
        Err(e) => Err(io_err("create", &path)(e)),
    }
}

fn check_topic_name(topic: &str) -> Result<()> {
    let ok = !topic.is_empty()
        && topic.len() <= 200
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && topic != "."
        && topic != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "topic name {topic:?} is not usable: use letters, digits, '.', '_' and '-'"
        )))
    }
}

/// The open tail of one partition, for appending.
struct WritePartition {
    dir: PathBuf,
    file: BufWriter<File>,
    path: PathBuf,
    segment_bytes: u64,
    next_offset: i64,
    dirty: bool,
    new_segment: bool,
}

impl WritePartition {
    /// Opens the last segment of `dir` (creating the first one), truncating a torn tail.
    fn open(dir: PathBuf) -> Result<WritePartition> {
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let segs = list_segments(&dir)?;
        let (first, path, new_segment) = match segs.last() {
            Some((first, path)) => (*first, path.clone(), false),
            None => (0, dir.join(segment_name(0)), true),
        };
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        // Count complete lines; a tail without a newline is a write the crash tore.
        let mut reader = BufReader::with_capacity(1 << 20, &mut f);
        let mut lines: i64 = 0;
        let mut complete_len: u64 = 0;
        let mut pos: u64 = 0;
        loop {
            let buf = reader.fill_buf().map_err(io_err("read", &path))?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            for (i, &b) in buf.iter().enumerate() {
                if b == b'\n' {
                    lines += 1;
                    complete_len = pos + i as u64 + 1;
                }
            }
            pos += n as u64;
            reader.consume(n);
        }
        drop(reader);
        if pos != complete_len {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = pos - complete_len,
                "truncating a torn last line left by a crash"
            );
            f.set_len(complete_len).map_err(io_err("truncate", &path))?;
            f.sync_all().map_err(io_err("sync", &path))?;
        }
        f.seek(SeekFrom::End(0)).map_err(io_err("seek", &path))?;
        Ok(WritePartition {
            dir,
            file: BufWriter::with_capacity(1 << 20, f),
            path,
            segment_bytes: complete_len,
            next_offset: first + lines,
            dirty: new_segment,
            new_segment,
        })
    }

    fn roll(&mut self) -> Result<()> {
        // Everything of the old segment reaches the OS before the new segment exists:
        // a reader that sees the new file can finish the old one first.
        self.sync()?;
        let path = self.dir.join(segment_name(self.next_offset));
        let f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        self.file = BufWriter::with_capacity(1 << 20, f);
        self.path = path;
        self.segment_bytes = 0;
        self.new_segment = true;
        self.dirty = true;
        Ok(())
    }

    fn append(&mut self, payload: &[u8], max_segment: u64) -> Result<i64> {
        if self.segment_bytes > 0 && self.segment_bytes + payload.len() as u64 + 1 > max_segment {
            self.roll()?;
        }
        self.file
            .write_all(payload)
            .and_then(|()| self.file.write_all(b"\n"))
            .map_err(io_err("append to", &self.path))?;
        self.segment_bytes += payload.len() as u64 + 1;
        self.dirty = true;
        let off = self.next_offset;
        self.next_offset += 1;
        Ok(off)
    }

    fn sync(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.file.flush().map_err(io_err("write", &self.path))?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(io_err("sync", &self.path))?;
        if self.new_segment {
            sync_dir(&self.dir)?;
            self.new_segment = false;
        }
        self.dirty = false;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

/// Appends messages to the local log (`culla produce --data DIR`).
pub struct LocalLogSink {
    log_dir: PathBuf,
    default_partitions: u32,
    max_segment: u64,
    topics: BTreeMap<String, (u32, BTreeMap<i32, WritePartition>)>,
    _lock: File,
}

impl LocalLogSink {
    /// Opens the log in `log_dir` (`DIR/log`) for writing; new topics get
    /// `default_partitions` partitions. Fails if another process is writing to it.
    pub fn open(log_dir: impl Into<PathBuf>, default_partitions: u32) -> Result<LocalLogSink> {
        let log_dir = log_dir.into();
        if default_partitions == 0 {
            return Err(Error::BadInput(
                "the local log needs at least one partition per topic".into(),
            ));
        }
        fs::create_dir_all(&log_dir).map_err(io_err("create", &log_dir))?;
        let lp = log_dir.join(".write.lock");
        let lock = crate::files::open_lock_file(&lp)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::BadInput(format!(
                    "another process is writing to the local log {}; wait for it to finish",
                    log_dir.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lp)(e)),
        }
        log_id(&log_dir)?;
        Ok(LocalLogSink {
            log_dir,
            default_partitions,
            max_segment: DEFAULT_SEGMENT_BYTES,
            topics: BTreeMap::new(),
            _lock: lock,
        })
    }

    /// Sets the size past which a new segment is started (tests use small ones).
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.max_segment = bytes.max(1);
        self
    }

    fn topic_partitions(&mut self, topic: &str) -> Result<u32> {
        if let Some((n, _)) = self.topics.get(topic) {
            return Ok(*n);
        }
        check_topic_name(topic)?;
        let n = match read_meta(&self.log_dir, topic)? {
            Some(m) if m.partitions > 0 => m.partitions,
            Some(_) => {
                return Err(Error::BadInput(format!(
                    "local log topic {topic} has zero partitions in its meta.json"
                )));
            }
            None => {
                let tdir = self.log_dir.join(topic);
                fs::create_dir_all(&tdir).map_err(io_err("create", &tdir))?;
                let meta = TopicMeta {
                    partitions: self.default_partitions,
                };
                let tmp = tdir.join(".meta.json.tmp");
                let body = serde_json::to_vec_pretty(&meta)
                    .map_err(|e| Error::BadInput(format!("cannot encode topic metadata: {e}")))?;
                fs::write(&tmp, body).map_err(io_err("write", &tmp))?;
                File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(io_err("sync", &tmp))?;
                let dest = tdir.join("meta.json");
                fs::rename(&tmp, &dest).map_err(io_err("rename", &dest))?;
                sync_dir(&tdir)?;
                sync_dir(&self.log_dir)?;
                meta.partitions
            }
        };
        self.topics.insert(topic.to_string(), (n, BTreeMap::new()));
        Ok(n)
    }

    /// Appends one message; returns its (partition, offset).
    pub fn append(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> Result<(i32, i64)> {
        if payload.contains(&b'\n') {
            return Err(Error::BadInput(format!(
                "a message for topic {topic} contains a newline; the local log stores one message per line"
            )));
        }
        let n = self.topic_partitions(topic)?;
        let p = partition_of(key, n);
        let max_segment = self.max_segment;
        let parts = &mut self
            .topics
            .get_mut(topic)
            .ok_or_else(|| Error::BadInput(format!("topic {topic} vanished")))?
            .1;
        let wp = match parts.entry(p) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let dir = self.log_dir.join(topic).join(p.to_string());
                v.insert(WritePartition::open(dir)?)
            }
        };
        let off = wp.append(payload, max_segment)?;
        Ok((p, off))
    }
}

impl EventSink for LocalLogSink {
    fn send(&mut self, topic: &str, key: &[u8], payload: &[u8]) -> Result<()> {
        self.append(topic, key, payload).map(|_| ())
    }

    fn flush(&mut self) -> Result<()> {
        for (_, parts) in self.topics.values_mut() {
            for wp in parts.values_mut() {
                wp.sync()?;
            }
        }
        Ok(())
    }
}

impl Drop for LocalLogSink {
    fn drop(&mut self) {
        if let Err(e) = EventSink::flush(self) {
            tracing::warn!("cannot flush the local log on close: {e}");
        }
    }
}

/// Read position in one partition.
struct ReadPartition {
    topic: String,
    partition: i32,
    dir: PathBuf,
    /// Open segment, its path and the byte position of the next unread line.
    reader: Option<(BufReader<File>, PathBuf, u64)>,
    /// Offset of the next line to read.
    next_offset: i64,
    line: Vec<u8>,
    /// Not read until resumed ([`EventSource::set_paused`]).
    paused: bool,
}

/// Where `read_line` stopped.
enum Line {
    /// A complete line is in `self.line` (without its newline).
    Complete,
    /// Nothing more for now.
    End,
}

impl ReadPartition {
    /// Opens the partition at `start`; a partition that ends before `start` is an error
    /// (the log was truncated or replaced, see the module documentation).
    fn new(topic: &str, partition: i32, dir: PathBuf, start: Option<i64>) -> Result<ReadPartition> {
        let mut rp = ReadPartition {
            topic: topic.to_string(),
            partition,
            dir,
            reader: None,
            next_offset: 0,
            line: Vec::new(),
            paused: false,
        };
        let start = start.unwrap_or(0).max(0);
        rp.seek_to(start)?;
        if rp.next_offset < start {
            let log_dir = rp.dir.parent().and_then(Path::parent).unwrap_or(&rp.dir);
            return Err(Error::BadInput(format!(
                "the local log {} ends at offset {} of {topic}/{partition}, but the tables have read this log up to offset {start}: it was cut short or restored from an older copy, and what was written to it since would be skipped; to read it from its start as a new log, delete {} (events already stored are known by their event_id and kept once)",
                log_dir.display(),
                rp.next_offset,
                log_dir.join(LOG_ID_FILE).display()
            )));
        }
        Ok(rp)
    }

    /// Opens the segment holding `offset` and skips to that line.
    fn seek_to(&mut self, offset: i64) -> Result<()> {
        let segs = list_segments(&self.dir)?;
        let Some((first, path)) = segs.iter().rev().find(|(f, _)| *f <= offset).cloned() else {
            // Nothing written yet: wait at the first segment.
            self.reader = None;
            self.next_offset = segs.first().map_or(0, |(f, _)| (*f).min(offset));
            return Ok(());
        };
        let f = File::open(&path).map_err(io_err("open", &path))?;
        self.reader = Some((BufReader::with_capacity(1 << 20, f), path, 0));
        self.next_offset = first;
        while self.next_offset < offset {
            match self.read_line()? {
                Line::Complete => {}
                Line::End => break,
            }
        }
        Ok(())
    }

    /// Reads the next complete line into `self.line`, moving to the next segment at the
    /// end of one; a line without its newline yet is left for a later call.
    fn read_line(&mut self) -> Result<Line> {
        loop {
            if self.reader.is_none() {
                let path = self.dir.join(segment_name(self.next_offset));
                match File::open(&path) {
                    Ok(f) => self.reader = Some((BufReader::with_capacity(1 << 20, f), path, 0)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Line::End),
                    Err(e) => return Err(io_err("open", &path)(e)),
                }
            }
            let Some((reader, path, pos)) = self.reader.as_mut() else {
                return Ok(Line::End);
            };
            self.line.clear();
            let n = reader
                .read_until(b'\n', &mut self.line)
                .map_err(io_err("read", path))?;
            if n > 0 && self.line.last() == Some(&b'\n') {
                *pos += n as u64;
                self.line.pop();
                self.next_offset += 1;
                return Ok(Line::Complete);
            }
            if n > 0 {
                // A torn or half-written line: go back to its start and wait.
                let at = *pos;
                reader
                    .seek(SeekFrom::Start(at))
                    .map_err(io_err("seek", path))?;
                return Ok(Line::End);
            }
            // End of this segment: the next one exists only once this one is final.
            let next = self.dir.join(segment_name(self.next_offset));
            if next == *path || !next.exists() {
                return Ok(Line::End);
            }
            // The writer flushed this segment before creating the next: read what
            // arrived in between, then move on.
            let mut rest = Vec::new();
            reader
                .read_to_end(&mut rest)
                .map_err(io_err("read", path))?;
            if !rest.is_empty() {
                let at = *pos;
                reader
                    .seek(SeekFrom::Start(at))
                    .map_err(io_err("seek", path))?;
                self.line.clear();
                let n = reader
                    .read_until(b'\n', &mut self.line)
                    .map_err(io_err("read", path))?;
                if n > 0 && self.line.last() == Some(&b'\n') {
                    *pos += n as u64;
                    self.line.pop();
                    self.next_offset += 1;
                    return Ok(Line::Complete);
                }
                return Ok(Line::End);
            }
            self.reader = None;
        }
    }

    /// Whether every complete line written so far has been read.
    fn at_end(&mut self) -> Result<bool> {
        match &self.reader {
            None => {
                let next = self.dir.join(segment_name(self.next_offset));
                Ok(!next.exists())
            }
            Some((_, path, pos)) => {
                let len = fs::metadata(path).map_err(io_err("stat", path))?.len();
                if len > *pos {
                    // Bytes beyond the position: complete lines, or a torn tail that
                    // will never complete (a crashed writer) — only a newline counts.
                    let mut f = File::open(path).map_err(io_err("open", path))?;
                    f.seek(SeekFrom::Start(*pos))
                        .map_err(io_err("seek", path))?;
                    let mut tail = Vec::new();
                    f.read_to_end(&mut tail).map_err(io_err("read", path))?;
                    if tail.contains(&b'\n') {
                        return Ok(false);
                    }
                }
                let next = self.dir.join(segment_name(self.next_offset));
                Ok(next == *path || !next.exists())
            }
        }
    }
}

/// Reads the local log (`culla ingest` without `--brokers`); origin `log-<id>`.
pub struct LocalLogSource {
    log_dir: PathBuf,
    origin: String,
    topics: Vec<String>,
    start: StartOffsets,
    parts: Vec<ReadPartition>,
    known_topics: Vec<String>,
    cursor: usize,
}

impl LocalLogSource {
    /// Reads `topics` of the log in `log_dir` (`DIR/log`), each partition from
    /// `start(origin, topic, partition)` (the tables' next offset) or its beginning.
    /// Fails when a partition ends before its start offset.
    pub fn open(
        log_dir: impl Into<PathBuf>,
        topics: &[String],
        start: StartOffsets,
    ) -> Result<LocalLogSource> {
        for t in topics {
            check_topic_name(t)?;
        }
        let log_dir = log_dir.into();
        let origin = format!("log-{}", log_id(&log_dir)?);
        let mut s = LocalLogSource {
            log_dir,
            origin,
            topics: topics.to_vec(),
            start,
            parts: Vec::new(),
            known_topics: Vec::new(),
            cursor: 0,
        };
        s.discover()?;
        Ok(s)
    }

    /// Picks up topics created since the last look.
    fn discover(&mut self) -> Result<()> {
        for t in self.topics.clone() {
            if self.known_topics.contains(&t) {
                continue;
            }
            let Some(meta) = read_meta(&self.log_dir, &t)? else {
                continue;
            };
            for p in 0..meta.partitions as i32 {
                let start = (self.start)(&self.origin, &t, p);
                let dir = self.log_dir.join(&t).join(p.to_string());
                self.parts.push(ReadPartition::new(&t, p, dir, start)?);
            }
            self.known_topics.push(t);
        }
        Ok(())
    }
}

impl EventSource for LocalLogSource {
    fn can_pause(&self) -> bool {
        true
    }

    fn set_paused(&mut self, parts: &[(String, i32)], paused: bool) -> Result<()> {
        for rp in &mut self.parts {
            if parts
                .iter()
                .any(|(t, p)| *p == rp.partition && *t == rp.topic)
            {
                rp.paused = paused;
            }
        }
        Ok(())
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Polled> {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        loop {
            if self.known_topics.len() < self.topics.len() {
                self.discover()?;
            }
            let n = self.parts.len();
            // Round robin in chunks, so one busy partition cannot starve the others.
            let chunk = (max / n.max(1)).max(1);
            let mut idle_parts = 0;
            for i in 0..n {
                if messages.len() >= max {
                    break;
                }
                let rp = &mut self.parts[(self.cursor + i) % n];
                if rp.paused {
                    idle_parts += 1;
                    continue;
                }
                let mut got = 0;
                while got < chunk && messages.len() < max {
                    match rp.read_line()? {
                        Line::Complete => {
                            messages.push(Message {
                                topic: rp.topic.clone(),
                                partition: rp.partition,
                                offset: rp.next_offset - 1,
                                key: None,
                                payload: rp.line.clone(),
                            });
                            got += 1;
                        }
                        Line::End => break,
                    }
                }
                if got == 0 {
                    idle_parts += 1;
                }
            }
            if n > 0 {
                self.cursor = (self.cursor + 1) % n;
            }
            if !messages.is_empty() && (messages.len() >= max || idle_parts == n) {
                return Ok(Polled {
                    messages,
                    ..Polled::default()
                });
            }
            if !messages.is_empty() && idle_parts < n {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Polled {
                    messages,
                    ..Polled::default()
                });
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
        }
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.parts
            .iter()
            .map(|p| (p.topic.clone(), p.partition))
            .collect()
    }

    fn caught_up(&mut self) -> Result<bool> {
        self.discover()?;
        for p in &mut self.parts {
            if !p.at_end()? {
                return Ok(false);
            }
        }
        // The local log is known at once: topics that do not exist have nothing to read.
        Ok(true)
    }

    fn commit_hint(&mut self, _next_offsets: &[(String, i32, i64)]) -> Result<()> {
        // The tables' transactions are the only record of progress for the local log.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn from_start() -> StartOffsets {
        Arc::new(|_, _, _| None)
    }

    fn drain(src: &mut LocalLogSource) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let p = src.poll(7, Duration::from_millis(1)).unwrap();
            if p.messages.is_empty() {
                break;
            }
            all.extend(p.messages);
        }
        all
    }

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // Test vectors of the FNV reference (draft-eastlake-fnv): "" and "a", "foobar".
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn messages_come_back_with_offsets_across_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        let mut sink = LocalLogSink::open(&log, 2).unwrap().with_segment_bytes(40);
        for i in 0..30 {
            sink.send(
                "calls",
                format!("k{}", i % 5).as_bytes(),
                format!("msg-{i:03}").as_bytes(),
            )
            .unwrap();
        }
        sink.flush().unwrap();
        // 8-byte lines, 40-byte segments: 5 lines per segment.
        let p0 = list_segments(&log.join("calls/0")).unwrap();
        assert!(p0.len() > 1, "segments rolled: {p0:?}");
        let mut src = LocalLogSource::open(&log, &["calls".into()], from_start()).unwrap();
        let all = drain(&mut src);
        assert_eq!(all.len(), 30);
        for part in 0..2 {
            let offs: Vec<i64> = all
                .iter()
                .filter(|m| m.partition == part)
                .map(|m| m.offset)
                .collect();
            let expect: Vec<i64> = (0..offs.len() as i64).collect();
            assert_eq!(offs, expect);
        }
        assert!(src.caught_up().unwrap());
        // Start in the middle: the right segment is found by name.
        let mid: StartOffsets = Arc::new(|_, _, p| if p == 0 { Some(7) } else { Some(0) });
        let mut src = LocalLogSource::open(&log, &["calls".into()], mid).unwrap();
        let all2 = drain(&mut src);
        let first0 = all2.iter().find(|m| m.partition == 0).unwrap();
        assert_eq!(first0.offset, 7);
        let same = all
            .iter()
            .find(|m| m.partition == 0 && m.offset == 7)
            .unwrap();
        assert_eq!(first0.payload, same.payload);
    }

    #[test]
    fn a_torn_line_is_not_read_and_is_truncated_by_the_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        {
            let mut sink = LocalLogSink::open(&log, 1).unwrap();
            sink.send("chats", b"k", b"one").unwrap();
            sink.send("chats", b"k", b"two").unwrap();
        }
        let seg = log.join("chats/0").join(segment_name(0));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"half").unwrap();
        drop(f);
        let mut src = LocalLogSource::open(&log, &["chats".into()], from_start()).unwrap();
        let got = drain(&mut src);
        assert_eq!(got.len(), 2);
        assert!(src.caught_up().unwrap(), "a torn tail is not more data");
        {
            let mut sink = LocalLogSink::open(&log, 1).unwrap();
            sink.send("chats", b"k", b"three").unwrap();
        }
        assert_eq!(fs::read(&seg).unwrap(), b"one\ntwo\nthree\n");
        let got = drain(&mut src);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].offset, 2);
        assert_eq!(got[0].payload, b"three");
    }

    #[test]
    fn a_log_has_one_identity_and_a_short_log_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("log");
        let reader = LocalLogSource::open(&log, &["chats".into()], from_start()).unwrap();
        {
            let mut sink = LocalLogSink::open(&log, 1).unwrap();
            for m in [b"a", b"b", b"c"] {
                sink.send("chats", b"k", m).unwrap();
            }
        }
        // The reader created the id before the first message; the writer kept it.
        assert_eq!(reader.origin(), format!("log-{}", log_id(&log).unwrap()));
        assert_eq!(log_id(&log).unwrap(), log_id(&log).unwrap());
        let past_end: StartOffsets = Arc::new(|_, _, _| Some(5));
        let err = LocalLogSource::open(&log, &["chats".into()], past_end.clone())
            .err()
            .expect("a log shorter than the committed offset is refused");
        let msg = err.to_string();
        assert!(msg.contains("ends at offset 3 of chats/0"), "{msg}");
        assert!(msg.contains("up to offset 5"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        // A partition with no segment at all is just as short.
        fs::remove_dir_all(log.join("chats/0")).unwrap();
        assert!(LocalLogSource::open(&log, &["chats".into()], past_end).is_err());
        // The fix the message names: a new identity, read from the start.
        fs::remove_dir_all(&log).unwrap();
        let fresh = LocalLogSource::open(&log, &["chats".into()], from_start()).unwrap();
        assert_ne!(fresh.origin(), reader.origin());
    }
}
