//! Local log → Parquet throughput and peak memory, beside DuckDB on the same NDJSON.
//!
//! Simulates one realistic year of Milan's line (2024, seed 7) with as many contacts as
//! `CULLA_BENCH_EVENTS` events need (default 1,000,000; `contacts_for_events`, the same
//! sizing as the simulate bench), keeps the first `CULLA_BENCH_EVENTS` lines, and counts
//! their distinct valid `event_id`s independently (`parse_event` over every line). It
//! appends them to a fresh local log (timed: produce rate), then ingests them with
//! `--until-idle` in a child process of this same binary, so the child's peak RSS
//! (`VmHWM` of /proc/self/status) measures ingest alone. After the child exits, the
//! events table's live files must hold exactly the distinct valid events. With
//! `CULLA_PYTHON` pointing at a Python that has `duckdb`, the same NDJSON is also
//! converted by DuckDB (`COPY … TO parquet (zstd)`, 2 threads) for a ratio measured in
//! the same run. Prints a Markdown table.
//!
//! Run: `cargo bench -p culla-ingest --bench local_log` (set `CULLA_BENCH_EVENTS=100000`
//! for a quick run). Figures are recorded in docs/bench-ingest-local.md.

mod common;

use common::{batch_options, bench_events, report_child, run_child, simulated, tune_allocator};
use culla_ingest::EventSink;
use culla_ingest::locallog::LocalLogSink;
use culla_ingest::locallog::LocalLogSource;
use culla_ingest::pipeline;
use culla_ingest::produce::route;
use culla_table::{DataDir, Snapshot, TABLE_EVENTS};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const CHILD: &str = "CULLA_BENCH_CHILD_DIR";

fn child(dir: &str) {
    let dir = DataDir::new(dir);
    common::init_logs();
    let topics: Vec<String> = ["calls", "chats", "referrals"].map(String::from).to_vec();
    let t = Instant::now();
    let mut src = LocalLogSource::open(dir.log_dir(), &topics, pipeline::start_offsets(&dir))
        .expect("open the local log");
    let opts = batch_options();
    let s = pipeline::run(&mut src, &dir, &opts, &AtomicBool::new(false)).expect("ingest");
    report_child(&s, t.elapsed().as_secs_f64());
}

fn main() {
    tune_allocator();
    if let Ok(dir) = std::env::var(CHILD) {
        child(&dir);
        return;
    }
    let want = bench_events();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = DataDir::new(tmp.path());
    // The expected outcome, worked out from the input: distinct valid event ids.
    let sim = simulated(want);
    let (lines, cfg, distinct, invalid, gen_secs) =
        (sim.lines, sim.cfg, sim.distinct, sim.invalid, sim.secs);

    let t = Instant::now();
    let mut sink = LocalLogSink::open(dir.log_dir(), 3).expect("open the local log");
    let mut bytes = 0usize;
    for l in &lines {
        let (topic, key, _) = route(&l.bytes, "calls");
        sink.send(topic, &key, &l.bytes).expect("append");
        bytes += l.bytes.len() + 1;
    }
    sink.flush().expect("flush");
    drop(sink);
    let put_secs = t.elapsed().as_secs_f64();
    drop(lines);
    println!(
        "simulated {want} events of {} ({} contacts, {:.0} MB NDJSON) in {gen_secs:.1} s: \
         {distinct} distinct valid, {invalid} invalid; appended to the local log at {:.0} events/s",
        cfg.year,
        cfg.contacts.unwrap_or(0),
        bytes as f64 / 1e6,
        want as f64 / put_secs
    );

    let r = run_child(CHILD, tmp.path());
    let (messages, secs, rss, files) = (r.messages, r.secs, r.rss, r.files);
    let ingest_rate = messages / secs;

    // What was stored, read from the table (not from the child's own report).
    let snap = Snapshot::load(&dir).expect("read the tables");
    let written: u64 = snap.live_files(TABLE_EVENTS).map(|f| f.rows).sum();
    assert_eq!(messages as usize, want, "the child read every message");
    assert_eq!(
        written as usize, distinct,
        "rows written must equal the distinct valid events"
    );

    let mut duck: Option<(f64, f64)> = None;
    if let Ok(py) = std::env::var("CULLA_PYTHON") {
        let script = r#"
import sys, time
try:
    import duckdb
except ImportError:
    sys.exit("duckdb is not installed in CULLA_PYTHON")
root = sys.argv[1]
con = duckdb.connect()
con.execute("set threads=2")
t = time.time()
con.execute(f"copy (select * from read_json('{root}/log/*/*/*.ndjson', format='newline_delimited', union_by_name=true, ignore_errors=true)) to '{root}/duck.parquet' (format parquet, compression zstd)")
secs = time.time() - t
n = con.execute(f"select count(*) from read_parquet('{root}/duck.parquet')").fetchone()[0]
print(n, secs)
"#;
        match std::process::Command::new(&py)
            .arg("-c")
            .arg(script)
            .arg(tmp.path())
            .output()
        {
            Ok(o) if o.status.success() => {
                let s = String::from_utf8_lossy(&o.stdout);
                let v: Vec<f64> = s
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if v.len() == 2 {
                    duck = Some((v[0], v[1]));
                }
            }
            Ok(o) => eprintln!("duckdb failed: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => eprintln!("cannot run {py}: {e}"),
        }
    }

    println!();
    println!("| what | events | seconds | events/s | peak RSS | ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| culla ingest --until-idle (local log → Parquet) | {messages:.0} read, {written} written, {files:.0} files | {secs:.2} | {ingest_rate:.0} | {rss:.0} MB | 1.00 |"
    );
    match duck {
        Some((rows, dsecs)) => println!(
            "| DuckDB read_json → zstd Parquet, 2 threads | {rows:.0} rows | {dsecs:.2} | {:.0} | — | {:.2} (culla ÷ DuckDB) |",
            rows / dsecs,
            ingest_rate / (rows / dsecs)
        ),
        None => println!("| DuckDB | not run (set CULLA_PYTHON to a Python with duckdb) | | | | |"),
    }
    println!();
    println!(
        "ingest's CPU: {:.2} s user + {:.2} s system = {:.2} s",
        r.cpu_user,
        r.cpu_sys,
        r.cpu_user + r.cpu_sys
    );
}
