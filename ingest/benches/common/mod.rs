//! What the ingest benchmarks share: the simulated input and its expected outcome, the
//! ingest child process (so its peak RSS is ingest's alone) and its report.

use chrono::Utc;
use culla_ingest::pipeline::{IngestOptions, IngestSummary};
use culla_schemas::parse_event;
use culla_simulate::{SimConfig, SimLine, contacts_for_events, simulate};
use std::collections::HashSet;
use std::time::Instant;

/// The same allocator as the `culla` binary, so the child measures what users run.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The prefix of the child's result line on its stdout.
const RESULT: &str = "bench-result";

/// Peak resident memory of this process (`VmHWM`), in MB.
pub fn vm_hwm_mb() -> f64 {
    culla_ingest::memory::peak_resident_mb().unwrap_or(f64::NAN)
}

/// The allocator setting `culla` runs with (mimalloc's purge delay of 1 ms), unless
/// `CULLA_BENCH_PURGE_MS` sets another delay or `CULLA_BENCH_DEFAULT_PURGE` is set
/// (mimalloc's default), to compare.
pub fn tune_allocator() {
    if let Some(ms) = std::env::var("CULLA_BENCH_PURGE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        culla_ingest::memory::set_purge_delay_ms(ms);
    } else if std::env::var_os("CULLA_BENCH_DEFAULT_PURGE").is_none() {
        culla_ingest::memory::return_freed_memory_promptly();
    }
}

/// The child's ingest options: a batch run (`--until-idle`) with the CLI's defaults, but
/// `CULLA_BENCH_MAX_FILE_MB` sets `--max-file-mb` and `CULLA_BENCH_QUEUE_BATCHES` the
/// queue (to compare memory and speed).
pub fn batch_options() -> IngestOptions {
    let mut opts = IngestOptions {
        until_idle: true,
        ..IngestOptions::default()
    };
    if let Some(mb) = std::env::var("CULLA_BENCH_MAX_FILE_MB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        opts.max_file_bytes = mb * 1024 * 1024;
    }
    if let Some(n) = std::env::var("CULLA_BENCH_QUEUE_BATCHES")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        opts.queue_batches = n;
    }
    if let Ok(v) = std::env::var("CULLA_BENCH_PACE") {
        opts.pace = Some(v != "0");
    }
    opts
}

/// How many events to simulate: `CULLA_BENCH_EVENTS` (default 1,000,000).
pub fn bench_events() -> usize {
    std::env::var("CULLA_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(1_000_000)
}

/// A simulated input and what ingest must make of it.
pub struct Simulated {
    /// The year's lines, exactly as many as asked for.
    pub lines: Vec<SimLine>,
    /// The simulation's settings.
    pub cfg: SimConfig,
    /// Distinct valid `event_id`s, worked out with `parse_event` (not by ingest).
    pub distinct: usize,
    /// Lines that fail validation.
    pub invalid: usize,
    /// Seconds spent simulating.
    pub secs: f64,
}

/// One realistic year of Milan's line (2024, seed 7) sized to `want` events
/// (`contacts_for_events`, the sizing of the simulate bench), cut to `want` lines.
pub fn simulated(want: usize) -> Simulated {
    let t = Instant::now();
    let mut cfg = SimConfig::default();
    cfg.contacts = Some(contacts_for_events(&cfg, want as u64));
    let mut lines = simulate(&cfg);
    lines.truncate(want);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(lines.len(), want, "the simulated year is long enough");
    let now = Utc::now();
    let mut distinct = HashSet::with_capacity(lines.len());
    let mut invalid = 0usize;
    for l in &lines {
        match parse_event(&l.bytes, now) {
            Ok(ev) => {
                distinct.insert(ev.event_id);
            }
            Err(_) => invalid += 1,
        }
    }
    Simulated {
        lines,
        cfg,
        distinct: distinct.len(),
        invalid,
        secs,
    }
}

/// In the child: logs to stderr what `CULLA_LOG` asks for (a `tracing` filter such as
/// `culla_ingest=debug`: each commit's files, stored ids, id index and RSS), as `culla`
/// does; nothing when it is unset.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("CULLA_LOG") {
        let filter = tracing_subscriber::EnvFilter::try_new(filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}

/// This process's CPU seconds so far, user and system (`/proc/self/stat`, in the kernel's
/// fixed 100 ticks a second): far steadier than wall time on a shared machine.
pub fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse::<f64>().unwrap_or(f64::NAN) / 100.0)
        .collect();
    (
        f.first().copied().unwrap_or(f64::NAN),
        f.get(1).copied().unwrap_or(f64::NAN),
    )
}

/// In the child: prints its result line (messages read, seconds, peak RSS, files, CPU
/// seconds in user and system mode).
pub fn report_child(s: &IngestSummary, secs: f64) {
    let n = s.events + s.duplicates + s.dead_letter_total();
    let (user, sys) = cpu_seconds();
    eprintln!("ingest: {s}; CPU {user:.2} s user, {sys:.2} s system");
    println!(
        "{RESULT} {n} {secs} {} {} {user} {sys}",
        vm_hwm_mb(),
        s.files
    );
}

/// What the ingest child reported.
pub struct ChildResult {
    /// Messages read.
    pub messages: f64,
    /// Seconds from opening the source to the last commit.
    pub secs: f64,
    /// The child's peak RSS in MB.
    pub rss: f64,
    /// Files written.
    pub files: f64,
    /// CPU seconds the child spent in user mode.
    pub cpu_user: f64,
    /// CPU seconds the child spent in the kernel.
    pub cpu_sys: f64,
}

/// Runs this bench binary again with `key=value` in its environment (the child mode)
/// and reads its result line.
pub fn run_child(key: &str, value: impl AsRef<std::ffi::OsStr>) -> ChildResult {
    let exe = std::env::current_exe().expect("own path");
    let out = std::process::Command::new(exe)
        .env(key, value)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the ingest child");
    assert!(out.status.success(), "the ingest child failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT))
        .expect("the child reports its result")
        .split_whitespace()
        .map(|x| x.parse().expect("a number"))
        .collect();
    ChildResult {
        messages: f[0],
        secs: f[1],
        rss: f[2],
        files: f[3],
        cpu_user: f[4],
        cpu_sys: f[5],
    }
}
