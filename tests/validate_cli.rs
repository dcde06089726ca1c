//! `culla validate` end to end: the binary on hand-built files.
//!
//! The acceptance file mixes 100 malformed lines of 13 kinds, written by hand here
//! (not by the simulator), with valid lines; every malformed line must be reported
//! with its line number and reason, and no valid line may be.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const NOW: &str = "2026-11-23T10:00:00Z";

fn culla(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_culla"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run culla");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait for culla")
}

/// A valid event of one of a few types, numbered `i`.
fn valid(i: usize) -> String {
    let id = format!("{:08x}-1111-4222-8333-{:012x}", i, i);
    let head = format!(
        r#""event_id":"{id}","v":1,"at":"2024-0{}-1{}T10:{:02}:00+0{}:00","source":"milano-020202","contact_id":"mi-2024-{i:06}","family":"{:032x}""#,
        1 + i % 9,
        i % 10,
        i % 60,
        if (4..=9).contains(&(1 + i % 9)) { 2 } else { 1 },
        i * 7919 + 1
    );
    match i % 5 {
        0 => format!(r#"{{{head},"type":"call.received","ivr_path":"4-3"}}"#),
        1 => format!(r#"{{{head},"type":"call.answered","operator":"op-03","wait_s":12.5}}"#),
        2 => format!(
            r#"{{{head},"type":"need.recorded","need_id":"n-{i}","category":"housing","outcome":"waiting_list"}}"#
        ),
        3 => format!(
            r#"{{{head},"type":"family.profiled","territory":{{"comune":"015146","nil":{},"municipio":3}},"single_parent":true}}"#,
            1 + i % 88
        ),
        _ => format!(
            r#"{{{head},"type":"referral.closed","referral_id":"r-{i}","outcome":"declined"}}"#
        ),
    }
}

/// Malformed line number `k` (kind `k % 13`) and the reason culla must give it.
fn malformed(k: usize) -> (Vec<u8>, &'static str) {
    let v = valid(1000 + k);
    let swap = |from: &str, to: &str| v.replacen(from, to, 1).into_bytes();
    match k % 13 {
        0 => {
            let mut b = v.clone().into_bytes();
            b.insert(20, 0xC3); // a lone UTF-8 lead byte followed by ASCII
            (b, "not_utf8")
        }
        1 => (v.as_bytes()[..v.len() - 10].to_vec(), "not_json"),
        2 => (format!("\"{k}\"").into_bytes(), "not_object"),
        3 => (swap(r#""type":""#, r#""type":"x."#), "unknown_type"),
        4 => (swap(r#""v":1"#, r#""v":3"#), "bad_version"),
        5 => (swap(r#""source":"milano-020202","#, ""), "missing_field"),
        6 => (
            swap(r#""contact_id":"mi-2024"#, r#""contact_id":7,"x":"mi-2024"#),
            "wrong_type",
        ),
        7 => (
            swap(r#""source":"milano-020202""#, r#""source":"MILANO""#),
            "bad_value",
        ),
        8 => (swap(r#""event_id":""#, r#""event_id":"z"#), "bad_event_id"),
        9 => (
            swap(r#""family":""#, r#""family":"3471234567-"#),
            "bad_family",
        ),
        10 => (
            swap(r#""v":1"#, r#""v":1,"callback_number":"+39 000 000 0000""#),
            "personal_data",
        ),
        11 => {
            let offset = if v.contains("+01:00\"") {
                "+01:00\""
            } else {
                "+02:00\""
            };
            (swap(offset, "\""), "no_offset")
        }
        _ => (swap(r#""at":"2024"#, r#""at":"2013"#), "too_old"),
    }
}

#[test]
fn reports_all_100_malformed_lines_and_no_valid_line() {
    let mut file = Vec::new();
    let mut expected: Vec<(usize, &'static str)> = Vec::new();
    let mut line = 0;
    let mut next_valid = 0;
    for k in 0..100 {
        // One to three valid lines before each malformed one.
        for _ in 0..(1 + k % 3) {
            file.extend_from_slice(valid(next_valid).as_bytes());
            file.push(b'\n');
            next_valid += 1;
            line += 1;
        }
        let (bad, reason) = malformed(k);
        file.extend_from_slice(&bad);
        file.push(b'\n');
        line += 1;
        expected.push((line, reason));
    }
    let kinds: std::collections::BTreeSet<&str> = expected.iter().map(|e| e.1).collect();
    assert_eq!(kinds.len(), 13);

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mixed.ndjson");
    std::fs::write(&path, &file).expect("write");
    let out = culla(
        &["validate", "--now", NOW, path.to_str().expect("utf-8 path")],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let reported: Vec<(usize, String, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("line "))
        .map(|l| {
            let mut parts = l.splitn(3, ": ");
            let n = parts
                .next()
                .and_then(|n| n.parse().ok())
                .expect("line number");
            let reason = parts.next().expect("reason").to_string();
            let message = parts.next().expect("message").to_string();
            (n, reason, message)
        })
        .collect();
    assert_eq!(reported.len(), 100, "{stdout}");
    for ((n, reason, message), (en, ereason)) in reported.iter().zip(&expected) {
        assert_eq!((n, reason.as_str()), (en, *ereason), "{message}");
        assert!(!message.is_empty());
    }
    let valid_lines = line - 100;
    assert!(
        stdout.contains(&format!(
            "{line} lines: {valid_lines} valid, 100 invalid, 0 blank"
        )),
        "{stdout}"
    );
}

/// The hand-built valid lines (and a blank line) pass, from standard input.
#[test]
fn hand_built_valid_lines_are_valid() {
    let mut file = String::new();
    for i in 0..50 {
        file.push_str(&valid(i));
        file.push('\n');
    }
    file.push('\n'); // a blank line is skipped, not an error
    let out = culla(&["validate", "--now", NOW, "-"], Some(file.as_bytes()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("51 lines: 50 valid, 0 invalid, 1 blank"),
        "{stdout}"
    );
}

#[test]
fn json_format_and_long_lines() {
    let mut input = valid(1).into_bytes();
    input.push(b'\n');
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend_from_slice(b"\r\n");
    input.extend_from_slice(b"\xff\xfe\n");
    let out = culla(
        &[
            "validate",
            "--now",
            NOW,
            "--format",
            "json",
            "--max-line-bytes",
            "1000",
            "-",
        ],
        Some(&input),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["lines"], 3);
    assert_eq!(v["valid"], 1);
    assert_eq!(v["invalid"], 2);
    assert_eq!(v["by_reason"]["too_long"], 1);
    assert_eq!(v["by_reason"]["not_utf8"], 1);
    assert_eq!(v["errors"][0]["line"], 2);
    assert_eq!(v["errors"][1]["line"], 3);
}

#[test]
fn a_missing_file_is_one_clear_line() {
    let out = culla(&["validate", "/nonexistent/events.ndjson"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("culla: cannot open /nonexistent/events.ndjson"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
