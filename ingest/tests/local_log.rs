//! The local log → Parquet path end to end, in-process: exactly-once with duplicates and
//! malformed lines, recovery after each kind of crash, compaction, replay.
//!
//! Expected numbers come from how each input is built (N valid lines, D duplicated
//! lines, B bad lines of known reasons), never from the code's own output.

mod common;

use culla_ingest::compact::{CompactOptions, compact};
use culla_ingest::deadletters;
use culla_ingest::files::Staging;
use culla_ingest::locallog::{LocalLogSink, LocalLogSource};
use culla_ingest::pipeline::{self, IngestOptions, IngestSummary, stored_events};
use culla_ingest::produce::produce;
use culla_ingest::recovery::recover;
use culla_table::{DataDir, Snapshot, TABLE_DEAD_LETTERS, TABLE_EVENTS};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

/// A valid event line with id number `i`, on day `day` (0..3) of March 2024, source by parity.
fn valid(i: u32) -> String {
    let day = 4 + (i % 3);
    let source = if i.is_multiple_of(2) {
        "milano-020202"
    } else {
        "melzo-1000giorni"
    };
    format!(
        r#"{{"event_id":"00000000-0000-4000-8000-{i:012x}","type":"call.received","v":1,"at":"2024-03-{day:02}T10:00:00+01:00","source":"{source}","contact_id":"c-{i}","family":"{:016x}","ivr_path":"4-3"}}"#,
        0xabc0_0000_u64 + u64::from(i % 17)
    )
}

fn id(i: u32) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

/// Bad lines of known reasons: 5 not_json, 3 bad_family, 2 unknown_type.
fn bad_lines() -> Vec<(String, &'static str)> {
    let mut v = Vec::new();
    for i in 0..5 {
        v.push((format!("{{not json {i}"), "not_json"));
    }
    for i in 0..3 {
        v.push((
            valid(900_000 + i).replace("\"family\":\"0000", "\"family\":\"XYZ0"),
            "bad_family",
        ));
    }
    for i in 0..2 {
        v.push((
            valid(910_000 + i).replace("call.received", "call.teleported"),
            "unknown_type",
        ));
    }
    v
}

fn put(dir: &DataDir, lines: &[String]) {
    let text = lines.join("\n") + "\n";
    let mut sink = LocalLogSink::open(dir.log_dir(), 3).unwrap();
    produce(&mut text.as_bytes(), &mut sink, "calls").unwrap();
}

fn ingest(dir: &DataDir, max_file_bytes: usize) -> IngestSummary {
    let topics: Vec<String> = ["calls", "chats", "referrals"].map(String::from).to_vec();
    let mut src =
        LocalLogSource::open(dir.log_dir(), &topics, pipeline::start_offsets(dir)).unwrap();
    let opts = IngestOptions {
        until_idle: true,
        max_file_bytes,
        poll_max: 64,
        flush_interval: Duration::from_secs(60),
        ..IngestOptions::default()
    };
    pipeline::run(&mut src, dir, &opts, &AtomicBool::new(false)).unwrap()
}

fn ids_once(dir: &DataDir) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in stored_events(dir).unwrap() {
        *m.entry(e.event_id).or_default() += 1;
    }
    m
}

