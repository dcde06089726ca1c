//! Benchmark: generating the annual report for one simulated year (Milan's line,
//! about 15,000 contacts). Target: under 2 s.
//!
//! The data directory is `CULLA_BENCH_DATA` when set (it must hold year
//! `CULLA_BENCH_YEAR`, default 2024), else a year simulated into a temporary folder
//! (`CULLA_BENCH_CONTACTS` contacts, default the line's own ~15,000). Run with
//! `cargo bench -p culla-dashboards --bench report`; figures go to docs/bench-report.md.

use culla_dashboards::i18n::Lang;
use culla_dashboards::report::{ReportOptions, generate};
use std::time::Instant;

/// The same allocator and setting as `culla report` (mimalloc, its default purge delay),
/// so the figures are what users run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let year: i32 = std::env::var("CULLA_BENCH_YEAR")
        .ok()
        .and_then(|y| y.parse().ok())
        .unwrap_or(2024);
    let tmp = tempfile::tempdir().expect("temporary folder");
    let data = match std::env::var_os("CULLA_BENCH_DATA") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            let contacts = std::env::var("CULLA_BENCH_CONTACTS")
                .ok()
                .and_then(|c| c.parse().ok());
            let cfg = culla_simulate::SimConfig {
                year,
                seed: 7,
                contacts,
                ..Default::default()
            };
            let started = Instant::now();
            let lines = culla_simulate::simulate(&cfg);
            let w = culla_dashboards::fixture::write_events(
                tmp.path(),
                lines.iter().map(|l| l.bytes.as_slice()),
                "bench",
            )
            .expect("fixture data");
            eprintln!(
                "fixture: {} events in {} files, {:.2} s",
                w.events,
                w.files,
                started.elapsed().as_secs_f64()
            );
            tmp.path().to_path_buf()
        }
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opts = ReportOptions {
        data,
        year,
        lang: Lang::It,
        source: None,
        survey: None,
        min_count: 5,
    };
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let html = rt.block_on(generate(&opts)).expect("report");
        times.push(started.elapsed().as_secs_f64());
        // Projections persisted for the next run are written in the background (as `culla
        // report` does before it exits): let them finish outside the timed region.
        culla_transform::cache::wait_for_writes();
        size = html.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "report {year}: median {:.3} s, min {:.3} s, max {:.3} s over {} runs; {} KiB of HTML; target < 2 s",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len(),
        size / 1024
    );
}
