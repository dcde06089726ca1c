//! `culla produce`, `culla ingest`, `culla deadletters`, `culla compact` and `culla
//! warm`: putting events on a log, compacting them exactly once into Parquet, looking
//! after what was rejected or written in small pieces, and making the read caches.
//!
//! Every command works on the embedded local log (`DIR/log/`) or on Kafka
//! (`--brokers`); the data directory's manifest is the only record of progress.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use culla_ingest::compact::{CompactOptions, compact};
use culla_ingest::deadletters;
use culla_ingest::locallog::{LocalLogSink, LocalLogSource};
use culla_ingest::pipeline::{self, IngestOptions};
use culla_ingest::{EventSink, EventSource};
use culla_schemas::layout::DataDir;

/// Put NDJSON events on the event log: the local log in DIR/log, or Kafka.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla produce --from events.ndjson --data ./data
  culla simulate | culla produce --from - --data ./data
  culla produce --from events.ndjson --brokers localhost:9092

Each line goes to the topic of its `type` (calls, chats or referrals), keyed by its
`family`, byte for byte: produce does not validate (ingest does, and sends bad lines to
the dead letters). A line without a readable known type goes to --default-topic.")]
pub struct ProduceArgs {
    /// NDJSON file to send; `-` reads standard input.
    #[arg(long, env = "CULLA_PRODUCE_FROM", default_value = "-")]
    pub from: PathBuf,
    /// Data directory whose local log (DIR/log) receives the events (when no --brokers).
    #[arg(long, env = "CULLA_DATA", required_unless_present = "brokers")]
    pub data: Option<PathBuf>,
    /// Kafka bootstrap brokers, host:port[,host:port]; sends to Kafka instead of the local log.
    #[arg(long, env = "CULLA_BROKERS")]
    pub brokers: Option<String>,
    /// Topic for lines whose type cannot be read (they become dead letters at ingest).
    #[arg(long, env = "CULLA_DEFAULT_TOPIC", default_value = "calls")]
    pub default_topic: String,
    /// Partitions of a local-log topic created by this run (existing topics keep theirs).
    #[arg(long, env = "CULLA_LOG_PARTITIONS", default_value_t = culla_ingest::locallog::DEFAULT_PARTITIONS)]
    pub partitions: u32,
}

