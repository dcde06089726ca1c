//! `culla simulate` and `culla simulate-survey` end to end (small runs, to stay quick).

use std::process::{Command, Output};

fn culla(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_culla"))
        .args(args)
        .output()
        .expect("run culla")
}

#[test]
fn same_seed_same_output_to_stdout_and_to_a_file() {
    let a = culla(&["simulate", "--contacts", "300", "--seed", "3"]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = culla(&["simulate", "--contacts", "300", "--seed", "3"]);
    assert_eq!(a.stdout, b.stdout);
    let c = culla(&["simulate", "--contacts", "300", "--seed", "4"]);
    assert_ne!(a.stdout, c.stdout);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("y.ndjson");
    let out = culla(&[
        "simulate",
        "--contacts",
        "300",
        "--seed",
        "3",
        "--out",
        path.to_str().expect("path"),
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read(&path).expect("read"), a.stdout);
    // The summary on stderr counts the contacts: 300 requested.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("300 contacts"), "{stderr}");
    // Counted independently: lines whose type is call.received or chat.opened.
    let text = String::from_utf8(a.stdout).expect("utf-8");
    let contacts = text
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["type"] == "call.received" || v["type"] == "chat.opened"
        })
        .count();
    assert_eq!(contacts, 300);
}

#[test]
fn simulated_bad_lines_are_caught_by_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dirty.ndjson");
    let p = path.to_str().expect("path");
    let sim = culla(&[
        "simulate",
        "--contacts",
        "200",
        "--bad-rate",
        "0.1",
        "--out",
        p,
    ]);
    assert!(sim.status.success());
    let v = culla(&[
        "validate",
        "--format",
        "json",
        "--now",
        "2026-11-23T10:00:00Z",
        p,
    ]);
    assert_eq!(v.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).expect("json report");
    let by_reason = report["by_reason"].as_object().expect("by_reason");
    assert!(by_reason.len() >= 12, "{by_reason:?}");
    // The simulator's own count of malformed lines (stderr) equals validate's.
    let stderr = String::from_utf8_lossy(&sim.stderr);
    let invalid = report["invalid"].as_u64().expect("invalid");
    assert!(
        stderr.contains(&format!("{invalid} malformed lines")),
        "{stderr} vs {invalid}"
    );
}

#[test]
fn events_option_cuts_at_that_many_events() {
    let out = culla(&["simulate", "--events", "2500", "--seed", "1"]);
    assert!(out.status.success());
    assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), 2500);
}

#[test]
fn survey_has_the_documented_header_and_rows() {
    let out = culla(&["simulate-survey", "--families", "87", "--seed", "7"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "family_id,stage,economic,health,education,childcare,socialisation,documents,housing,work,psychological,violence,other,single_parent,no_family_network,language_barrier,arrived_last_2y,first_child,no_pediatrician,nil"
    );
    assert_eq!(lines.len(), 88);
    for (i, l) in lines[1..].iter().enumerate() {
        let cells: Vec<&str> = l.split(',').collect();
        assert_eq!(cells.len(), 20);
        assert_eq!(cells[0], (i + 1).to_string());
        assert!(["", "pregnancy", "0-12m", "12-36m"].contains(&cells[1]));
        assert!(
            cells[2..19].iter().all(|c| ["", "yes", "no"].contains(c)),
            "{l}"
        );
    }
}

#[test]
fn a_bad_option_is_one_clear_line() {
    let out = culla(&["simulate", "--source", "roma"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("culla: unknown source \"roma\""),
        "{stderr}"
    );
    let help = culla(&["simulate", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}
