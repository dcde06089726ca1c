//! Benchmark: every named question on one simulated year (Milan, 15,000 contacts) and on
//! a larger data set (`CULLA_BENCH_EVENTS` events, default 1,000,000; the 10M goal is
//! `CULLA_BENCH_EVENTS=10000000`), beside DuckDB answering a few of the same questions
//! on the same Parquet in the same run (python duckdb via `CULLA_PYTHON`, default
//! `python3`). Goals: < 100 ms per question on one year, < 1 s on 10M events, and no
//! slower than DuckDB. Prints a Markdown table (figures go to docs/bench-queries.md).

use culla_queries::{Params, registry, run};
use culla_simulate::{SimConfig, simulate};
use std::path::Path;
use std::time::Instant;

fn build(dir: &Path, events: usize) -> usize {
    let mut written = 0;
    let mut year = 2024;
    let mut chunk = 0;
    while written < events {
        // ~7 events per contact; one simulated year per chunk, as many years as needed.
        let want = ((events - written) / 7).clamp(1_000, 150_000) as u32;
        let lines = simulate(&SimConfig {
            year,
            seed: 7 + chunk as u64,
            contacts: Some(want),
            ..SimConfig::default()
        });
        let mut text = String::new();
        for l in lines.iter().filter(|l| l.valid) {
            text.push_str(&String::from_utf8_lossy(&l.bytes));
            text.push('\n');
        }
        written += culla_queries::fixture::write_ndjson_part(&text, dir, &format!("part-{chunk}"))
            .expect("simulated events are valid");
        chunk += 1;
        year = if year >= 2024 { 2016 } else { year + 1 };
    }
    written
}

fn median_ms(rt: &tokio::runtime::Runtime, name: &str, p: &Params) -> f64 {
    let mut t: Vec<f64> = (0..3)
        .map(|_| {
            let s = Instant::now();
            rt.block_on(run(name, p)).expect("query runs");
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[1]
}

const DUCKDB: &str = r#"
import sys, time, duckdb
d = sys.argv[1]
con = duckdb.connect()
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{d}/events/**/*.parquet', hive_partitioning=true)")
qs = {
 "contacts_by_month": """SELECT strftime(at_local, '%Y-%m') m, source, coalesce(channel,'phone') ch, count(*) c,
   count(DISTINCT family) f FROM events WHERE type IN ('call.received','chat.opened') GROUP BY ALL ORDER BY ALL""",
 "service_levels_by_month": """WITH c AS (SELECT contact_id, min(CASE WHEN type='call.received' THEN at_local END) r,
   bool_or(type='call.answered') a, min(CASE WHEN type='call.answered' THEN wait_s END) w
   FROM events WHERE type IN ('call.received','call.answered','call.abandoned') GROUP BY contact_id)
   SELECT strftime(r,'%Y-%m') m, count(*), count(*) FILTER (a), quantile_cont(w, 0.5), quantile_cont(w, 0.9)
   FROM c WHERE r IS NOT NULL GROUP BY 1 ORDER BY 1""",
 "contacts_by_weekday_hour": """SELECT isodow(at_local), hour(at_local), count(*) FROM events
   WHERE type IN ('call.received','chat.opened') GROUP BY ALL ORDER BY ALL""",
}
for name, q in qs.items():
    ts = []
    for _ in range(3):
        s = time.perf_counter(); con.execute(q).fetchall(); ts.append((time.perf_counter() - s) * 1000)
    print(name, sorted(ts)[1])
"#;

fn duckdb(dir: &Path) -> Vec<(String, f64)> {
    let py = std::env::var("CULLA_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&py)
        .arg("-c")
        .arg(DUCKDB)
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let (n, t) = l.split_once(' ')?;
                Some((n.to_string(), t.parse().ok()?))
            })
            .collect(),
        Ok(o) => {
            eprintln!(
                "duckdb comparison failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            Vec::new()
        }
        Err(e) => {
            eprintln!("duckdb comparison skipped: cannot run {py}: {e}");
            Vec::new()
        }
    }
}

fn bench(label: &str, events: usize, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = Instant::now();
    let n = build(dir.path(), events);
    eprintln!(
        "{label}: {n} events written in {:.1} s",
        s.elapsed().as_secs_f64()
    );
    let p = Params {
        data: dir.path().to_path_buf(),
        ..Params::default()
    };
    let duck = duckdb(dir.path());
    println!("\n### {label}: {n} events\n\n| query | culla (ms) | DuckDB (ms) |\n|---|---|---|");
    for q in registry() {
        let ms = median_ms(rt, q.name, &p);
        let d = duck
            .iter()
            .find(|(n, _)| n == q.name)
            .map(|(_, t)| format!("{t:.1}"))
            .unwrap_or_else(|| "–".into());
        println!("| {} | {ms:.1} | {d} |", q.name);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    bench("one year (15,000 contacts)", 15_000 * 7, &rt);
    let big: usize = std::env::var("CULLA_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    bench("scaled", big, &rt);
}
