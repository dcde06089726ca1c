//! No personal data at rest: 30 events smuggling personal data in every shape of the
//! contract's revision 1.1 (and one over 1 MiB), among 2,000 clean ones, go through
//! `culla produce` and `culla ingest` and are then asked about (so the read caches are
//! made too). No file under the data directory but the embedded log may hold a
//! smuggled value: every value
//! of every Parquet file, decoded, and every byte of every file (footers, statistics,
//! commit logs) are searched. Every clean event is stored; each smuggling event is
//! stored without the personal data or dead-lettered with it masked.
//!
//! The smuggled values and the expected ids are written here, by hand.

use culla_ingest::deadletters;
use culla_ingest::pipeline::stored_events;
use culla_table::DataDir;
use datafusion::arrow::util::display::array_value_to_string;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn culla() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_culla"));
    c.env_remove("CULLA_DATA").env_remove("CULLA_BROKERS");
    c
}

fn id(i: u32) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

fn clean(i: u32) -> serde_json::Value {
    serde_json::json!({
        "event_id": id(i), "type": "chat.message", "v": 1,
        "at": format!("2024-02-{:02}T11:30:00+01:00", 1 + i % 28),
        "source": "melzo-1000giorni", "contact_id": format!("w-{}", i / 4),
        "family": format!("{:016x}", 0x5eed_0000_u64 + u64::from(i % 97)),
        "direction": "in"
    })
}

/// What must never be found at rest, in any case.
const SMUGGLED: &[&str] = &[
    "3331234567",
    "3339876543",
    "4111111111111111",
    "rssmra80a01f205x",
    "maria rossi",
    "padova",
    "febbre",
    "m.rossi@example.it",
    "it60x0542811101000000123456",
];

/// 30 events, each a clean event with personal data put somewhere.
fn smuggling(first: u32) -> Vec<serde_json::Value> {
    let shapes: Vec<(&str, serde_json::Value)> = vec![
        ("note", "tel.3331234567".into()),
        ("note", "cell3331234567".into()),
        ("note", "+39 333 123 4567".into()),
        ("note", "333-123.45/67".into()),
        ("card", "4111111111111111".into()),
        ("n", serde_json::json!(-3331234567_i64)),
        ("n", serde_json::json!(3331234567.0)),
        ("n", serde_json::json!(3331234567_u64)),
        ("cf", "RSSMRA80A01F205X".into()),
        ("cf", "rssmra80a01f205x".into()),
        ("mail", "m.rossi@example.it".into()),
        ("iban", "IT60X0542811101000000123456".into()),
        ("iban", "IT60 X054 2811 1010 0000 0123 456".into()),
        ("note", "Maria Rossi via Padova 12".into()),
        ("text", "ciao, mio figlio ha la febbre".into()),
        (
            "who",
            serde_json::json!({"name": "Maria Rossi", "tel": "3339876543"}),
        ),
        ("list", serde_json::json!(["ok", "3339876543"])),
        ("contact_id", "3331234567".into()),
        ("contact_id", "Maria Rossi".into()),
        ("contact_id", "tel.3331234567".into()),
        ("family", "RSSMRA80A01F205X".into()),
        ("family", "3331234567".into()),
        ("direction", "Maria Rossi".into()),
        ("source", "Maria Rossi".into()),
        ("tel3331234567", "x".into()),
        ("note", "RSSMRA80A01F205X ok".into()),
        ("note", "scrivere a m.rossi@example.it".into()),
        ("at", "2024-02-01T11:30:00+01:00 3331234567".into()),
        ("note", "FEBBRE alta".into()),
        ("simulated", "Maria Rossi".into()),
    ];
    assert_eq!(shapes.len(), 30);
    shapes
        .into_iter()
        .enumerate()
        .map(|(k, (field, value))| {
            let mut v = clean(first + k as u32);
            v[field] = value;
            v
        })
        .collect()
}

fn run(args: &[&str], data: &Path) {
    let out = culla().args(args).arg("--data").arg(data).output().unwrap();
    assert!(
        out.status.success(),
        "culla {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files_under(dir: &Path, skip: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p == skip {
            continue;
        }
        if p.is_dir() {
            files_under(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn no_smuggled_value_is_at_rest_and_no_clean_event_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("in.ndjson");
    let mut lines: Vec<String> = (0..2000).map(|i| clean(i).to_string()).collect();
    let smuggled = smuggling(10_000);
    lines.extend(smuggled.iter().map(|v| v.to_string()));
    // And one message over 1 MiB, personal data in its first KiB.
    let mut big = clean(20_000);
    big["note"] = "Maria Rossi 3331234567".into();
    big["pad"] = "x".repeat(1 << 20).into();
    lines.push(big.to_string());
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = culla()
        .args(["produce", "--data"])
        .arg(&data)
        .arg("--from")
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(&["ingest", "--until-idle"], &data);
    // Questions make the read caches: they are searched too.
    run(&["query", "contacts_by_month"], &data);
    run(&["sql", "SELECT count(*) FROM events"], &data);

    let dir = DataDir::new(&data);
    let stored: BTreeSet<String> = stored_events(&dir)
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    for i in 0..2000 {
        assert!(stored.contains(&id(i)), "clean event {i} lost");
    }
    let smuggled_stored = (10_000..10_030)
        .filter(|i| stored.contains(&id(*i)))
        .count();
    let dead = deadletters::list(&dir, None).unwrap();
    assert_eq!(
        smuggled_stored + dead.len(),
        31,
        "each smuggling event stored (without it) or dead-lettered"
    );
    let big: Vec<_> = dead.iter().filter(|d| d.reason == "too_large").collect();
    assert_eq!(big.len(), 1);
    assert!(big[0].redacted, "{:?}", big[0]);
    assert!(dead.len() >= 20, "most are refused: {}", dead.len());

    let mut files = Vec::new();
    files_under(&data, &data.join("log"), &mut files);
    let parquet = files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .count();
    assert!(parquet > 3, "tables and caches: {parquet} Parquet files");
    let mut looked = 0usize;
    for f in &files {
        let bytes = std::fs::read(f).unwrap().to_ascii_lowercase();
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if f.extension().is_some_and(|x| x == "parquet") {
            for b in culla_ingest::files::read_parquet(f, None).unwrap() {
                for col in b.columns() {
                    for row in 0..b.num_rows() {
                        text.push('\n');
                        text.push_str(&array_value_to_string(col, row).unwrap().to_lowercase());
                        looked += 1;
                    }
                }
            }
        }
        for s in SMUGGLED {
            if let Some(at) = text.find(s) {
                let from = text.floor_char_boundary(at.saturating_sub(120));
                let to = text.ceil_char_boundary((at + s.len() + 60).min(text.len()));
                panic!("{s:?} found in {}: …{}…", f.display(), &text[from..to]);
            }
        }
    }
    assert!(looked > 2000 * 10, "values decoded: {looked}");
}
