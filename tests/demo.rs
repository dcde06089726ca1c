//! `culla demo`, the README's first command, end to end on the embedded default: a
//! simulated year → local event log → Parquet → answers → the report in two languages.
//! What it stored is checked against its own NDJSON input, read independently with the
//! contract's parser: every distinct valid event once, every malformed line a dead letter.

use culla_table::{DataDir, Snapshot, TABLE_EVENTS};
use std::collections::HashSet;
use std::process::Command;

#[test]
fn demo_runs_the_whole_job_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo-out");
    let run = Command::new(env!("CARGO_BIN_EXE_culla"))
        .args(["demo", "--year", "2023", "--seed", "11", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // It teaches: six numbered steps, each with the command to do it on one's own data,
    // and how to open the dashboard.
    for n in 1..=6 {
        assert!(stdout.contains(&format!("[{n}/6]")), "step {n}: {stdout}");
    }
    assert!(stdout.matches("same on your data: culla ").count() >= 6);
    assert!(stdout.contains("culla serve --data"));

    // The input, read independently of ingest.
    // Bytes, not text: some malformed lines are not UTF-8 on purpose.
    let bytes = std::fs::read(out.join("events-2023.ndjson")).unwrap();
    let now = chrono::Utc::now();
    let mut distinct = HashSet::new();
    let mut invalid = 0usize;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match culla_schemas::parse_event(line, now) {
            Ok(ev) => {
                distinct.insert(ev.event_id);
            }
            Err(_) => invalid += 1,
        }
    }
    assert!(distinct.len() > 50_000, "a whole year: {}", distinct.len());
    assert!(invalid > 0, "the demo mixes in malformed events on purpose");

    let dir = DataDir::new(out.join("data"));
    let snap = Snapshot::load(&dir).unwrap();
    let rows: u64 = snap.live_files(TABLE_EVENTS).map(|f| f.rows).sum();
    assert_eq!(
        rows as usize,
        distinct.len(),
        "every distinct valid event once"
    );
    let dead = culla_ingest::deadletters::list(&dir, None).unwrap();
    assert_eq!(dead.len(), invalid, "every malformed line is a dead letter");

    for lang in ["it", "en"] {
        let html = std::fs::read_to_string(out.join(format!("report-2023-{lang}.html"))).unwrap();
        assert!(html.contains(&format!("<html lang=\"{lang}\">")));
        assert_eq!(html.matches("<path class=\"nil\"").count(), 88);
    }

    // Private by default: nothing under the data directory is readable by anyone but
    // its user (tables, commits, log, dead letters, caches); the published reports are.
    use std::os::unix::fs::PermissionsExt;
    let mut seen = (0, 0);
    let mut stack = vec![out.join("data")];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        seen.0 += 1;
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
                seen.1 += 1;
            }
        }
    }
    assert!(
        seen.0 > 300 && seen.1 > 600,
        "every folder and file looked at: {seen:?}"
    );
    let report = out.join("report-2023-it.html");
    assert_eq!(
        std::fs::metadata(report).unwrap().permissions().mode() & 0o777,
        0o644
    );
}
