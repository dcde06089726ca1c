//! `culla query NAME` answers one of the analysts' named questions, `culla query --list`
//! lists them, and `culla sql "SELECT …"` runs ad-hoc SQL over the same tables
//! (`events`, `dead_letters`, `nil`, `births`, `scope` and the projections `contacts`,
//! `needs`, `referrals`, `families`).

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate, Utc};
use culla_queries::{Output, Params, registry, write};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const QUERY_EXAMPLES: &str = "\
Examples:
  culla query --list
  culla query contacts_by_month --data data --year 2024
  culla query service_levels_by_month --data data --from 2024-01-01 --to 2024-06-30 --source milano-020202
  culla query unmet_needs_by_nil --data data --year 2024 --public --format csv --out unmet.csv
  culla query escalations_by_month --data data --callback-target-hours 48 --as-of 2025-01-31T00:00:00Z

Months are 'YYYY-MM' in Europe/Rome time; weekday is ISO (1 = Monday .. 7 = Sunday).
With --public, counts 1-4 are shown as <5, a second cell is hidden where a total would
give the first away (shown as c: its value may be large), and rates built on hidden
counts are hidden too (shown as -). JSON and Parquet hold null there, plus the columns
'suppressed' and 'suppressed_secondary' (docs/DISCLOSURE.md).

The first question after a commit copies the event log into DIR/_culla/cache/ and keeps
the projections it computes there, so asking again with the same options is fast; a new
commit makes them stale. CULLA_CACHE=off reads the partitions directly.";

const SQL_EXAMPLES: &str = "\
Examples:
  culla sql --tables --data data
  culla sql --data data \"SELECT channel, count(*) FROM contacts GROUP BY channel\"
  culla sql --data data --year 2024 \"SELECT reason, count(*) FROM needs WHERE status = 'unmet' GROUP BY reason\"
  culla sql --data data --format parquet --out families.parquet \"SELECT * FROM families\"

The projections (contacts, needs, referrals, families) are computed for the period and
options given (--year or --from/--to, --source, --as-of, …); `scope` says which.";

/// Period, source and thresholds the projections are computed for.
#[derive(clap::Args, Debug, Clone)]
pub struct ScopeArgs {
    /// Data directory (holds events/, dead_letters/, _culla/).
    #[arg(long, env = "CULLA_DATA", default_value = "data")]
    pub data: PathBuf,
    /// Calendar year to report on (1 January - 31 December, Europe/Rome dates).
    #[arg(long, env = "CULLA_YEAR", conflicts_with_all = ["from", "to"])]
    pub year: Option<i32>,
    /// First day of the period, YYYY-MM-DD (inclusive, Europe/Rome date).
    #[arg(long, env = "CULLA_FROM", value_parser = parse_date)]
    pub from: Option<NaiveDate>,
    /// Last day of the period, YYYY-MM-DD (inclusive, Europe/Rome date).
    #[arg(long, env = "CULLA_TO", value_parser = parse_date)]
    pub to: Option<NaiveDate>,
    /// Only this service line, e.g. milano-020202 or melzo-1000giorni.
    #[arg(long, env = "CULLA_SOURCE")]
    pub source: Option<String>,
    /// Judge open states (no callback yet) as of this instant, RFC 3339 or YYYY-MM-DD
    /// (default: the latest event in the data, so reruns agree).
    #[arg(long, env = "CULLA_AS_OF", value_parser = parse_instant)]
    pub as_of: Option<DateTime<Utc>>,
    /// A family is high risk with at least this many isolation-risk flags.
    #[arg(long, env = "CULLA_RISK_THRESHOLD", default_value_t = 3)]
    pub risk_threshold: u32,
    /// Callback target in hours (time from referral to the first reached callback).
    #[arg(long, env = "CULLA_CALLBACK_TARGET_HOURS", default_value_t = 72.0)]
    pub callback_target_hours: f64,
}

/// Where and how to write a result.
#[derive(clap::Args, Debug, Clone)]
pub struct OutArgs {
    /// Output format: table, csv, json (array of objects) or parquet.
    #[arg(long, env = "CULLA_FORMAT", default_value = "table", value_parser = parse_format)]
    pub format: Output,
    /// Write to this file instead of standard output.
    #[arg(long, env = "CULLA_OUT")]
    pub out: Option<PathBuf>,
}

/// Answer one of the analysts' named questions.
#[derive(clap::Args)]
#[command(after_help = QUERY_EXAMPLES)]
pub struct QueryArgs {
    /// The question's name (see --list).
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// List the questions, one per line, and exit.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub output: OutArgs,
    /// Apply disclosure control for publishing: counts 1–4 hidden, and questions by
    /// territory, need or family characteristic protected together with every other
    /// public table of the year (needs --year; see `culla disclosure`).
    #[arg(long, env = "CULLA_PUBLIC")]
    pub public: bool,
    /// With --public: the smallest count shown (counts 1 to this minus 1 are hidden).
    #[arg(long, env = "CULLA_MIN_COUNT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub min_count: u32,
}

/// Run ad-hoc SQL over the events, reference tables and projections.
#[derive(clap::Args)]
#[command(after_help = SQL_EXAMPLES)]
pub struct SqlArgs {
    /// The SQL statement (DataFusion dialect).
    #[arg(required_unless_present = "tables")]
    pub query: Option<String>,
    /// List the tables and their columns, and exit.
    #[arg(long)]
    pub tables: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub output: OutArgs,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a date like 2024-03-31"))
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = parse_date(s)
        .map_err(|_| format!("{s:?} is not an instant like 2025-01-31T00:00:00Z or a date"))?;
    // A bare date means the end of that day in Rome.
    let end = d.and_hms_opt(23, 59, 59).unwrap_or_default();
    end.and_local_timezone(culla_schemas::arrow::REPORT_TZ)
        .latest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{s:?} does not exist in Europe/Rome time"))
}

