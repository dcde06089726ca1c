//! Benchmark: every named question on one simulated year (Milan, 15,000 contacts) and on
//! a larger data set (`CULLA_BENCH_EVENTS` events, default 1,000,000; the 10M goal is
//! `CULLA_BENCH_EVENTS=10000000`), beside DuckDB answering the same questions with the
//! same SQL (culla's rendered projections and question, spelled for DuckDB by
//! `benches/duckdb_same_sql.py`) on the same Parquet in the same run (python duckdb via
//! `CULLA_PYTHON`, default `python3`).
//!
//! Each question is timed from a fresh opening of the data (lock, tables, projections,
//! question) in three states of culla's read caches: none (`open_uncached`: the
//! partitions listed and read directly); copy only (the consolidated copy of the log is
//! there, the base projections are folded afresh: a question with its own as-of
//! instant, or one on a streaming commit before its warm ended); copy + base (the base
//! projections persisted after the commit by the writer's warm are there too: every
//! other question, with or without a source). DuckDB runs the same SQL on the
//! partitions, on the consolidated copy, and on the copy with the base projections read
//! from culla's persisted files, each state in a `duckdb_same_sql.py` process whose
//! runs alternate with culla's (each culla run of a question is followed by DuckDB's
//! run of it in the paired state), so drift in the machine's load falls on both. The
//! one-off costs of the copy and of the base projections (paid once per commit) are
//! printed too. Every figure is a median
//! of three runs (`CULLA_BENCH_RUNS` on the large set, default 3); `CULLA_BENCH_SOURCE=S`
//! asks every question with `--source S` (its own base projections, made by the writer's
//! warm for each source of a log of several). Goals: < 100 ms per question on one year,
//! < 1 s on 10M events, ≤ 1.5× DuckDB. Prints Markdown tables (figures go to
//! docs/bench-queries.md).

use culla_queries::{Params, registry, run, run_many};

/// The same allocator and setting as `culla query` (mimalloc, its default purge delay),
/// so the figures are what users run (`CULLA_BENCH_PURGE_MS` sets another delay, to
/// compare: ingest's 1 ms made a fresh fold on 10M events 10-20 % slower).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
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

/// Runs per figure of the data set being measured.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(3);

fn runs() -> usize {
    RUNS.load(std::sync::atomic::Ordering::Relaxed)
}

/// The read caches' state a question is timed in.
#[derive(Clone, Copy, PartialEq)]
enum Cache {
    /// No cache: the partitions are listed and read directly.
    None,
    /// Only the consolidated copy is there: base and option projections folded afresh
    /// (a question with its own as-of instant, or one on a streaming commit before its
    /// warm ended).
    Cold,
    /// The copy and the base projections are there (made after the commit by `culla
    /// warm`, run by `culla ingest`/`compact`): the option projections are computed
    /// from them (every question, period, threshold or source after a commit; nothing
    /// more is persisted).
    Fold,
}

/// Deletes the persisted projections unless `keep_base` and they are base ones (keeps
/// the consolidated copy).
fn forget_projections(data: &Path, keep_base: bool) {
    let dir = culla_transform::eventcache::cache_dir(data);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("projections-") && !(keep_base && name.contains("-base-")) {
            std::fs::remove_dir_all(e.path()).expect("projections deleted");
        }
    }
}

/// Puts the read caches of `p.data` in the state `cache` is timed in.
fn set_up(cache: Cache, p: &Params) {
    match cache {
        Cache::Cold => forget_projections(&p.data, false),
        Cache::Fold => {
            forget_projections(&p.data, true);
            culla_transform::warm_cache(&p.data);
        }
        Cache::None => {}
    }
}

/// The persisted base projections of the bench's options, made by the writer's warm:
/// the directory holding `profile_base-<hash>.parquet`, `contact_base-<hash>.parquet`…
fn base_dir(rt: &tokio::runtime::Runtime, p: &Params) -> std::path::PathBuf {
    let opts = p.projection_options().expect("valid params");
    let dir = rt
        .block_on(async {
            let _lock = culla_transform::read_lock(&p.data).expect("lock");
            culla_transform::base_projection_dir(&p.data, &opts).await
        })
        .expect("data opens")
        .expect("a consolidated copy");
    assert!(
        culla_transform::base_is_complete(&dir),
        "the writer's warm made the base projections of {:?}",
        p.source
    );
    dir
}

