//! Benchmark: every named question on one simulated year (Milan, 15,000 contacts) and on
//! a larger data set (`CULLA_BENCH_EVENTS` events, default 1,000,000; the 10M goal is
//! `CULLA_BENCH_EVENTS=10000000`), beside DuckDB answering the same questions with the
//! same SQL (culla's rendered projections and question, spelled for DuckDB by
//! `benches/duckdb_same_sql.py`) on the same Parquet in the same run (python duckdb via
//! `CULLA_PYTHON`, default `python3`). Every figure is a median of three runs, each from
//! a fresh opening of the data. Goals: < 100 ms per question on one year, < 1 s on 10M
//! events, no slower than DuckDB. Prints Markdown tables (figures go to
//! docs/bench-queries.md).

use culla_queries::{Params, registry, run, run_many};
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

/// Median of three runs of one question, each on a fresh opening of the data (lock,
/// listing, projections, question), and the rows it returned.
fn median_ms(rt: &tokio::runtime::Runtime, name: &str, p: &Params) -> (f64, usize) {
    let mut rows = 0;
    let mut t: Vec<f64> = (0..3)
        .map(|_| {
            let s = Instant::now();
            rows = rt.block_on(run(name, p)).expect("query runs").num_rows();
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[1], rows)
}

/// DuckDB's figures for the same questions: `name -> (median ms, rows)`.
type Duck = Vec<(String, f64, usize)>;

/// Hands culla's rendered SQL (projections and questions) and the reference tables to
/// `duckdb_same_sql.py`, which times DuckDB answering them over the same Parquet files.
fn duckdb(rt: &tokio::runtime::Runtime, p: &Params, work: &Path) -> Duck {
    let spec = rt.block_on(async {
        let opts = p.projection_options().expect("valid params");
        let (ctx, scope) = culla_transform::open_scoped(&p.data, &opts)
            .await
            .expect("data opens");
        let mut files = serde_json::Map::new();
        for table in ["nil", "births"] {
            let path = work.join(format!("{table}.parquet"));
            ctx.sql(&format!("SELECT * FROM {table}"))
                .await
                .expect("reference table")
                .write_parquet(
                    &path.to_string_lossy(),
                    datafusion::dataframe::DataFrameWriteOptions::new(),
                    None,
                )
                .await
                .expect("reference table written");
            files.insert(table.into(), path.to_string_lossy().into());
        }
        let projections = culla_transform::rendered_projections(&opts, &scope);
        let queries: Vec<(&str, String)> = registry()
            .iter()
            .map(|q| (q.name, culla_queries::render_query(q, p, &scope)))
            .collect();
        serde_json::json!({
            "data": p.data,
            "nil": files["nil"],
            "births": files["births"],
            "projections": projections,
            "queries": queries,
            "runs": 3,
        })
    });
    let spec_path = work.join("duckdb-spec.json");
    std::fs::write(&spec_path, spec.to_string()).expect("spec written");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_same_sql.py");
    let py = std::env::var("CULLA_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&py)
        .arg(&script)
        .arg(&spec_path)
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                Some((
                    it.next()?.to_string(),
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                ))
            })
            .collect(),
        Ok(o) => {
            eprintln!(
                "duckdb comparison failed: {}",
                String::from_utf8_lossy(&o.stderr)
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
    let work = tempfile::tempdir().expect("temp dir");
    let s = Instant::now();
    let n = build(dir.path(), events);
    let files = count_files(&dir.path().join("events"));
    eprintln!(
        "{label}: {n} events in {files} Parquet files written in {:.1} s",
        s.elapsed().as_secs_f64()
    );
    let p = Params {
        data: dir.path().to_path_buf(),
        ..Params::default()
    };
    let duck = duckdb(rt, &p, work.path());
    println!(
        "\n### {label}: {n} events, {files} files\n\n\
         | query | culla (ms) | DuckDB, same SQL (ms) | culla / DuckDB | rows (culla / DuckDB) |\n\
         |---|---|---|---|---|"
    );
    for q in registry() {
        let (ms, rows) = median_ms(rt, q.name, &p);
        let (d, ratio, drows) = match duck.iter().find(|(n, _, _)| n == q.name) {
            Some((_, t, r)) => (format!("{t:.1}"), format!("{:.2}", ms / t), r.to_string()),
            None => ("–".into(), "–".into(), "–".into()),
        };
        println!(
            "| {} | {ms:.1} | {d} | {ratio} | {rows} / {drows} |",
            q.name
        );
    }
    let names: Vec<&str> = registry().iter().map(|q| q.name).collect();
    let mut t: Vec<f64> = (0..3)
        .map(|_| {
            let s = Instant::now();
            rt.block_on(run_many(&names, &p)).expect("queries run");
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let duck_sum: f64 = duck.iter().map(|(_, t, _)| t).sum();
    println!(
        "| all {} questions, one session (as the report) | {:.1} | {duck_sum:.1} (sum) | {:.2} | |",
        names.len(),
        t[1],
        t[1] / duck_sum.max(f64::MIN_POSITIVE)
    );
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                count_files(&path)
            } else {
                usize::from(path.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
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
