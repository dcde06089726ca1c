//! The simulated year checked against `schemas/json/` by an independent validator.
//!
//! Runs `$CULLA_PYTHON tests/python/validate_jsonschema.py schemas/json FILE` (Python
//! `jsonschema`, draft 2020-12). `CULLA_PYTHON` defaults to `python3`; a Python without
//! the `jsonschema` module makes the test fail with the script's message.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use culla_simulate::{SimConfig, write_ndjson};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the validator on `file`; returns (exit code, stdout).
fn validate(file: &Path) -> (i32, String) {
    let python = std::env::var("CULLA_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(&python)
        .arg(root().join("tests/python/validate_jsonschema.py"))
        .arg(root().join("schemas/json"))
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set CULLA_PYTHON): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(
        code,
        2,
        "validator setup failed (set CULLA_PYTHON to a Python with jsonschema): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, stdout)
}

#[test]
fn a_simulated_year_passes_the_json_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("y.ndjson");
    let mut f = std::fs::File::create(&path).expect("create");
    let stats = write_ndjson(&SimConfig::default(), &mut f).expect("write");
    drop(f);
    let (code, stdout) = validate(&path);
    let expected = format!(
        "checked {} lines: {} valid, 0 errors",
        stats.lines, stats.lines
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert_eq!(code, 0, "{stdout}");
    // Melzo too (WhatsApp chats).
    let melzo = dir.path().join("m.ndjson");
    let mut f = std::fs::File::create(&melzo).expect("create");
    let cfg = SimConfig {
        source: culla_simulate::SourceLine::Melzo,
        ..SimConfig::default()
    };
    write_ndjson(&cfg, &mut f).expect("write");
    drop(f);
    let (code, stdout) = validate(&melzo);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn the_schemas_catch_broken_events() {
    // Five events, each broken in one way a JSON Schema can see, and one valid event.
    let ok = r#"{"event_id":"0b7e3c1e-8f0a-4e4b-9a51-2f4f6c8d9e10","type":"call.answered","v":1,"at":"2024-03-05T09:12:44+01:00","source":"milano-020202","contact_id":"mi-2024-000001","family":"a1b2c3d4e5f60718","operator":"op-07","wait_s":12}"#;
    let broken = [
        ok.replace("a1b2c3d4e5f60718", "A1B2C3D4E5F60718"), // family not lowercase hex
        ok.replace(r#","operator":"op-07""#, ""),           // missing payload field
        ok.replace(r#""wait_s":12"#, r#""wait_s":"12""#),   // wrong type
        ok.replace("+01:00", ""),                           // no offset
        ok.replace("call.answered", "call.lost"),           // unknown type
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.ndjson");
    let mut f = std::fs::File::create(&path).expect("create");
    writeln!(f, "{ok}").expect("write");
    for b in &broken {
        writeln!(f, "{b}").expect("write");
    }
    drop(f);
    let (code, stdout) = validate(&path);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("checked 6 lines: 1 valid, 5 errors"),
        "{stdout}"
    );
    for line in 2..=6 {
        assert!(
            stdout.contains(&format!("broken.ndjson:{line}:")),
            "{stdout}"
        );
    }
}