#[test]
fn every_valid_event_once_every_bad_one_in_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    // 300 valid, each of the first 20 sent twice more (40 duplicates), 10 bad.
    let mut lines: Vec<String> = (0..300).map(valid).collect();
    for i in 0..20 {
        lines.push(valid(i));
        lines.insert(150, valid(i));
    }
    lines.extend(bad_lines().into_iter().map(|(l, _)| l));
    put(&dir, &lines);

    let s = ingest(&dir, 4096); // small flushes: several commits
    assert_eq!(s.events, 300);
    assert_eq!(s.duplicates, 40);
    assert_eq!(s.dead_letter_total(), 10);
    assert!(s.commits > 1, "small flushes make several commits: {s}");
    let ids = ids_once(&dir);
    assert_eq!(ids.len(), 300);
    assert!(ids.values().all(|&n| n == 1));
    assert!((0..300).all(|i| ids.contains_key(&id(i))));
    let counts = deadletters::counts(&dir).unwrap();
    let expect: BTreeMap<String, u64> = [("not_json", 5), ("bad_family", 3), ("unknown_type", 2)]
        .map(|(k, v)| (k.to_string(), v))
        .into();
    assert_eq!(counts, expect);

    // Files are partitioned by source and local date: 2 sources × 3 days.
    let snap = Snapshot::load(&dir).unwrap();
    let dirs: BTreeSet<String> = snap
        .live_files(TABLE_EVENTS)
        .map(|f| f.path.rsplit_once('/').unwrap().0.to_string())
        .collect();
    assert_eq!(dirs.len(), 6, "{dirs:?}");
    assert!(dirs.contains("events/source=milano-020202/event_date=2024-03-04"));

    // A second run finds nothing new; new lines plus old duplicates are handled.
    let s2 = ingest(&dir, 1 << 20);
    assert_eq!(
        (s2.events, s2.duplicates, s2.dead_letter_total()),
        (0, 0, 0)
    );
    let more: Vec<String> = (300..350).map(valid).chain((0..5).map(valid)).collect();
    put(&dir, &more);
    let s3 = ingest(&dir, 1 << 20);
    assert_eq!(
        (s3.events, s3.duplicates, s3.dead_letter_total()),
        (50, 5, 0)
    );
    assert_eq!(ids_once(&dir).len(), 350);

    // Lineage: (topic, partition, offset) is unique and dead letters do not overlap events.
    let stored = stored_events(&dir).unwrap();
    let lin: BTreeSet<_> = stored
        .iter()
        .map(|e| (e.topic.clone(), e.partition, e.offset))
        .collect();
    assert_eq!(lin.len(), stored.len());
    for d in deadletters::list(&dir, None).unwrap() {
        assert!(!lin.contains(&(d.topic.clone(), d.partition, d.offset)));
    }
}

#[test]
fn personal_data_is_masked_in_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let line = valid(1).replace("\"c-1\"", "\"+39 02 8845 6789\"");
    put(
        &dir,
        &[line, "{\"mail\": \"mario.rossi@example.com\" broken".into()],
    );
    let s = ingest(&dir, 1 << 20);
    assert_eq!(s.dead_letter_total(), 2);
    let snap = Snapshot::load(&dir).unwrap();
    for f in snap.live_files(TABLE_DEAD_LETTERS) {
        for b in culla_ingest::files::read_parquet(&dir.resolve(&f.path), None).unwrap() {
            for d in deadletters::from_batch(&b).unwrap() {
                let raw = String::from_utf8_lossy(&d.raw);
                assert!(d.redacted, "{raw}");
                assert!(
                    !raw.contains("8845") && !raw.contains("mario.rossi"),
                    "{raw}"
                );
            }
        }
    }
}

