//! Crash safety of `culla ingest` on the local log: the real binary is killed with
//! SIGKILL at ten pseudo-random moments while it commits small files, restarted each
//! time, and at the end every valid event must be stored exactly once and every bad
//! line must be in the dead letters exactly once.
//!
//! Expected sets are built from the generated input (ids of the valid lines, count of
//! bad lines), not from culla's output.
//!
//! The log's identity: a log deleted and produced into again is read from its start;
//! a log cut short under the same identity stops ingest with one line, and the fix that
//! line names brings the missing events in.

use culla_ingest::deadletters;
use culla_ingest::pipeline::stored_events;
use culla_ingest::recovery::recover;
use culla_schemas::layout::DataDir;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn culla() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_culla"));
    c.env_remove("CULLA_DATA").env_remove("CULLA_BROKERS");
    c
}

fn line(i: u32) -> String {
    let day = 1 + i % 28;
    format!(
        r#"{{"event_id":"00000000-0000-4000-8000-{i:012x}","type":"chat.message","v":1,"at":"2024-02-{day:02}T11:30:00+01:00","source":"melzo-1000giorni","contact_id":"w-{}","family":"{:016x}","direction":"in"}}"#,
        i / 4,
        0x5eed_0000_u64 + u64::from(i % 97)
    )
}

fn produce(data: &Path, file: &Path, lines: &[String]) {
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
    let mut c = culla();
    c.args(["produce", "--data"])
        .arg(data)
        .arg("--from")
        .arg(file);
    succeeds(c);
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("in.ndjson");
    let mut valid: BTreeSet<String> = BTreeSet::new();
    let mut bad = 0usize;
    let mut next = 0u32;
    let mut interrupted = 0;
    // A fixed linear congruential sequence: the kill moments are the same on every run.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..10u32 {
        let mut lines = Vec::new();
        for _ in 0..400 {
            lines.push(line(next));
            valid.insert(format!("00000000-0000-4000-8000-{next:012x}"));
            next += 1;
        }
        for k in 0..20 {
            lines.push(line((round * 37 + k * 13) % next)); // duplicates of stored events
        }
        for k in 0..5 {
            lines.push(format!("{{\"broken\": {round}{k}"));
            bad += 1;
        }
        produce(&data, &input, &lines);

        let mut child = culla()
            .args([
                "ingest",
                "--until-idle",
                "--flush-secs",
                "0.05",
                "--max-file-mb",
                "0.01",
                "--data",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // Within the first ~80 ms: a round ingests 425 lines in a few commits, and a
        // loaded machine must not let most of the runs finish before the kill.
        let ms = 5 + (seed >> 33) % 75;
        std::thread::sleep(Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(
        interrupted >= 5,
        "only {interrupted} of 10 kills hit a running ingest"
    );
    let out = culla()
        .args(["ingest", "--until-idle", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = DataDir::new(&data);
    let stored = stored_events(&dir).unwrap();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &stored {
        *count.entry(e.event_id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let ids: BTreeSet<String> = count.keys().map(|s| s.to_string()).collect();
    assert_eq!(ids.len(), 4000);
    assert_eq!(ids, valid);
    let dead = deadletters::list(&dir, None).unwrap();
    assert_eq!(dead.len(), bad);
    let lin: BTreeSet<_> = dead
        .iter()
        .map(|d| (&d.topic, d.partition, d.offset))
        .collect();
    assert_eq!(lin.len(), bad, "a dead letter stored twice");
    assert!(dead.iter().all(|d| d.reason == "not_json"));
    // Nothing left to clean up after the last, complete run.
    let (_, rep) = recover(&dir).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
}

fn ingest(data: &Path) -> std::process::Output {
    culla()
        .args(["ingest", "--until-idle", "--data"])
        .arg(data)
        .output()
        .unwrap()
}

/// Runs `c`, asserting it succeeded (its standard error in the message otherwise).
fn succeeds(mut c: Command) -> std::process::Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ingest_ok(data: &Path) -> std::process::Output {
    let mut c = culla();
    c.args(["ingest", "--until-idle", "--data"]).arg(data);
    succeeds(c)
}

fn stored_ids(data: &Path) -> BTreeSet<String> {
    let stored = stored_events(&DataDir::new(data)).unwrap();
    let ids: BTreeSet<String> = stored.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(ids.len(), stored.len(), "an event stored twice");
    ids
}

#[test]
fn a_deleted_or_shortened_log_never_loses_events_in_silence() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("in.ndjson");
    let id = |i: u32| format!("00000000-0000-4000-8000-{i:012x}");
    produce(&data, &input, &(0..100).map(line).collect::<Vec<_>>());
    ingest_ok(&data);
    assert_eq!(stored_ids(&data), (0..100).map(id).collect());

    // The whole log deleted, 30 new events produced: a new log, read from its start.
    std::fs::remove_dir_all(data.join("log")).unwrap();
    produce(&data, &input, &(100..130).map(line).collect::<Vec<_>>());
    ingest_ok(&data);
    assert_eq!(stored_ids(&data), (0..130).map(id).collect());

    // The log's events deleted but its identity kept (a restore of an older copy):
    // the 10 new events sit at offsets the tables have already read.
    let topics: Vec<_> = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(!topics.is_empty());
    for t in topics {
        std::fs::remove_dir_all(t).unwrap();
    }
    produce(&data, &input, &(130..140).map(line).collect::<Vec<_>>());
    let out = ingest(&data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit 0 with events unread: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("ends at offset"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("log-id"), "the line names the fix: {err}");
    assert_eq!(stored_ids(&data).len(), 130);

    // The fix it names: the log gets a new identity and is read from its start.
    std::fs::remove_file(data.join("log").join("log-id")).unwrap();
    ingest_ok(&data);
    assert_eq!(stored_ids(&data), (0..140).map(id).collect());
}

#[test]
fn only_the_contract_is_stored_and_dropped_fields_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("in.ndjson");
    let lines: Vec<String> = (0..20)
        .map(|i| {
            let mut v: serde_json::Value = serde_json::from_str(&line(i)).unwrap();
            v["simulated"] = true.into();
            if i % 4 == 0 {
                v["note"] = "Maria Rossi via Padova 12".into();
                v["queue"] = "q1".into();
            }
            v.to_string()
        })
        .collect();
    produce(&data, &input, &lines);
    let out = ingest_ok(&data);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("fields not in the contract, dropped: note 5, queue 5"),
        "{said}"
    );
    // The commit records the counts too.
    let mut log = String::new();
    for e in std::fs::read_dir(data.join("events/_delta_log")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            log.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    assert!(log.contains("\"dropped_field:note\":5"), "{log}");
    assert!(!log.contains("Padova"));

    let sql = |q: &str| {
        let mut c = culla();
        c.args(["sql", "--format", "csv", "--data"])
            .arg(&data)
            .arg(q);
        String::from_utf8_lossy(&succeeds(c).stdout).into_owned()
    };
    let all = sql("SELECT * FROM events");
    assert!(!all.contains("Padova") && !all.contains("q1"), "{all}");
    let header = all.lines().next().unwrap();
    for gone in ["raw", "extra", "note", "queue"] {
        assert!(!header.split(',').any(|c| c == gone), "{header}");
    }
    assert_eq!(
        sql("SELECT count(*) AS n FROM events WHERE simulated").trim(),
        "n\n20"
    );
}