/// Sends the lines of `--from` to the local log or Kafka.
pub fn run_produce(a: ProduceArgs) -> anyhow::Result<ExitCode> {
    let mut input: Box<dyn BufRead> = if a.from.as_os_str() == "-" {
        Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let f = std::fs::File::open(&a.from)
            .with_context(|| format!("cannot open {}", a.from.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let mut sink: Box<dyn EventSink> = match (&a.brokers, &a.data) {
        (Some(b), _) => Box::new(culla_ingest::kafka::KafkaSink::new(b)?),
        (None, Some(d)) => Box::new(LocalLogSink::open(DataDir::new(d).log_dir(), a.partitions)?),
        (None, None) => anyhow::bail!("give --data DIR (local log) or --brokers HOST:PORT (Kafka)"),
    };
    let sum = culla_ingest::produce::produce(&mut *input, &mut *sink, &a.default_topic)?;
    drop(sink);
    println!("{sum}");
    Ok(ExitCode::SUCCESS)
}

/// Compact events from the log into Parquet, exactly once.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla ingest --data ./data --until-idle          # local log in ./data/log, then exit
  culla ingest --data ./data --brokers localhost:9092   # follow Kafka until Ctrl-C

Valid events go to the Delta table DIR/events (files under source=…/event_date=…/),
bad messages to the Delta table DIR/dead_letters (see `culla deadletters`), duplicates
(same event_id) are dropped. Files and offsets are committed together in each table's
Delta log (_delta_log/), so a crash or a restart never loses or duplicates an event;
DuckDB (delta_scan), Python deltalake, Spark and Power BI read the tables as they are. Ctrl-C (or SIGTERM) commits what is pending
and exits. Prints one summary line.

Read caches: after a batch ingest, and while a streaming ingest is caught up with the
log, the consolidated copy and the base projections of the new commit are made (at the
lowest CPU priority while streaming), so questions do not fold the log themselves.")]
pub struct IngestArgs {
    /// Data directory (the events and dead_letters tables; and the local log in DIR/log).
    #[arg(long, env = "CULLA_DATA")]
    pub data: PathBuf,
    /// Kafka bootstrap brokers, host:port[,host:port]; without it the local log is read.
    #[arg(long, env = "CULLA_BROKERS")]
    pub brokers: Option<String>,
    /// Kafka consumer group (processes of one group split the partitions).
    #[arg(long, env = "CULLA_GROUP", default_value = "culla-ingest")]
    pub group: String,
    /// Topics to read, comma-separated.
    #[arg(
        long,
        env = "CULLA_TOPICS",
        value_delimiter = ',',
        default_value = "calls,chats,referrals"
    )]
    pub topics: Vec<String>,
    /// Exit once everything on the log is read and committed (batch mode).
    #[arg(long, env = "CULLA_UNTIL_IDLE")]
    pub until_idle: bool,
    /// Flush when this many MB of raw events are pending (files on disk are smaller).
    #[arg(long, env = "CULLA_MAX_FILE_MB", default_value_t = culla_ingest::pipeline::DEFAULT_MAX_FILE_MB as f64)]
    pub max_file_mb: f64,
    /// Flush at least every this many seconds while events arrive.
    #[arg(long, env = "CULLA_FLUSH_SECS", default_value_t = 10.0)]
    pub flush_secs: f64,
}

/// Sets the returned flag on SIGINT or SIGTERM.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("culla-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!("cannot watch for Ctrl-C: {e}");
                    return;
                }
            };
            rt.block_on(async {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{SignalKind, signal};
                    let Ok(mut term) = signal(SignalKind::terminate()) else {
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    };
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = tokio::signal::ctrl_c().await;
                }
            });
            flag.store(true, Ordering::Relaxed);
            eprintln!("culla: stopping after committing what is pending…");
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch for Ctrl-C: {e}");
    }
    stop
}

/// Reads the log into the data directory.
pub fn run_ingest(a: IngestArgs) -> anyhow::Result<ExitCode> {
    if !a.max_file_mb.is_finite()
        || a.max_file_mb <= 0.0
        || !a.flush_secs.is_finite()
        || a.flush_secs <= 0.0
    {
        anyhow::bail!("--max-file-mb and --flush-secs must be positive numbers");
    }
    let dir = DataDir::new(&a.data);
    let topics: Vec<String> = a
        .topics
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let opts = IngestOptions {
        max_file_bytes: (a.max_file_mb * 1024.0 * 1024.0) as usize,
        flush_interval: Duration::from_secs_f64(a.flush_secs),
        until_idle: a.until_idle,
        progress: true,
        caught_up: (!a.until_idle).then(|| Arc::new(AtomicU64::new(0))),
        ..IngestOptions::default()
    };
    let stop = stop_on_signal();
    let mut source: Box<dyn EventSource> = match &a.brokers {
        Some(b) => Box::new(culla_ingest::kafka::KafkaSource::new(
            culla_ingest::kafka::KafkaSourceConfig {
                brokers: b.clone(),
                group: a.group.clone(),
                topics,
                start_offsets: pipeline::start_offsets(&dir),
            },
        )?),
        None => Box::new(LocalLogSource::open(
            dir.log_dir(),
            &topics,
            pipeline::start_offsets(&dir),
        )?),
    };
    let ingesting = AtomicBool::new(true);
    let ingested = std::thread::scope(|s| {
        if let Some(caught_up) = &opts.caught_up
            && culla_transform::eventcache::enabled()
        {
            let (data, ingesting) = (&a.data, &ingesting);
            std::thread::Builder::new()
                .name("culla-warm".into())
                .spawn_scoped(s, move || warm_while_streaming(data, caught_up, ingesting))
                .context("cannot start the thread that warms the read caches")?;
        }
        let ingested = pipeline::run(&mut *source, &dir, &opts, &stop);
        ingesting.store(false, Ordering::Relaxed);
        anyhow::Ok(ingested?)
    })?;
    println!("{ingested}");
    culla_transform::warm_cache(&a.data);
    Ok(ExitCode::SUCCESS)
}