#[test]
fn recovery_deletes_dead_writers_uncommitted_files_and_removed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    put(&dir, &(0..60).map(valid).collect::<Vec<_>>());
    ingest(&dir, 1 << 20);
    let snap = Snapshot::load(&dir).unwrap();
    let f = snap.live_files(TABLE_EVENTS).next().unwrap().clone();
    let folder = f.path.rsplit_once('/').unwrap().0.to_string();

    // 1. Crash before the commit: a dead writer's file (no lock held) beside the
    // committed ones, which a plain glob of the folder would read.
    let orphan = dir.resolve(&format!(
        "{folder}/part-0123456789abcdef0123456789abcdef-x.parquet"
    ));
    std::fs::write(&orphan, b"half a file").unwrap();
    // A live writer's file in progress must survive, and so must a file culla did not write.
    let live = Staging::open(&dir).unwrap();
    let (_, in_progress) = live.new_file(&folder).unwrap();
    std::fs::write(&in_progress, b"being written").unwrap();
    let foreign = dir.resolve(&format!("{folder}/someone-elses.parquet"));
    std::fs::write(&foreign, b"not ours").unwrap();

    let (_, rep) = recover(&dir).unwrap();
    assert_eq!(rep.uncommitted_deleted, 1);
    assert!(dir.resolve(&f.path).exists());
    assert!(!orphan.exists());
    assert!(in_progress.exists());
    assert!(foreign.exists());
    drop(live);
    std::fs::remove_file(&foreign).unwrap();
    let (_, rep) = recover(&dir).unwrap();
    assert_eq!(
        rep.uncommitted_deleted, 1,
        "the dead writer's file in progress"
    );
    assert_eq!(ids_once(&dir).len(), 60);

    // 3. Crash after a compaction commit, before deleting the merged inputs.
    put(&dir, &(60..120).map(valid).collect::<Vec<_>>());
    ingest(&dir, 1 << 20);
    let before = Snapshot::load(&dir).unwrap();
    let c = compact(&dir, &CompactOptions::default()).unwrap();
    assert!(c.files_in >= 2);
    let after = Snapshot::load(&dir).unwrap();
    let gone: Vec<_> = before
        .files
        .keys()
        .filter(|p| !after.files.contains_key(*p))
        .cloned()
        .collect();
    assert_eq!(gone.len() as u64, c.files_in);
    // Put one removed file back, as if the delete never happened.
    let merged = after
        .files
        .values()
        .find(|f| !before.files.contains_key(&f.path))
        .unwrap();
    std::fs::copy(dir.resolve(&merged.path), dir.resolve(&gone[0])).unwrap();
    let (_, rep) = recover(&dir).unwrap();
    assert_eq!(rep.removed_deleted, 1);
    assert!(!dir.resolve(&gone[0]).exists());
    let (_, rep) = recover(&dir).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    assert_eq!(ids_once(&dir).len(), 120);
}

#[test]
fn compaction_keeps_rows_and_lineage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    // 5 rounds of 60 events: every (source, day) directory gets 5 files.
    for r in 0..5 {
        put(&dir, &(r * 60..(r + 1) * 60).map(valid).collect::<Vec<_>>());
        ingest(&dir, 1 << 20);
    }
    put(
        &dir,
        &bad_lines().into_iter().map(|(l, _)| l).collect::<Vec<_>>(),
    );
    ingest(&dir, 1 << 20);
    put(
        &dir,
        &bad_lines().into_iter().map(|(l, _)| l).collect::<Vec<_>>(),
    );
    ingest(&dir, 1 << 20);
    let before: BTreeSet<_> = stored_events(&dir).unwrap().into_iter().collect();
    let dead_before = deadletters::list(&dir, None).unwrap();
    let files_before = Snapshot::load(&dir).unwrap().files.len();
    assert_eq!(before.len(), 300);
    assert_eq!(files_before, 6 * 5 + 2);

    let c = compact(&dir, &CompactOptions::default()).unwrap();
    assert_eq!(c.files_in, 32);
    assert_eq!(c.files_out, 7);
    assert_eq!(c.rows, 300 + 20);
    let after: BTreeSet<_> = stored_events(&dir).unwrap().into_iter().collect();
    assert_eq!(before, after);
    assert_eq!(deadletters::list(&dir, None).unwrap(), dead_before);
    let snap = Snapshot::load(&dir).unwrap();
    assert_eq!(snap.files.len(), 7);
    // On disk: exactly the live files (the inputs are gone), beside the Delta logs.
    let mut on_disk = 0;
    for t in ["events", "dead_letters"] {
        for e in walk(&dir.resolve(t)) {
            assert!(snap.files.contains_key(&e), "{e} is not live");
            on_disk += 1;
        }
    }
    assert_eq!(on_disk, 7);
    // Nothing left to merge.
    assert_eq!(
        compact(&dir, &CompactOptions::default()).unwrap().files_in,
        0
    );
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.ends_with("_delta_log") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root.parent().unwrap()).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

