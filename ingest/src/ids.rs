//! The `event_id` index that deduplication checks every event against.
//!
//! Every stored `event_id` must be known to the writer, so its memory grows with the data
//! directory, not with the backlog being read. [`IdIndex`] keeps that growth small: a
//! stored id costs 6 bytes, a 48-bit fingerprint of it (16 bits choose one of 65,536
//! sorted shards, the other 32 are kept) and the id's event date (days since 1970-01-01
//! in 16 bits). A fingerprint match is never taken on trust: the full ids of that date's
//! stored files are read (and cached for a few dates) and compared exactly, so a
//! coincidence of fingerprints (odds about one in 28 million for a new event against ten
//! million stored ones) costs one read and never drops an event. Ids accepted but not
//! committed yet are kept whole in a small exact set.
//!
//! Compared with a hash set of 128-bit ids (16 bytes plus the table's slack, and twice
//! that while it grows: ~32 bytes an id), this takes a fifth of the memory, and grows a
//! shard at a time instead of rehashing everything at once.

use crate::Result;
use crate::files;
use chrono::NaiveDate;
use culla_schemas::layout::{self, DataDir, TABLE_EVENTS};
use culla_table::{FileEntry, Snapshot};
use datafusion::arrow::array::AsArray;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

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
        self.0 = mix(i);
    }
}

/// 64 well-mixed bits of a 128-bit id (time-ordered UUIDs have few random high bits).
fn mix(i: u128) -> u64 {
    let x = (i as u64) ^ ((i >> 64) as u64).rotate_left(29);
    let x = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// An exact set of 128-bit ids.
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

/// Event dates as 16-bit day numbers (days since 1970-01-01); [`NO_DAY`] for dates
/// outside 1970–2149, whose ids are then checked against every stored file.
pub fn day_number(date: NaiveDate) -> u16 {
    let days = date.signed_duration_since(NaiveDate::default()).num_days();
    u16::try_from(days)
        .ok()
        .filter(|&d| d != NO_DAY)
        .unwrap_or(NO_DAY)
}

/// The day number of dates [`day_number`] cannot encode.
pub const NO_DAY: u16 = u16::MAX;

/// Reads the `event_id`s of one stored `events` file into `f`.
pub fn read_file_ids(dir: &DataDir, entry: &FileEntry, mut f: impl FnMut(u128)) -> Result<()> {
    let path = dir.resolve(&entry.path);
    for batch in files::open_parquet(&path, Some(&["event_id"]))? {
        let batch = batch?;
        for v in batch.column(0).as_string::<i32>().iter().flatten() {
            f(id128(v));
        }
    }
    Ok(())
}

/// The event date a stored `events` file's path names (`…/event_date=YYYY-MM-DD/…`).
pub fn file_day(entry: &FileEntry) -> u16 {
    layout::partition_value(&entry.path, "event_date")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .map_or(NO_DAY, day_number)
}

/// Brings `snap` up to the manifest as it is now (reading only the commits it lacks)
/// under the directory's shared read lock, which the caller holds while reading the
/// files it lists: a compaction (which swaps files under the exclusive lock) may have
/// replaced files since, but never the ids they hold. Ids committed by other writers
/// may show too; they are stored, so finding one is right.
fn current_files(dir: &DataDir, snap: &mut Snapshot) -> Result<std::fs::File> {
    let lock = layout::read_lock_shared(dir)?;
    culla_table::catch_up(dir, snap)?;
    Ok(lock)
}

/// Shards of the stored fingerprints (the high 16 bits of [`mix`] choose one).
const SHARDS: usize = 1 << 16;

/// Dates whose exact ids are cached for verifying fingerprint matches.
const CACHED_DAYS: usize = 8;

/// One shard: fingerprints sorted, each with the day number of the file it is in.
#[derive(Default, Clone)]
struct Shard {
    fps: Vec<u32>,
    days: Vec<u16>,
}

impl Shard {
    /// Makes room for one more, growing by an eighth (not doubling: every shard fills at
    /// the same pace, so doubling would leave them all half empty at once).
    fn grow(&mut self) {
        if self.fps.len() == self.fps.capacity() {
            let more = self.fps.len() / 8 + 4;
            self.fps.reserve_exact(more);
            self.days.reserve_exact(more);
        }
    }

    fn insert(&mut self, fp: u32, day: u16) {
        self.grow();
        let at = self.fps.partition_point(|&x| x < fp);
        self.fps.insert(at, fp);
        self.days.insert(at, day);
    }

    /// Days of the entries with fingerprint `fp`.
    fn days_of(&self, fp: u32) -> impl Iterator<Item = u16> + '_ {
        let from = self.fps.partition_point(|&x| x < fp);
        self.fps[from..]
            .iter()
            .zip(&self.days[from..])
            .take_while(move |(x, _)| **x == fp)
            .map(|(_, d)| *d)
    }
}