/// One fresh opening of the data and one question, reading the partitions directly.
async fn run_direct(name: &str, p: &Params) -> usize {
    let q = culla_queries::find(name).expect("known question");
    let opts = p.projection_options().expect("valid params");
    let _lock = culla_transform::read_lock(&p.data).expect("lock");
    let (ctx, scope) = culla_transform::open_uncached(&p.data, &opts)
        .await
        .expect("data opens");
    let sql = culla_queries::render_query(q, p, &scope);
    let batches = ctx
        .sql(&sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs");
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Median of the runs of one question in a cache state, each on a fresh opening of the
/// data (lock, tables, projections, question), and the rows it returned; with `duck`,
/// each culla run is followed by one of DuckDB's on the same question (so drift in the
/// machine's load falls on both), and DuckDB's median and rows come back too.
fn median_ms(
    rt: &tokio::runtime::Runtime,
    name: &str,
    p: &Params,
    cache: Option<Cache>,
    mut duck: Option<&mut Duck>,
) -> (f64, usize, Option<(f64, usize)>) {
    let mut rows = 0;
    // A fold persists its projections in the background, after the answer (as `culla
    // query` does before it exits): wait for those writes outside the timed region.
    let settle = || culla_transform::cache::wait_for_writes();
    settle();
    let mut culla = Vec::new();
    let mut duck_times = Vec::new();
    let mut duck_rows = None;
    for _ in 0..runs() {
        if let Some(cache) = cache {
            set_up(cache, p);
            let s = Instant::now();
            rows = match cache {
                Cache::None => rt.block_on(run_direct(name, p)),
                _ => rt.block_on(run(name, p)).expect("query runs").num_rows(),
            };
            culla.push(s.elapsed().as_secs_f64() * 1000.0);
            settle();
        }
        if let Some((ms, r)) = duck.as_deref_mut().and_then(|d| d.once(name)) {
            duck_times.push(ms);
            duck_rows = Some(r);
        }
    }
    let duck = duck_rows.map(|r| (median(&mut duck_times), r));
    (median(&mut culla), rows, duck)
}

/// The median of `t` (NaN when empty).
fn median(t: &mut [f64]) -> f64 {
    t.sort_by(f64::total_cmp);
    t.get(t.len() / 2).copied().unwrap_or(f64::NAN)
}

/// DuckDB answering the questions, one run per request: a `duckdb_same_sql.py` process
/// serving one spec (one state of the files it reads).
struct Duck {
    child: std::process::Child,
    ask: std::process::ChildStdin,
    answers: std::io::BufReader<std::process::ChildStdout>,
}

impl Duck {
    /// Hands `spec` (culla's rendered SQL and the reference tables, [`duck_spec`]) to
    /// `duckdb_same_sql.py`, which times DuckDB answering the questions over the same
    /// Parquet files: the partitions, or (`copy`) the consolidated copy culla reads, and
    /// with `base` the base projections culla persisted (read from their files instead
    /// of folded). `None` (with the reason on stderr) when python or duckdb is missing.
    fn start(
        spec: &serde_json::Value,
        work: &Path,
        copy: Option<&Path>,
        base: Option<&Path>,
        tag: &str,
    ) -> Option<Duck> {
        let mut spec = spec.clone();
        spec["events_file"] = serde_json::json!(copy);
        spec["base_files"] = serde_json::json!(base.map(|dir| {
            std::fs::read_dir(dir)
                .expect("base projections listed")
                .flatten()
                .filter_map(|e| {
                    let path = e.path();
                    let name = path.file_stem()?.to_string_lossy().to_string();
                    (path.extension()? == "parquet").then(|| (name, serde_json::json!(path)))
                })
                .collect::<serde_json::Map<_, _>>()
        }));
        let spec_path = work.join(format!("duckdb-spec-{tag}.json"));
        std::fs::write(&spec_path, spec.to_string()).expect("spec written");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_same_sql.py");
        let py = std::env::var("CULLA_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = match std::process::Command::new(&py)
            .arg(&script)
            .arg(&spec_path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("duckdb comparison skipped: cannot run {py}: {e}");
                return None;
            }
        };
        let ask = child.stdin.take().expect("piped stdin");
        let answers = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        Some(Duck {
            child,
            ask,
            answers,
        })
    }

    /// One run of question `name`: (ms, rows), or `None` if DuckDB failed on it.
    fn once(&mut self, name: &str) -> Option<(f64, usize)> {
        use std::io::{BufRead, Write};
        writeln!(self.ask, "{name}").ok()?;
        self.ask.flush().ok()?;
        let mut line = String::new();
        self.answers.read_line(&mut line).ok()?;
        let mut it = line.split_whitespace();
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }
}

impl Drop for Duck {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What every DuckDB state's spec shares: the reference tables (written to `work`) and
/// culla's rendered projections and questions; [`Duck::start`] adds the files to read.
fn duck_spec(rt: &tokio::runtime::Runtime, p: &Params, work: &Path) -> serde_json::Value {
    rt.block_on(async {
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
        })
    })
}

/// Whether `CULLA_BENCH_ONLY` (comma-separated question names) selects `name`.
fn selected(name: &str) -> bool {
    match std::env::var("CULLA_BENCH_ONLY") {
        Ok(only) if !only.is_empty() => only.split(',').any(|n| n.trim() == name),
        _ => true,
    }
}

/// Whether `CULLA_BENCH_STATES` (comma-separated of `copy`, `base`, `none`, `cold`,
/// `fold`, `duckdb`, or `duckdb-base` for DuckDB on the copy + base only; default all)
/// selects `state`.
fn measured(state: &str) -> bool {
    match std::env::var("CULLA_BENCH_STATES") {
        Ok(s) if !s.is_empty() => s.split(',').any(|n| n.trim() == state),
        _ => true,
    }
}

/// The data directory of a set: a new temporary one, or `keep` (made on first use, then
/// reused as it is so profiling runs skip the simulation).
fn data_dir(
    keep: Option<&Path>,
    events: usize,
    label: &str,
) -> (Option<tempfile::TempDir>, std::path::PathBuf, usize) {
    let (tmp, dir) = match keep {
        Some(k) => (None, k.to_path_buf()),
        None => {
            let t = tempfile::tempdir().expect("temp dir");
            let d = t.path().to_path_buf();
            (Some(t), d)
        }
    };
    let marker = dir.join("bench-events.txt");
    if let Some(n) = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|t| t.trim().parse().ok())
    {
        eprintln!("{label}: reusing {n} events in {}", dir.display());
        return (tmp, dir, n);
    }
    let s = Instant::now();
    let n = build(&dir, events);
    std::fs::write(&marker, n.to_string()).expect("marker written");
    eprintln!(
        "{label}: {n} events in {} Parquet files written in {:.1} s",
        count_files(&dir.join("events")),
        s.elapsed().as_secs_f64()
    );
    (tmp, dir, n)
}