/// After a warm that took `d`, the next starts no sooner than `WARM_REST × d` after it
/// ended: on a large log (a fold of 20 s on 10M events) a trickle of commits keeps the
/// warms running a quarter of the time, not all of it; on a year's log (under a
/// second) every commit is warmed at once.
const WARM_REST: u32 = 3;

/// While a streaming ingest runs: each time it is caught up with the log after new
/// commits, makes the read caches of the data directory (`culla warm --background`, a
/// child process at the lowest CPU priority, so ingest keeps its memory and its CPU),
/// one at a time and resting [`WARM_REST`] times as long as the last one took; stops
/// the child when ingest stops.
fn warm_while_streaming(data: &std::path::Path, caught_up: &AtomicU64, ingesting: &AtomicBool) {
    let Ok(exe) = std::env::current_exe() else {
        tracing::warn!("cannot find culla's executable: read caches made by readers");
        return;
    };
    let mut warmed = 0u64;
    let mut child: Option<(std::process::Child, std::time::Instant)> = None;
    let mut rest_until = std::time::Instant::now();
    while ingesting.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if let Some((c, started)) = &mut child {
            match c.try_wait() {
                Ok(None) => continue,
                Ok(Some(status)) if !status.success() => {
                    tracing::warn!(%status, "warming the read caches failed")
                }
                _ => {}
            }
            let now = std::time::Instant::now();
            rest_until = now + now.duration_since(*started) * WARM_REST;
            child = None;
        }
        let now = caught_up.load(Ordering::Relaxed);
        if now <= warmed || std::time::Instant::now() < rest_until {
            continue;
        }
        warmed = now;
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("warm")
            .arg("--background")
            .arg("--data")
            .arg(data)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // Its own process group: a Ctrl-C meant for ingest reaches ingest alone.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        match cmd.spawn() {
            Ok(c) => child = Some((c, std::time::Instant::now())),
            Err(e) => {
                tracing::warn!("cannot start `culla warm`: {e}");
                return;
            }
        }
    }
    if let Some((mut c, _)) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// What to do with the dead letters.
#[derive(clap::Subcommand)]
pub enum DeadLettersCommand {
    /// Count dead letters by reason, or list the rows of one reason.
    List {
        /// Data directory.
        #[arg(long, env = "CULLA_DATA")]
        data: PathBuf,
        /// List the rows of this reason (e.g. `not_json`, `bad_family`).
        #[arg(long, env = "CULLA_REASON")]
        reason: Option<String>,
    },
    /// Re-validate dead letters and store the ones now valid as events.
    Replay {
        /// Data directory.
        #[arg(long, env = "CULLA_DATA")]
        data: PathBuf,
        /// Replay only this reason.
        #[arg(long, env = "CULLA_REASON")]
        reason: Option<String>,
    },
}

/// List or replay the messages ingest rejected.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla deadletters list --data ./data                   # counts by reason
  culla deadletters list --data ./data --reason not_json  # the rows: topic, partition, offset, detail
  culla deadletters replay --data ./data --reason bad_family

Replay re-validates with this version of culla; the rows now valid become events
(never twice: a second replay finds them gone) and the rest stay. Rows whose personal
data was masked (`redacted`) are never replayed.")]
pub struct DeadLettersArgs {
    /// list or replay.
    #[command(subcommand)]
    pub command: DeadLettersCommand,
}

