//! Local log → Parquet throughput and peak memory.
//!
//! Simulates `CULLA_BENCH_EVENTS` events (default 1,000,000) with `culla-simulate`,
//! appends them to a fresh local log (timed: produce rate), then ingests them with
//! `--until-idle` in a child process of this same binary, so the child's peak RSS
//! (`VmHWM` of /proc/self/status) measures ingest alone. With `CULLA_PYTHON` pointing at
//! a Python that has `duckdb`, the same NDJSON is also converted by DuckDB
//! (`COPY … TO parquet (zstd)`, 2 threads) for a ratio measured in the same run.
//!
//! Run: `cargo bench -p culla-ingest --bench local_log` (set `CULLA_BENCH_EVENTS=100000`
//! for a quick run). Figures are recorded in docs/bench-ingest-local.md.

use culla_ingest::EventSink;
use culla_ingest::locallog::LocalLogSink;
use culla_ingest::locallog::LocalLogSource;
use culla_ingest::pipeline::{self, IngestOptions};
use culla_ingest::produce::route;
use culla_schemas::layout::DataDir;
use culla_simulate::{SimConfig, simulate};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const CHILD: &str = "CULLA_BENCH_CHILD_DIR";

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn child(dir: &str) {
    let dir = DataDir::new(dir);
    let topics: Vec<String> = ["calls", "chats", "referrals"].map(String::from).to_vec();
    let mut src =
        LocalLogSource::open(dir.log_dir(), &topics, pipeline::start_offsets(&dir, "log"))
            .expect("open the local log");
    let opts = IngestOptions {
        until_idle: true,
        ..IngestOptions::default()
    };
    let t = Instant::now();
    let s = pipeline::run(&mut src, &dir, &opts, &AtomicBool::new(false)).expect("ingest");
    let secs = t.elapsed().as_secs_f64();
    let n = s.events + s.duplicates + s.dead_letter_total();
    println!(
        "ingest: {n} messages in {secs:.2} s = {:.0} events/s; {}; peak RSS {:.0} MB",
        n as f64 / secs,
        s,
        vm_hwm_mb()
    );
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(&dir);
        return;
    }
    let want: usize = std::env::var("CULLA_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = DataDir::new(tmp.path());
    let mut sink = LocalLogSink::open(dir.log_dir(), 3).expect("open the local log");
    let (mut n, mut bytes, mut gen_secs, mut put_secs) = (0usize, 0usize, 0.0, 0.0);
    'outer: for seed in 1.. {
        for year in 2015..=2025 {
            let t = Instant::now();
            let cfg = SimConfig {
                year,
                seed,
                contacts: Some(20_000),
                ..SimConfig::default()
            };
            let lines = simulate(&cfg);
            gen_secs += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for l in &lines {
                let (topic, key, _) = route(&l.bytes, "calls");
                sink.send(topic, &key, &l.bytes).expect("append");
                n += 1;
                bytes += l.bytes.len() + 1;
                if n >= want {
                    put_secs += t.elapsed().as_secs_f64();
                    break 'outer;
                }
            }
            put_secs += t.elapsed().as_secs_f64();
        }
        if seed > 100 {
            break;
        }
    }
    let t = Instant::now();
    sink.flush().expect("flush");
    drop(sink);
    put_secs += t.elapsed().as_secs_f64();
    println!(
        "simulated {n} events ({:.0} MB NDJSON) in {gen_secs:.1} s; appended to the local log at {:.0} events/s",
        bytes as f64 / 1e6,
        n as f64 / put_secs
    );

    let exe = std::env::current_exe().expect("own path");
    let status = std::process::Command::new(exe)
        .env(CHILD, tmp.path())
        .status()
        .expect("run the ingest child");
    assert!(status.success(), "the ingest child failed");

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
print(f"duckdb: {n} rows in {secs:.2f} s = {n/secs:.0f} rows/s (2 threads, read_json → zstd parquet)")
"#;
        let out = std::process::Command::new(&py)
            .arg("-c")
            .arg(script)
            .arg(tmp.path())
            .output();
        match out {
            Ok(o) => {
                print!("{}", String::from_utf8_lossy(&o.stdout));
                eprint!("{}", String::from_utf8_lossy(&o.stderr));
            }
            Err(e) => eprintln!("cannot run {py}: {e}"),
        }
    }
}