/// Stored ids as fingerprints, pending ids exactly; see the module docs.
pub struct IdIndex {
    shards: Vec<Shard>,
    stored: u64,
    /// Ids accepted since the last commit.
    pending: IdSet,
    /// Exact ids of recently verified dates, most recent first.
    days: Vec<(u16, IdSet)>,
    /// The manifest state verification reads files from (kept current on demand).
    snap: Snapshot,
    /// Fingerprint matches checked against stored files (for tests and logs).
    pub verifications: u64,
}

impl Default for IdIndex {
    fn default() -> Self {
        IdIndex {
            shards: vec![Shard::default(); SHARDS],
            stored: 0,
            pending: IdSet::default(),
            days: Vec::new(),
            snap: Snapshot::default(),
            verifications: 0,
        }
    }
}

/// The shard and the fingerprint of `id`: 16 + 32 bits of [`mix`].
fn fingerprint(id: u128) -> (usize, u32) {
    let h = mix(id);
    ((h >> 48) as usize, (h >> 16) as u32)
}

impl IdIndex {
    /// The index of every live `events` file of `snap`.
    pub fn load(dir: &DataDir, snap: &Snapshot) -> Result<IdIndex> {
        let mut idx = IdIndex {
            snap: snap.clone(),
            ..IdIndex::default()
        };
        // Appended unsorted, then each shard sorted once.
        for f in snap.live_files(TABLE_EVENTS) {
            let day = file_day(f);
            read_file_ids(dir, f, |id| {
                let (s, fp) = fingerprint(id);
                let shard = &mut idx.shards[s];
                shard.grow();
                shard.fps.push(fp);
                shard.days.push(day);
            })?;
        }
        let mut pairs: Vec<u64> = Vec::new();
        for shard in &mut idx.shards {
            pairs.clear();
            pairs.extend(
                shard
                    .fps
                    .iter()
                    .zip(&shard.days)
                    .map(|(&fp, &d)| (u64::from(fp) << 16) | u64::from(d)),
            );
            pairs.sort_unstable();
            for (k, &e) in pairs.iter().enumerate() {
                shard.fps[k] = (e >> 16) as u32;
                shard.days[k] = e as u16;
            }
            idx.stored += pairs.len() as u64;
        }
        Ok(idx)
    }

    /// Stored ids (fingerprints) known.
    pub fn stored_len(&self) -> u64 {
        self.stored
    }

    /// Bytes the index holds (shards, pending set and cached dates), roughly.
    pub fn heap_bytes(&self) -> usize {
        let shards: usize = self
            .shards
            .iter()
            .map(|s| s.fps.capacity() * 4 + s.days.capacity() * 2)
            .sum();
        let sets: usize = self.days.iter().map(|(_, s)| s.capacity() * 17).sum();
        shards + SHARDS * size_of::<Shard>() + self.pending.capacity() * 17 + sets
    }

    /// Accepts `id` as pending unless it is stored or pending
    /// already; true if it is new. Reads stored files only on a fingerprint match.
    pub fn insert_pending(&mut self, dir: &DataDir, id: u128) -> Result<bool> {
        if self.pending.contains(&id) || self.is_stored(dir, id)? {
            return Ok(false);
        }
        self.pending.insert(id);
        Ok(true)
    }

    /// Forgets a pending id (its row was dropped before the commit).
    pub fn remove_pending(&mut self, id: &u128) {
        self.pending.remove(id);
    }

    /// Whether `id` is pending.
    pub fn is_pending(&self, id: &u128) -> bool {
        self.pending.contains(id)
    }