#[test]
fn replay_turns_fixed_dead_letters_into_events_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    // 4 events dated 3 days ahead: in_future now, valid for a replay judged 5 days later.
    let ahead = (chrono::Utc::now() + chrono::Duration::days(3))
        .format("%Y-%m-%dT10:00:00Z")
        .to_string();
    let mut lines: Vec<String> = (0..4)
        .map(|i| {
            valid(500 + i)
                .replace("2024-03-05T10:00:00+01:00", &ahead)
                .replace("2024-03-04T10:00:00+01:00", &ahead)
                .replace("2024-03-06T10:00:00+01:00", &ahead)
        })
        .collect();
    lines.extend((0..3).map(|i| format!("not json {i}")));
    lines.extend((0..10).map(valid));
    put(&dir, &lines);
    let s = ingest(&dir, 1 << 20);
    assert_eq!(s.events, 10);
    assert_eq!(s.dead_letters.get("in_future"), Some(&4));
    assert_eq!(s.dead_letters.get("not_json"), Some(&3));

    let later = chrono::Utc::now() + chrono::Duration::days(5);
    // Only not_json: nothing becomes valid, nothing is committed.
    let seq = Snapshot::load(&dir).unwrap().seq;
    let r = deadletters::replay_at(&dir, Some("not_json"), later).unwrap();
    assert_eq!((r.examined, r.replayed, r.still_invalid), (3, 0, 3));
    assert_eq!(Snapshot::load(&dir).unwrap().seq, seq);

    let r = deadletters::replay_at(&dir, None, later).unwrap();
    assert_eq!(
        (r.examined, r.replayed, r.still_invalid, r.duplicates),
        (7, 4, 3, 0)
    );
    let ids = ids_once(&dir);
    assert_eq!(ids.len(), 14);
    assert!((500..504).all(|i| ids[&id(i)] == 1));
    let counts = deadletters::counts(&dir).unwrap();
    assert_eq!(counts, [("not_json".to_string(), 3)].into());
    // A second replay finds nothing to turn into events.
    let r = deadletters::replay_at(&dir, None, later).unwrap();
    assert_eq!((r.examined, r.replayed), (3, 0));
    assert_eq!(ids_once(&dir).len(), 14);
    // Replayed rows keep their lineage from the log.
    let stored = stored_events(&dir).unwrap();
    let e = stored.iter().find(|e| e.event_id == id(500)).unwrap();
    assert_eq!(e.topic, "calls");
}

#[test]
fn parquet_opens_in_duckdb() {
    let python = std::env::var("CULLA_PYTHON").unwrap_or_else(|_| "python3".into());
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    put(&dir, &(0..90).map(valid).collect::<Vec<_>>());
    ingest(&dir, 1 << 20);
    let script = r#"
import sys
try:
    import duckdb
except ImportError:
    sys.exit("the duckdb Python module is missing: set CULLA_PYTHON to the venv's python")
root = sys.argv[1]
con = duckdb.connect()
n, ids, src, days = con.execute(f"select count(*), count(distinct event_id), count(distinct source), count(distinct event_date) from read_parquet('{root}/events/**/*.parquet', hive_partitioning=true)").fetchone()
t = con.execute(f"select typeof(\"at\"), typeof(at_local) from read_parquet('{root}/events/**/*.parquet') limit 1").fetchone()
first = con.execute(f"select strftime(at_local, '%Y-%m-%d %H:%M') from read_parquet('{root}/events/**/*.parquet') where event_id = '00000000-0000-4000-8000-000000000000'").fetchone()[0]
print(n, ids, src, days, t[0], t[1], first)
"#;
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(tmp.path())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set CULLA_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 90 events, 2 sources, 3 days; event 0 is 2024-03-04 10:00 +01:00 (day 4 + 0 % 3), i.e. 10:00 in Rome.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "90 90 2 3 TIMESTAMP WITH TIME ZONE TIMESTAMP 2024-03-04 10:00"
    );
}