/// Lists or replays dead letters.
pub fn run_deadletters(a: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match a.command {
        DeadLettersCommand::List { data, reason: None } => {
            let counts = deadletters::counts(&DataDir::new(&data))?;
            let total: u64 = counts.values().sum();
            writeln!(out, "{:<16} {:>10}", "reason", "count")?;
            for (r, n) in &counts {
                writeln!(out, "{r:<16} {n:>10}")?;
            }
            writeln!(out, "{:<16} {total:>10}", "total")?;
        }
        DeadLettersCommand::List {
            data,
            reason: Some(r),
        } => {
            let rows = deadletters::list(&DataDir::new(&data), Some(&r))?;
            writeln!(out, "topic\tpartition\toffset\treason\tdetail")?;
            for d in &rows {
                let redacted = if d.redacted { " [redacted]" } else { "" };
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}{redacted}",
                    d.topic, d.partition, d.offset, d.reason, d.detail
                )?;
            }
            eprintln!("{} dead letters with reason {r}", rows.len());
        }
        DeadLettersCommand::Replay { data, reason } => {
            let sum = deadletters::replay(&DataDir::new(&data), reason.as_deref())?;
            writeln!(out, "{sum}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Merge small Parquet files into large ones.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla compact --data ./data
  culla compact --data ./data --target-mb 256

Safe while `culla ingest` runs and after a crash at any moment: each merge is one
Delta commit (OPTIMIZE), and readers never see a half-swapped partition. The replaced
files are deleted at once, so a plain Parquet glob of DIR/events reads every event once.")]
pub struct CompactArgs {
    /// Data directory.
    #[arg(long, env = "CULLA_DATA")]
    pub data: PathBuf,
    /// Merged files grow to about this many MB; larger files are left alone.
    #[arg(long, env = "CULLA_COMPACT_TARGET_MB", default_value_t = 128.0)]
    pub target_mb: f64,
}

/// Compacts the data directory.
pub fn run_compact(a: CompactArgs) -> anyhow::Result<ExitCode> {
    if !a.target_mb.is_finite() || a.target_mb <= 0.0 {
        anyhow::bail!("--target-mb must be a positive number");
    }
    let opts = CompactOptions {
        target_bytes: (a.target_mb * 1024.0 * 1024.0) as u64,
        ..CompactOptions::default()
    };
    let sum = compact(&DataDir::new(&a.data), &opts)?;
    println!("{sum}");
    culla_transform::warm_cache(&a.data);
    Ok(ExitCode::SUCCESS)
}

/// Make the read caches of a data directory now.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla warm --data ./data
  culla warm --data ./data --background      # at the lowest CPU priority

Makes what the next question would otherwise make first: the consolidated copy of the
event log's live files, and the base projections folded from it as of the latest event,
for every source together and for each source alone. After that, every question on
this commit (any period, thresholds, --source, or an --as-of after the latest event)
reads them; only an --as-of before the latest event folds its own. `culla ingest` and
`culla compact` do this themselves when they finish, and a streaming ingest whenever it
is caught up with the log; use it after copying data in by hand.")]
pub struct WarmArgs {
    /// Data directory.
    #[arg(long, env = "CULLA_DATA")]
    pub data: PathBuf,
    /// Run at the lowest CPU priority (nice 19), as a streaming ingest does.
    #[arg(long)]
    pub background: bool,
}

/// Makes the read caches.
pub fn run_warm(a: WarmArgs) -> anyhow::Result<ExitCode> {
    if a.background {
        culla_transform::cache::lower_priority();
    }
    if !culla_transform::eventcache::enabled() {
        anyhow::bail!("read caches are off (CULLA_CACHE): nothing to make");
    }
    if !a.data.is_dir() {
        anyhow::bail!("no data directory at {}", a.data.display());
    }
    let started = std::time::Instant::now();
    let _lock = culla_transform::read_lock(&a.data)?;
    culla_transform::warm_base(&a.data)?;
    println!(
        "read caches ready in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
