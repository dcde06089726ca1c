//! The read caches follow a streaming ingest: the real `culla ingest` (no
//! `--until-idle`) on the local log, fed two sources, makes the consolidated copy and the
//! base projections of every source together and of each alone whenever it is caught up
//! with the log, again after more events arrive; questions then — with or without
//! `--source` — fold nothing. `culla warm` does the same on demand. And while it
//! streams, an event produced is answered by `culla sql` within 5 s.

use culla_table::{DataDir, Snapshot};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn culla() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_culla"));
    c.env_remove("CULLA_DATA")
        .env_remove("CULLA_BROKERS")
        .env_remove("CULLA_CACHE");
    c
}

fn run(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Simulates `contacts` contacts of `source` and puts them on the local log of `data`.
fn produce(data: &Path, source: &str, seed: u64, contacts: u32) {
    let file = data.with_extension(format!("{source}-{seed}.ndjson"));
    run(culla()
        .args(["simulate", "--year", "2024", "--source", source])
        .args([
            "--seed",
            &seed.to_string(),
            "--contacts",
            &contacts.to_string(),
        ])
        .arg("--out")
        .arg(&file));
    run(culla()
        .args(["produce", "--data"])
        .arg(data)
        .arg("--from")
        .arg(&file));
}

/// The complete base-projection directories of table version `seq`.
fn complete_bases(data: &Path, seq: u64) -> Vec<PathBuf> {
    let dir = culla_transform::eventcache::cache_dir(data);
    let prefix = format!("projections-{seq:020}-base-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|d| culla_transform::base_is_complete(d))
        .collect();
    out.sort();
    out
}

/// Waits until the data directory has committed `events` events and its latest
/// commit has `bases` complete base directories; returns that commit's sequence.
fn wait_for_warm(data: &Path, events: u64, bases: usize) -> u64 {
    let dir = DataDir::new(data);
    let started = Instant::now();
    loop {
        let snap = Snapshot::load(&dir).unwrap();
        let stored: u64 = snap.live_files("events").map(|f| f.rows).sum();
        if stored == events && complete_bases(data, snap.seq).len() == bases {
            return snap.seq;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "after 180 s: {stored} of {events} events, sequence {}, {} complete bases",
            snap.seq,
            complete_bases(data, snap.seq).len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn valid_events(data: &Path) -> u64 {
    // Counted from the simulated files, not from culla's output.
    let mut n = 0;
    for e in std::fs::read_dir(data.parent().unwrap()).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "ndjson") {
            n += std::fs::read_to_string(&p).unwrap().lines().count() as u64;
        }
    }
    n
}

/// Kills the streaming ingest if the test fails before stopping it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_streaming_ingest_warms_every_source_when_caught_up() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    produce(&data, "milano-020202", 11, 300);
    produce(&data, "melzo-1000giorni", 12, 80);
    let mut guard = KillOnDrop(Some(
        culla()
            .args(["ingest", "--flush-secs", "0.5", "--data"])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let ingest = guard.0.as_mut().unwrap();
    // Two sources: the base of both together and of each alone.
    let first = wait_for_warm(&data, valid_events(&data), 3);

    // More events: a new commit, warmed again while ingest keeps running.
    produce(&data, "melzo-1000giorni", 13, 40);
    let second = wait_for_warm(&data, valid_events(&data), 3);
    assert!(second > first);
    assert!(
        ingest.try_wait().unwrap().is_none(),
        "ingest still streaming"
    );

    // SIGTERM: ingest commits what is pending and exits cleanly.
    run(Command::new("kill")
        .args(["-TERM", &ingest.id().to_string()])
        .stdout(Stdio::null()));
    let out = guard.0.take().unwrap().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(Snapshot::load(&DataDir::new(&data)).unwrap().seq, second);

    // Questions of any source, period and threshold read those bases: no new one.
    let before = complete_bases(&data, second);
    for args in [
        vec!["needs_by_category"],
        vec!["needs_by_category", "--source", "melzo-1000giorni"],
        vec![
            "unmet_needs_by_nil",
            "--source",
            "milano-020202",
            "--from",
            "2024-03-01",
            "--to",
            "2024-05-31",
        ],
        vec![
            "isolation_risk_flags",
            "--source",
            "melzo-1000giorni",
            "--risk-threshold",
            "2",
        ],
    ] {
        let json = run(culla()
            .arg("query")
            .args(&args)
            .args(["--format", "json", "--data"])
            .arg(&data));
        assert!(json.starts_with('['), "{args:?}: {json}");
    }
    let dir = culla_transform::eventcache::cache_dir(&data);
    let all: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-base-"))
        .map(|e| e.path())
        .collect();
    assert_eq!(all.len(), 3, "no base folded by a question: {all:?}");
    assert_eq!(complete_bases(&data, second), before);
}

#[test]
fn culla_warm_makes_the_read_caches_and_says_what_is_wrong() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // Nothing there yet: one line, a non-zero exit.
    let out = culla()
        .args(["warm", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no data directory"), "{err}");

    produce(&data, "milano-020202", 21, 200);
    run(culla()
        .args(["ingest", "--until-idle", "--data"])
        .arg(&data));
    let seq = Snapshot::load(&DataDir::new(&data)).unwrap().seq;
    // One source: its base is that of every source, made by ingest when it finished.
    assert_eq!(complete_bases(&data, seq).len(), 1);
    std::fs::remove_dir_all(culla_transform::eventcache::cache_dir(&data)).unwrap();
    let said = run(culla().args(["warm", "--background", "--data"]).arg(&data));
    assert!(said.starts_with("read caches ready in "), "{said}");
    assert_eq!(complete_bases(&data, seq).len(), 1);
}

#[test]
fn a_produced_event_is_answerable_within_5_s_while_ingest_streams() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    produce(&data, "milano-020202", 21, 100);
    // The user's command, default settings.
    let _guard = KillOnDrop(Some(
        culla()
            .args(["ingest", "--data"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    wait_for_warm(&data, valid_events(&data), 1);
    let id = "00000000-0000-4000-8000-0000000f5e5d";
    let line = format!(
        r#"{{"event_id":"{id}","type":"chat.opened","v":1,"at":"2024-12-30T10:00:00+01:00","source":"melzo-1000giorni","contact_id":"w-fresh","family":"00000000000f5e5d","channel":"whatsapp"}}"#
    );
    let file = root.path().join("one.ndjson");
    std::fs::write(&file, line + "\n").unwrap();
    run(culla()
        .args(["produce", "--data"])
        .arg(&data)
        .arg("--from")
        .arg(&file));
    let produced = Instant::now();
    let sql = format!("SELECT count(*) AS n FROM events WHERE event_id = '{id}'");
    loop {
        let out = run(culla()
            .args(["sql", "--format", "csv", "--data"])
            .arg(&data)
            .arg(&sql));
        if out.trim() == "n\n1" {
            break;
        }
        assert_eq!(out.trim(), "n\n0");
        assert!(
            produced.elapsed() < Duration::from_secs(5),
            "not answerable 5 s after it was produced"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = produced.elapsed();
    eprintln!("answerable {} ms after it was produced", took.as_millis());
    assert!(took < Duration::from_secs(5));
}