fn bench(label: &str, events: usize, keep: Option<&Path>, rt: &tokio::runtime::Runtime) {
    let (_tmp, data, n) = data_dir(keep, events, label);
    let work = tempfile::tempdir().expect("temp dir");
    let files = count_files(&data.join("events"));
    // `CULLA_BENCH_SOURCE=S`: every question with `--source S`.
    let p = Params {
        data,
        source: std::env::var("CULLA_BENCH_SOURCE")
            .ok()
            .filter(|s| !s.is_empty()),
        ..Params::default()
    };
    // The one-off cost of the consolidated copy, paid by the first reader after a commit.
    let copy_runs = if measured("copy") { runs() } else { 1 };
    let mut copy_ms: Vec<f64> = (0..copy_runs)
        .map(|_| {
            if measured("copy") {
                let _ = std::fs::remove_dir_all(culla_transform::eventcache::cache_dir(&p.data));
            }
            let s = Instant::now();
            culla_transform::eventcache::prepare(&p.data)
                .expect("copy made")
                .expect("events committed");
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let copy = culla_transform::eventcache::prepare(&p.data)
        .expect("copy made")
        .expect("events committed")
        .copy;
    let copy_mb = dir_mb(&copy);
    // The one-off cost of the base projections, paid after each commit by `culla
    // ingest`/`compact` (or by the first reader, as part of a cold question).
    let base_runs = if measured("base") { runs() } else { 1 };
    let mut base_ms: Vec<f64> = (0..base_runs)
        .map(|_| {
            if measured("base") {
                forget_projections(&p.data, false);
            }
            let s = Instant::now();
            culla_transform::warm_cache(&p.data);
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let base = base_dir(rt, &p);
    let base_mb = dir_mb(&base);
    let only_base = std::env::var("CULLA_BENCH_STATES")
        .is_ok_and(|s| s.split(',').any(|n| n.trim() == "duckdb-base"));
    let copy_files = copy.join("*.parquet");
    let all_duck = measured("duckdb") && !only_base;
    let spec = (all_duck || only_base).then(|| duck_spec(rt, &p, work.path()));
    let start = |wanted: bool, copy: Option<&Path>, base: Option<&Path>, tag: &str| {
        let spec = spec.as_ref().filter(|_| wanted)?;
        Duck::start(spec, work.path(), copy, base, tag)
    };
    // Each DuckDB state is paired with the culla state it is compared with, and their
    // runs alternate: no cache with the partitions, copy only with the copy, copy + base
    // with the copy + base.
    let mut duck_parts = start(all_duck, None, None, "parts");
    let mut duck_copy = start(all_duck, Some(&copy_files), None, "copy");
    let mut duck_base = start(
        all_duck || only_base,
        Some(&copy_files),
        Some(&base),
        "base",
    );
    // The one-off costs, when their states were measured (else the copy and base were
    // already there and only looked up).
    let one_off = |state: &str, t: &mut [f64]| {
        if measured(state) {
            format!("{:.1} ms", median(t))
        } else {
            format!("not measured (`{state}` not in CULLA_BENCH_STATES)")
        }
    };
    println!(
        "\n### {label}: {n} events, {files} files\n\n\
         Consolidated copy (first reader after a commit): {}, {copy_mb:.1} MB. \
         Base projections (folded and persisted after a commit with the copy): {}, \
         {base_mb:.1} MB. Each culla run is followed by DuckDB's run of the same question \
         in the paired state.\n\n\
         | query | culla, no cache (ms) | culla, copy only: all folded (ms) | culla, copy + base \
         (ms) | DuckDB on the partitions (ms) | DuckDB on the copy: all folded (ms) | DuckDB on \
         the copy + base (ms) | copy only / DuckDB on the copy | copy + base / DuckDB on the copy \
         + base | copy + base / DuckDB on the partitions | rows (culla / DuckDB) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|",
        one_off("copy", &mut copy_ms),
        one_off("base", &mut base_ms),
    );
    let fmt = |v: Option<f64>| v.map_or("–".to_string(), |t| format!("{t:.1}"));
    let ratio = |a: f64, b: Option<f64>| b.map_or("–".to_string(), |b| format!("{:.2}", a / b));
    let time = |name: &str, cache: Cache, state: &str, duck: Option<&mut Duck>| {
        let cache = measured(state).then_some(cache);
        median_ms(rt, name, &p, cache, duck)
    };
    // DuckDB's medians per state, summed for the last row (none: that state not run).
    let mut sums: [Option<f64>; 3] = [None; 3];
    for q in registry().iter().filter(|q| selected(q.name)) {
        let (none, _, dp) = time(q.name, Cache::None, "none", duck_parts.as_mut());
        let (cold, _, dc) = time(q.name, Cache::Cold, "cold", duck_copy.as_mut());
        let (fold, rows, db) = time(q.name, Cache::Fold, "fold", duck_base.as_mut());
        for (sum, d) in sums.iter_mut().zip([dp, dc, db]) {
            if let Some((ms, _)) = d {
                *sum = Some(sum.unwrap_or(0.0) + ms);
            }
        }
        println!(
            "| {} | {none:.1} | {cold:.1} | {fold:.1} | {} | {} | {} | {} | {} | {} | {rows} / {} |",
            q.name,
            fmt(dp.map(|d| d.0)),
            fmt(dc.map(|d| d.0)),
            fmt(db.map(|d| d.0)),
            ratio(cold, dc.map(|d| d.0)),
            ratio(fold, db.map(|d| d.0)),
            ratio(fold, dp.map(|d| d.0)),
            db.or(dc)
                .or(dp)
                .map_or("–".to_string(), |d| d.1.to_string()),
        );
    }
    drop((duck_parts, duck_copy, duck_base));
    let names: Vec<&str> = registry().iter().map(|q| q.name).collect();
    if std::env::var("CULLA_BENCH_ONLY").is_ok_and(|o| !o.is_empty()) {
        return;
    }
    let all = |cache: Cache, state: &str| -> f64 {
        if !measured(state) {
            return f64::NAN;
        }
        let mut t: Vec<f64> = (0..runs())
            .map(|_| {
                set_up(cache, &p);
                let s = Instant::now();
                rt.block_on(run_many(&names, &p)).expect("queries run");
                let ms = s.elapsed().as_secs_f64() * 1000.0;
                culla_transform::cache::wait_for_writes();
                ms
            })
            .collect();
        median(&mut t)
    };
    let (cold, fold) = (all(Cache::Cold, "cold"), all(Cache::Fold, "fold"));
    println!(
        "| all {} questions, one session (as the report) | – | {cold:.1} | {fold:.1} | {} (sum) | {} (sum) | {} (sum) | | | | |",
        names.len(),
        fmt(sums[0]),
        fmt(sums[1]),
        fmt(sums[2]),
    );
}

/// The size of the files directly in `dir`, in MB.
fn dir_mb(dir: &Path) -> f64 {
    std::fs::read_dir(dir)
        .expect("directory listed")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>() as f64
        / 1e6
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

/// `CULLA_BENCH_EXPLAIN=VIEW`: prints DataFusion's `EXPLAIN ANALYZE` of one projection
/// folded afresh over the consolidated copy (the projections as plain views), to see
/// where a fresh fold spends its time.
fn explain(rt: &tokio::runtime::Runtime, data: &Path, view: &str) {
    rt.block_on(async {
        let _lock = culla_transform::read_lock(data).expect("lock");
        let ctx = culla_transform::new_context();
        culla_transform::register_tables(&ctx, data)
            .await
            .expect("tables");
        let opts = culla_transform::ProjectionOptions::default();
        let scope = culla_transform::resolve_scope(&ctx, &opts)
            .await
            .expect("scope");
        for (name, body) in culla_transform::rendered_projections(&opts, &scope) {
            let df = ctx.sql(&body).await.expect("projection plans");
            ctx.register_table(name, df.into_view())
                .expect("view registered");
        }
        // `@FILE`: any SQL (e.g. a projection being rewritten) over the same views.
        let sql = match view.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file).expect("SQL file readable"),
            None => format!("SELECT * FROM {view}"),
        };
        let s = Instant::now();
        let batches = ctx
            .sql(&format!("EXPLAIN ANALYZE {sql}"))
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs");
        println!(
            "{}",
            datafusion::arrow::util::pretty::pretty_format_batches(&batches).expect("printable")
        );
        eprintln!("{view}: {:.1} ms", s.elapsed().as_secs_f64() * 1000.0);
    });
}

fn main() {
    // `CULLA_LOG=culla_transform=debug` shows each projection's fold time.
    if let Ok(filter) = std::env::var("CULLA_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    if let Some(ms) = std::env::var("CULLA_BENCH_PURGE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        culla_ingest::memory::set_purge_delay_ms(ms);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `CULLA_BENCH_SMALL=0` skips the one-year set; `CULLA_BENCH_DATA=DIR` keeps the
    // large set in DIR (made on the first run, reused after) for profiling runs.
    if std::env::var("CULLA_BENCH_SMALL").map_or(true, |v| v != "0") {
        bench("one year (15,000 contacts)", 15_000 * 7, None, &rt);
    }
    // The large set: `CULLA_BENCH_RUNS` runs per figure (default 3; 1 keeps a 10M run short).
    let runs = std::env::var("CULLA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize);
    RUNS.store(runs.max(1), std::sync::atomic::Ordering::Relaxed);
    let big: usize = std::env::var("CULLA_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let keep = std::env::var_os("CULLA_BENCH_DATA").map(std::path::PathBuf::from);
    if let (Some(data), Ok(view)) = (&keep, std::env::var("CULLA_BENCH_EXPLAIN")) {
        explain(&rt, data, &view);
        return;
    }
    bench("scaled", big, keep.as_deref(), &rt);
}
