//! Profiling aid: times ad-hoc SQL over a data directory's registered tables and views
//! (the same opening as `culla sql`), built with the benchmarks' release settings, so a
//! question's variants can be compared without building the `culla` binary in release
//! (which resolves DataFusion's features apart from the benchmarks and rebuilds it).
//!
//! ```text
//! cargo build --release --locked --example sql_timing -p culla-queries -p culla-ingest -p culla-dashboards
//! target/release/examples/sql_timing DIR RUNS "SQL" ["SQL" ...]
//! ```
//!
//! Prints, per statement, the median milliseconds of RUNS runs, each on a fresh opening
//! of the data, and the rows returned; a statement's rows are printed when there are at
//! most five (its plan for `EXPLAIN [ANALYZE]`). `SQL_TIMING_YEAR=Y` opens the data for
//! one year, `SQL_TIMING_SOURCE=S` for one source, `SQL_TIMING_AS_OF=RFC3339` as of an
//! instant; `SQL_TIMING_PARQUET=name=path,...` registers more Parquet files as tables
//! (their schema read from the file, strings as DataFusion reads them by default).
//! A column whose rows are of another type than the plan declares is reported.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, runs, sqls @ ..] = args.as_slice() else {
        eprintln!("usage: sql_timing DIR RUNS SQL...");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    let runs: usize = runs.parse().expect("RUNS is a number");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let opts = culla_queries::Params {
        data: dir.clone(),
        year: std::env::var("SQL_TIMING_YEAR")
            .ok()
            .and_then(|y| y.parse().ok()),
        source: std::env::var("SQL_TIMING_SOURCE").ok(),
        as_of: std::env::var("SQL_TIMING_AS_OF").ok().map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .expect("SQL_TIMING_AS_OF is an RFC 3339 instant")
                .to_utc()
        }),
        ..culla_queries::Params::default()
    }
    .projection_options()
    .expect("options");
    for sql in sqls {
        let mut t = Vec::new();
        let mut rows = 0;
        for _ in 0..runs.max(1) {
            let s = Instant::now();
            let batches = rt.block_on(async {
                let _lock = culla_transform::read_lock(&dir).expect("read lock");
                let (ctx, _scope) = culla_transform::open_scoped(&dir, &opts)
                    .await
                    .expect("data opens");
                for spec in std::env::var("SQL_TIMING_PARQUET")
                    .unwrap_or_default()
                    .split(',')
                {
                    if let Some((name, path)) = spec.split_once('=') {
                        ctx.register_parquet(name, path, Default::default())
                            .await
                            .expect("parquet registers");
                    }
                }
                let df = ctx.sql(sql).await.expect("plans");
                let declared = df.schema().as_arrow().clone();
                let batches = df.collect().await.expect("runs");
                if let Some(first) = batches.first() {
                    for (d, c) in declared.fields().iter().zip(first.columns()) {
                        if d.data_type() != c.data_type() {
                            eprintln!(
                                "{}: declared {}, rows {}",
                                d.name(),
                                d.data_type(),
                                c.data_type()
                            );
                        }
                    }
                }
                batches
            });
            t.push(s.elapsed().as_secs_f64() * 1000.0);
            rows = batches.iter().map(|b| b.num_rows()).sum();
            let explain = sql.to_ascii_uppercase().starts_with("EXPLAIN");
            if explain || (t.len() == 1 && rows <= 5) {
                println!(
                    "{}",
                    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                        .expect("printable")
                );
            }
            if explain {
                break;
            }
        }
        t.sort_by(f64::total_cmp);
        let head: String = sql.chars().take(110).collect();
        println!("{:8.1} ms  {rows:>8} rows  {head}", t[t.len() / 2]);
    }
}