/// A log where `calls` holds 10 events a day and `chats` one, each over 120 days in time
/// order; returns the event count.
fn two_paces(dir: &DataDir) -> usize {
    let mut sink = LocalLogSink::open(dir.log_dir(), 1).unwrap();
    common::two_paces(|topic, line| {
        sink.append(topic, b"k", line.as_bytes()).unwrap();
    })
}

fn ingest_paced(dir: &DataDir, pace: bool) -> IngestSummary {
    ingest_paced_until(dir, pace, &AtomicBool::new(false))
}

/// [`ingest_paced`], stopping (committing what it read) once `stop` is set.
fn ingest_paced_until(dir: &DataDir, pace: bool, stop: &AtomicBool) -> IngestSummary {
    let topics: Vec<String> = ["calls", "chats"].map(String::from).to_vec();
    let mut src =
        LocalLogSource::open(dir.log_dir(), &topics, pipeline::start_offsets(dir)).unwrap();
    let opts = IngestOptions {
        until_idle: true,
        max_file_bytes: 30_000,
        poll_max: 8, // turns of 4 messages a partition: 4 days of chats
        flush_interval: Duration::from_secs(60),
        pace: Some(pace),
        ..IngestOptions::default()
    };
    pipeline::run(&mut src, dir, &opts, stop).unwrap()
}

#[test]
fn partitions_read_in_step_write_fewer_files_and_every_event_once() {
    // Read in turns of equal message counts, the chats (a tenth of the calls) run
    // through the 120 days in the first commits, so those commits hold a file for
    // nearly every day; paced, each commit holds the ~12 days its calls cover (+3 days
    // of slack). Both runs must store every event exactly once.
    let mut files = Vec::new();
    for pace in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let n = two_paces(&dir);
        let s = ingest_paced(&dir, pace);
        assert_eq!(s.events as usize, n);
        common::assert_each_once(
            stored_events(&dir).unwrap().into_iter().map(|e| e.event_id),
            n,
        );
        files.push(s.files);
    }
    common::assert_fewer_files(files[0], files[1]);
}

#[test]
fn a_partition_far_behind_in_event_time_never_stalls_ingest() {
    // `chats` hold events a year older than `calls`: the calls wait while the chats are
    // read, and go on once the chats are done (a poll without chats resumes them).
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path());
    let mut sink = LocalLogSink::open(dir.log_dir(), 1).unwrap();
    for i in 0..500u32 {
        sink.append("calls", b"k", common::on_day(i, 400 + i % 30).as_bytes())
            .unwrap();
    }
    for i in 0..300u32 {
        sink.append("chats", b"k", common::on_day(10_000 + i, i % 30).as_bytes())
            .unwrap();
    }
    drop(sink); // flushes the log
    // A stall would otherwise hang until the test runner's timeout: a watchdog stops
    // ingest after 60 s (it takes well under a second), which then commits what it read
    // and fails the count below.
    let stop = AtomicBool::new(false);
    let s = std::thread::scope(|scope| {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let stop = &stop;
        scope.spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(Duration::from_secs(60)) {
                stop.store(true, Ordering::SeqCst);
            }
        });
        let s = ingest_paced_until(&dir, true, stop);
        drop(done);
        s
    });
    assert!(
        !stop.load(Ordering::SeqCst),
        "ingest stalled: stopped after 60 s with {s}"
    );
    assert_eq!(s.events, 800, "{s}");
    assert_eq!(ids_once(&dir).len(), 800);
}