fn parse_format(s: &str) -> Result<Output, String> {
    s.parse()
}

fn params(scope: &ScopeArgs) -> Params {
    Params {
        data: scope.data.clone(),
        from: scope.from,
        to: scope.to,
        year: scope.year,
        source: scope.source.clone(),
        as_of: scope.as_of,
        risk_threshold: scope.risk_threshold,
        callback_target_hours: scope.callback_target_hours,
        public: false,
        min_count: 5,
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the query runtime")
}

fn require_events(scope: &ScopeArgs) -> anyhow::Result<()> {
    if !culla_transform::has_events(&scope.data) {
        bail!(
            "no events in {}: ingest some first (culla ingest) or point --data at a data directory",
            scope.data.display()
        );
    }
    Ok(())
}

fn emit(batch: &culla_queries::RecordBatch, out: &OutArgs) -> anyhow::Result<()> {
    match &out.out {
        Some(path) => {
            let mut f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            write(batch, out.format, &mut f)?;
            f.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            super::published(path)?;
        }
        None => {
            let stdout = std::io::stdout();
            if out.format == Output::Parquet && stdout.is_terminal() {
                bail!("Parquet is binary: give --out FILE (or redirect standard output)");
            }
            let mut lock = stdout.lock();
            match write(batch, out.format, &mut lock) {
                // A closed pipe (`| head`) is the reader's choice, not an error.
                Err(culla_queries::WriteError::Io(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => r?,
            }
            lock.flush().ok();
        }
    }
    Ok(())
}

/// Answers one named question (or lists them).
pub fn run_query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    if args.list {
        let width = registry().iter().map(|q| q.name.len()).max().unwrap_or(0);
        let mut out = std::io::stdout().lock();
        for q in registry() {
            writeln!(out, "{:width$}  {} / {}", q.name, q.title_en, q.title_it)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let name = args.name.clone().unwrap_or_default();
    if culla_queries::find(&name).is_none() {
        // Checked before touching the data so a typo gets its suggestion first.
        return Err(culla_queries::Error::UnknownQuery {
            suggestion: culla_queries::registry::closest(&name),
            name,
        }
        .into());
    }
    require_events(&args.scope)?;
    let mut p = params(&args.scope);
    p.public = args.public;
    p.min_count = args.min_count;
    let batch = runtime()?.block_on(culla_queries::run(&name, &p))?;
    emit(&batch, &args.output)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs ad-hoc SQL (or lists the tables).
pub fn run_sql(args: SqlArgs) -> anyhow::Result<ExitCode> {
    let p = params(&args.scope);
    let opts = p.projection_options()?;
    let rt = runtime()?;
    if args.tables {
        let text = rt.block_on(async {
            let _lock = culla_transform::read_lock(&p.data)?;
            let ctx = culla_transform::open(&p.data, &opts).await?;
            culla_transform::describe_tables(&ctx).await
        })?;
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    require_events(&args.scope)?;
    let sql = args.query.clone().unwrap_or_default();
    let batch = rt.block_on(async {
        let _lock = culla_transform::read_lock(&p.data)?;
        let ctx = culla_transform::open(&p.data, &opts).await?;
        culla_transform::sql_one_batch(&ctx, &sql).await
    })?;
    emit(&batch, &args.output)?;
    Ok(ExitCode::SUCCESS)
}

/// Check a release before publishing: every protected question of each year, for all
/// sources together and each alone, as every public output shows them.
#[derive(clap::Args)]
#[command(after_help = DISCLOSURE_EXAMPLES)]
pub struct DisclosureArgs {
    /// The data directory.
    #[arg(long, env = "CULLA_DATA", default_value = "data")]
    pub data: PathBuf,
    /// A calendar year to check (repeat for several).
    #[arg(long, required = true)]
    pub year: Vec<i32>,
    /// The smallest count shown (counts 1 to this minus 1 are hidden; at least 3).
    #[arg(long, env = "CULLA_MIN_COUNT", default_value_t = 5)]
    pub min_count: u32,
}

const DISCLOSURE_EXAMPLES: &str = "Examples:
  culla disclosure --data DIR --year 2023 --year 2024

For each year it prints how many published cells the protected questions have, how many
are hidden, and every hidden cell that adding or subtracting published cells would still
give away (exit 1 when there is one). docs/DISCLOSURE.md explains the method.";

/// Builds each year's release and prints any cell it cannot protect.
pub fn run_disclosure(args: DisclosureArgs) -> anyhow::Result<ExitCode> {
    if !culla_transform::has_events(&args.data) {
        bail!("no events in {}: nothing to check", args.data.display());
    }
    let rt = runtime()?;
    let mut exposed = 0;
    let mut out = std::io::stdout().lock();
    for year in &args.year {
        let p = Params {
            data: args.data.clone(),
            year: Some(*year),
            public: true,
            min_count: args.min_count,
            ..Params::default()
        };
        let r = rt.block_on(culla_queries::release::build(&p))?;
        writeln!(
            out,
            "{year}: {} sources, {} published cells, {} hidden, {} equations between them; {} recoverable",
            r.sources.len(),
            r.cells().count(),
            r.hidden_count(),
            r.equations,
            r.exposed.len()
        )?;
        for id in &r.exposed {
            writeln!(out, "  recoverable: {id}")?;
        }
        exposed += r.exposed.len();
    }
    Ok(if exposed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