    /// Forgets every pending id (after a commit has [stored](Self::insert_stored) them,
    /// or when the pending rows are abandoned).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
        if self.pending.capacity() > 1 << 20 {
            self.pending = IdSet::default();
        }
    }

    /// Records `id` as stored in a file of `day` (a commit, ours or another writer's).
    pub fn insert_stored(&mut self, id: u128, day: u16) {
        let (s, fp) = fingerprint(id);
        self.shards[s].insert(fp, day);
        self.stored += 1;
        if let Some((_, set)) = self.days.iter_mut().find(|(d, _)| *d == day) {
            set.insert(id);
        }
    }

    /// Whether `id` is among the stored events: a fingerprint lookup, then an exact check
    /// against the stored ids of each date a matching fingerprint names.
    pub fn is_stored(&mut self, dir: &DataDir, id: u128) -> Result<bool> {
        let (s, fp) = fingerprint(id);
        let days: Vec<u16> = self.shards[s].days_of(fp).collect();
        for day in days {
            self.verifications += 1;
            if day == NO_DAY {
                // Dates outside 1970–2149: look through every stored file, keep nothing.
                let mut found = false;
                let _lock = current_files(dir, &mut self.snap)?;
                for f in self.snap.live_files(TABLE_EVENTS) {
                    read_file_ids(dir, f, |x| found |= x == id)?;
                }
                if found {
                    return Ok(true);
                }
            } else if self.day_ids(dir, day)?.contains(&id) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The exact stored ids of `day`, cached (the most recently used first).
    fn day_ids(&mut self, dir: &DataDir, day: u16) -> Result<&IdSet> {
        if let Some(i) = self.days.iter().position(|(d, _)| *d == day) {
            let hit = self.days.remove(i);
            self.days.insert(0, hit);
        } else {
            let mut set = IdSet::default();
            let _lock = current_files(dir, &mut self.snap)?;
            for f in self
                .snap
                .live_files(TABLE_EVENTS)
                .filter(|f| file_day(f) == day)
            {
                read_file_ids(dir, f, |id| {
                    set.insert(id);
                })?;
            }
            self.days.truncate(CACHED_DAYS - 1);
            self.days.insert(0, (day, set));
        }
        Ok(&self.days[0].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a date")
    }

    #[test]
    fn day_numbers_cover_1970_to_2149_and_nothing_else() {
        assert_eq!(day_number(date(1970, 1, 1)), 0);
        assert_eq!(day_number(date(1970, 2, 1)), 31);
        // 2024-03-05: 54 years of 365 days, 13 leap days (1972…2020), then 31 + 29 + 4.
        assert_eq!(day_number(date(2024, 3, 5)), 54 * 365 + 13 + 64);
        assert_eq!(day_number(date(1969, 12, 31)), NO_DAY);
        assert_eq!(day_number(date(2200, 1, 1)), NO_DAY);
        let e = |path: &str| FileEntry {
            table: TABLE_EVENTS.into(),
            path: path.into(),
            rows: 0,
            bytes: 0,
        };
        assert_eq!(
            file_day(&e("events/source=a/event_date=1970-01-02/p.parquet")),
            1
        );
        assert_eq!(file_day(&e("events/source=a/p.parquet")), NO_DAY);
    }

    #[test]
    fn a_fingerprint_match_is_checked_against_the_stored_files() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let dir = DataDir::new(tmp.path());
        let mut idx = IdIndex::default();
        // The fingerprint of id 7 is known under a date whose files do not hold id 7
        // (as a coincidence of fingerprints would look): 7 is still new.
        let day = day_number(date(2024, 3, 5));
        idx.insert_stored(7, day);
        assert!(idx.insert_pending(&dir, 7).expect("checked"));
        assert_eq!(idx.verifications, 1);
        // Pending now: a second copy is a duplicate without reading anything.
        assert!(!idx.insert_pending(&dir, 7).expect("checked"));
        assert_eq!(idx.verifications, 1);
        // An id with no fingerprint match is new without reading anything.
        assert!(idx.insert_pending(&dir, 8).expect("checked"));
        assert_eq!(idx.verifications, 1);
        idx.remove_pending(&8);
        assert!(!idx.is_pending(&8));
    }

    #[test]
    fn shards_stay_sorted_and_hold_every_entry() {
        let mut idx = IdIndex::default();
        let ids: Vec<u128> = (0..1_000_000u128)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
            .collect();
        for (k, id) in ids.iter().enumerate() {
            idx.insert_stored(*id, (k % 400) as u16);
        }
        assert_eq!(idx.stored_len(), 1_000_000);
        assert!(idx.shards.iter().all(|s| s.fps.is_sorted()));
        assert!(idx.shards.iter().all(|s| s.fps.len() == s.days.len()));
        assert_eq!(
            idx.shards.iter().map(|s| s.fps.len()).sum::<usize>(),
            1_000_000
        );
        for (k, id) in ids.iter().enumerate().step_by(997) {
            let (s, fp) = fingerprint(*id);
            assert!(idx.shards[s].days_of(fp).any(|d| d == (k % 400) as u16));
        }
        // About 6 bytes an id, not the 16+ of a hash set of 128-bit ids.
        let per_id = (idx.heap_bytes() - SHARDS * size_of::<Shard>()) as f64 / 1_000_000.0;
        assert!(per_id < 7.5, "{per_id} bytes an id");
    }
}
