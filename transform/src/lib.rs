//! culla-transform: a DataFusion session over a culla data directory, with the
//! event-sourced projections every report is built from.
//!
//! [`open`] registers the raw tables `events` (a listing table over
//! `DIR/events/source=…/event_date=…/*.parquet`, hive partitions `source` and
//! `event_date` as Utf8) and `dead_letters` (partition `received_date`), the Milan
//! reference tables `nil` and `births`, a one-row `scope` table saying which period,
//! source and as-of instant the projections use, and the projections themselves, folded
//! from the whole log so a late event corrects the past:
//!
//! - `contacts`: one row per contact (call or chat) received in the period;
//! - `needs`: one row per need recorded in the period, with its final status and reason;
//! - `referrals`: one row per referral created in the period, with callbacks,
//!   appointments and closing;
//! - `families`: one row per family in contact in the period, with its merged profile,
//!   isolation-risk flags, score and `high_risk`;
//! - the base projections they are cut from ([`BASE`]: `contact_base`, `need_base`,
//!   `referral_base`, `profile_base`, `family_base`) and helpers `scoped_events`,
//!   `profile_events`, `profiles`, `profiles_to`, `contact_history`, `referral_state`.
//!
//! The projections are SQL files (`transform/sql/*.sql`, embedded) rendered with the
//! period and options: DataFusion does all the heavy lifting. Readers must hold
//! [`read_lock`] while queries run so a concurrent compaction never swaps files under
//! them. `events` is read from one consolidated copy of the events table's live files
//! ([`eventcache`]); the base projections, computed at most once per session, are
//! persisted per table version, source and as-of instant ([`cache`]) and read from
//! their files after that, so no question after a commit folds the log again; the option
//! projections are views over them. The SQL functions `poisson_ci_low` /
//! `poisson_ci_high` come from [`stats`], the exact percentile aggregate
//! `percentile_exact` from [`percentile`].

pub mod cache;
pub mod eventcache;
pub mod percentile;
pub mod sealed;
pub mod stats;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use culla_schemas::arrow::{dead_letters_file_schema, events_file_schema, events_table_schema};
use culla_schemas::layout::{DataDir, LayoutError, read_lock_shared, try_read_lock_exclusive};
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors opening a data directory or building the projections.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory's lock could not be used.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// DataFusion failed to plan or run a query.
    #[error("query failed: {0}")]
    DataFusion(#[from] DataFusionError),
    /// A projection option is invalid.
    #[error("invalid option: {0}")]
    Invalid(String),
    /// The data directory holds no event file.
    #[error("no events in {}: ingest some first (culla ingest) or check --data", .0.display())]
    NoEvents(PathBuf),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the projections are computed for.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionOptions {
    /// First local (Europe/Rome) date of the period, inclusive; `None`: from the start.
    pub from: Option<NaiveDate>,
    /// Last local date of the period, inclusive; `None`: up to the latest event.
    pub to: Option<NaiveDate>,
    /// Only events of this source (e.g. `milano-020202`); `None`: every source.
    pub source: Option<String>,
    /// Judge time-dependent states (no_callback) and ignore events after this instant;
    /// `None`: the latest event time in the data.
    pub as_of: Option<DateTime<Utc>>,
    /// A family is high risk when its score (number of flags) is at least this.
    pub risk_threshold: u32,
    /// Callback target in hours (time to first reached callback).
    pub callback_target_hours: f64,
}

impl Default for ProjectionOptions {
    fn default() -> Self {
        ProjectionOptions {
            from: None,
            to: None,
            source: None,
            as_of: None,
            risk_threshold: 3,
            callback_target_hours: 72.0,
        }
    }
}

/// The period and instant the projections were actually built for.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// First local date (the earliest accepted date when the period is open).
    pub from: NaiveDate,
    /// Last local date (a far-future date when the period is open).
    pub to: NaiveDate,
    /// The as-of instant (given, or the latest event time).
    pub as_of: DateTime<Utc>,
    /// The last instant of the events the projections read: the as-of instant, or the
    /// latest event time when the as-of instant is later. Both select the same events,
    /// so a question as of a later instant (today, say) reads the base projections the
    /// writer warmed for the commit instead of folding its own; only the states judged
    /// as of an instant (no_callback) see the later one.
    pub events_to: DateTime<Utc>,
    /// Year the period ends in (or the as-of year for an open period): the year of
    /// per-births rates.
    pub year: i32,
    /// Local date of the latest event in the data (`None`: no event). A period ending on
    /// or after it takes every family's profile from `profile_base` as it is.
    pub latest_date: Option<NaiveDate>,
}

/// The projection SQL files, in dependency order: (view name, SQL template).
///
/// Two layers. The **base** projections ([`BASE`]) depend only on the log, the source and
/// the as-of instant: they hold the heavy folds (every contact's aggregate and history,
/// the latest version of every need and referral, every family's merged profile and the
/// dates its history-based flags first hold) and are persisted once per commit. The
/// **option** projections cut them to a period and apply the thresholds: filters, joins
/// and small aggregates, so a new period or threshold after a commit does not fold the
/// log again. `profile_events` and `profile_fold` are templates rendered twice (see
/// [`rendered_projections`]).
pub const PROJECTIONS: &[(&str, &str)] = &[
    ("scoped_events", include_str!("../sql/scoped_events.sql")),
    ("profile_events", include_str!("../sql/profile_events.sql")),
    ("profile_base", include_str!("../sql/profile_fold.sql")),
    ("contact_base", include_str!("../sql/contact_base.sql")),
    ("referral_base", include_str!("../sql/referral_base.sql")),
    ("need_base", include_str!("../sql/need_base.sql")),
    ("family_base", include_str!("../sql/family_base.sql")),
    (
        "profile_events_to",
        include_str!("../sql/profile_events.sql"),
    ),
    ("profiles_to", include_str!("../sql/profile_fold.sql")),
    ("profiles", include_str!("../sql/profiles.sql")),
    (
        "contact_history",
        include_str!("../sql/contact_history.sql"),
    ),
    ("contacts", include_str!("../sql/contacts.sql")),
    ("referral_state", include_str!("../sql/referral_state.sql")),
    ("referrals", include_str!("../sql/referrals.sql")),
    ("needs", include_str!("../sql/needs.sql")),
    ("families", include_str!("../sql/families.sql")),
];

/// The base layer of [`PROJECTIONS`]: what depends only on the log, the source and the
/// as-of instant. The ones named in [`PERSISTED_BASE`] are persisted per commit.
pub const BASE: &[&str] = &[
    "scoped_events",
    "profile_events",
    "profile_base",
    "contact_base",
    "referral_base",
    "need_base",
    "family_base",
];

/// Base projections persisted once per commit (and source and as-of instant), each as
/// `<name>.parquet` in the commit's base directory.
pub const PERSISTED_BASE: &[&str] = &[
    "profile_base",
    "contact_base",
    "referral_base",
    "need_base",
    "family_base",
];

/// Option projections that are thin enough to stay plain views (a filter or a few
/// computed columns over a materialised base projection).
const PLAIN: &[&str] = &["contact_history", "referral_state"];

const OPEN_FROM: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("valid constant date"),
};
const OPEN_TO: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(d) => d,
    None => panic!("valid constant date"),
};

/// Takes the data directory's shared read lock; hold it while queries run.
///
/// When no other reader holds it, stale cache entries ([`eventcache::cleanup`]) are
/// deleted first, under the lock taken exclusively for that moment.
pub fn read_lock(data: &Path) -> Result<std::fs::File> {
    let dir = DataDir::new(data);
    if eventcache::cache_dir(data).is_dir()
        && let Some(exclusive) = try_read_lock_exclusive(&dir)?
    {
        eventcache::cleanup(data);
        drop(exclusive);
    }
    Ok(read_lock_shared(&dir)?)
}

/// Makes the read caches of the log as it is now: the consolidated copy ([`eventcache`])
/// and the base projections as of the latest event ([`BASE`]) of every source together
/// and of each alone, so the next question, whatever its period, thresholds or source,
/// neither copies nor folds the log;
/// for writers to call after a batch ingest or a compaction. Best effort: a failure is
/// logged and the next reader makes what is missing.
pub fn warm_cache(data: &Path) {
    if !eventcache::enabled() {
        return;
    }
    let started = std::time::Instant::now();
    let made = read_lock(data)
        .map_err(|e| e.to_string())
        .and_then(|_lock| warm_base(data).map_err(|e| e.to_string()));
    match made {
        Ok(()) => tracing::debug!(
            ms = started.elapsed().as_millis() as u64,
            "read cache ready"
        ),
        Err(e) => tracing::warn!(data = %data.display(), error = %e, "read cache not made"),
    }
}

/// Makes the consolidated copy and folds and persists the base projections of the
/// default options, and of each source alone when the log holds more than one (the
/// caller holds the read lock). Waits for the files.
pub fn warm_base(data: &Path) -> Result<()> {
    if !has_events(data) {
        return Ok(());
    }
    // One copy (and one reading of the table log and the copy's footers) for every source.
    let Some(prepared) = prepare_copy(data) else {
        // No copy could be made: nothing would be persisted either.
        return Ok(());
    };
    let mut options = vec![ProjectionOptions::default()];
    if prepared.sources.len() > 1 {
        options.extend(prepared.sources.iter().map(|s| ProjectionOptions {
            source: Some(s.clone()),
            ..ProjectionOptions::default()
        }));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("no runtime for the read cache: {e}")))?;
    rt.block_on(async {
        for opts in &options {
            warm_base_of(data, &prepared, opts).await?;
        }
        Ok::<_, Error>(())
    })?;
    cache::wait_for_writes();
    Ok(())
}

/// Folds and persists the base projections of `opts` over the copy `prepared`, unless
/// they are on disk.
async fn warm_base_of(
    data: &Path,
    prepared: &eventcache::Prepared,
    opts: &ProjectionOptions,
) -> Result<()> {
    let ctx = new_context();
    let consolidated = register_tables_with(&ctx, data, Some(prepared)).await?;
    let dir = register_projections_in(&ctx, opts, Some(data), consolidated)
        .await?
        .1;
    if dir.is_some_and(|dir| base_is_complete(&dir)) {
        return Ok(());
    }
    for name in PERSISTED_BASE {
        ctx.sql(&format!("SELECT count(*) FROM {name}"))
            .await?
            .collect()
            .await?;
    }
    Ok(())
}

/// Whether `dir` (a base-projection directory) holds every file of [`PERSISTED_BASE`],
/// each whole ([`sealed::find_whole`]).
pub fn base_is_complete(dir: &Path) -> bool {
    PERSISTED_BASE
        .iter()
        .all(|name| sealed::find_whole(dir, name).is_some())
}

/// Whether `DIR/events` holds at least one Parquet file.
pub fn has_events(data: &Path) -> bool {
    has_parquet(&DataDir::new(data).events_dir())
}

fn has_parquet(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            if has_parquet(&path) {
                return true;
            }
        } else if name.ends_with(".parquet") {
            return true;
        }
    }
    false
}

/// Replaces `{{name}}` placeholders in `sql` with the given values.
pub fn render(sql: &str, vars: &[(&str, String)]) -> String {
    let mut out = sql.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// A SQL string literal (single quotes doubled).
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A new session with culla's settings and SQL functions, and no table.
///
/// DataFusion's own settings can be given in the environment as `DATAFUSION_*`
/// variables (e.g. `DATAFUSION_EXECUTION_TARGET_PARTITIONS=4`), for tuning and
/// profiling; culla's settings below apply on top.
pub fn new_context() -> SessionContext {
    let base = SessionConfig::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "DATAFUSION_* settings ignored");
        SessionConfig::new()
    });
    let mut config = base
        .with_information_schema(true)
        .with_collect_statistics(true)
        // Batches of 32k rows rather than 8k: fewer per-batch costs in the folds' windows,
        // joins and aggregates (a fresh fold of `needs` on 10M events ~8 % faster).
        .with_batch_size(32768);
    // `CAST(x AS VARCHAR)` gives Utf8, the type of every string column culla stores, so
    // a value that goes through a cast keeps the type of the column it came from.
    config.options_mut().sql_parser.map_string_types_to_utf8view = false;
    let ctx = SessionContext::new_with_config(config);
    for udf in stats::udfs() {
        ctx.register_udf(udf);
    }
    ctx.register_udaf(percentile::udaf());
    ctx
}

async fn register_listing(
    ctx: &SessionContext,
    name: &str,
    dir: &Path,
    file_schema: SchemaRef,
    partitions: Vec<(String, DataType)>,
) -> Result<()> {
    if !has_parquet(dir) {
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(
            partitions
                .iter()
                .map(|(n, t)| Field::new(n, t.clone(), false)),
        );
        let schema = Arc::new(Schema::new(fields));
        ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
        return Ok(());
    }
    let abs = std::path::absolute(dir)
        .map_err(|e| Error::Invalid(format!("cannot resolve {}: {e}", dir.display())))?;
    let url = ListingTableUrl::parse(format!("{}/", abs.to_string_lossy()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partitions);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema);
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// Registers `events`, `dead_letters`, `nil` and `births` (no projections).
pub async fn register_tables(ctx: &SessionContext, data: &Path) -> Result<()> {
    register_tables_from(ctx, data, eventcache::enabled())
        .await
        .map(|_| ())
}

/// Where `events` was registered from: the consolidated copy of a table version.
#[derive(Debug, Clone)]
struct Consolidated {
    seq: u64,
    max_at_us: Option<i64>,
    /// The sources of its events, sorted.
    sources: Vec<String>,
}

/// Registers the tables, `events` from the consolidated copy when `use_cache` and the
/// data has an events table (else, or when the copy cannot be made, from the partitions).
async fn register_tables_from(
    ctx: &SessionContext,
    data: &Path,
    use_cache: bool,
) -> Result<Option<Consolidated>> {
    let prepared = if use_cache { prepare_copy(data) } else { None };
    register_tables_with(ctx, data, prepared.as_ref()).await
}

/// The consolidated copy of the data's latest commit (made if missing), or `None`
/// (logged) when there is none to read: the partitions are read instead.
fn prepare_copy(data: &Path) -> Option<eventcache::Prepared> {
    match eventcache::prepare(data) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(data = %data.display(), error = %e, "reading the event partitions directly (no consolidated copy)");
            None
        }
    }
}

/// [`register_tables_from`] with the copy already prepared (`None`: the partitions).
async fn register_tables_with(
    ctx: &SessionContext,
    data: &Path,
    prepared: Option<&eventcache::Prepared>,
) -> Result<Option<Consolidated>> {
    let dir = DataDir::new(data);
    let consolidated = match prepared {
        Some(p) => {
            register_copy(ctx, p)?;
            Some(Consolidated {
                seq: p.seq,
                max_at_us: p.max_at_us,
                sources: p.sources.clone(),
            })
        }
        None => {
            register_listing(
                ctx,
                "events",
                &dir.events_dir(),
                events_file_schema(),
                vec![
                    ("source".into(), DataType::Utf8),
                    ("event_date".into(), DataType::Utf8),
                ],
            )
            .await?;
            None
        }
    };
    register_listing(
        ctx,
        "dead_letters",
        &dir.dead_letters_dir(),
        dead_letters_file_schema(),
        vec![("received_date".into(), DataType::Utf8)],
    )
    .await?;
    culla_schemas::reference::register(ctx)?;
    debug_assert_eq!(
        events_table_schema().fields().len(),
        events_file_schema().fields().len() + 2
    );
    Ok(consolidated)
}

/// `events` = the consolidated copy, plus the rows committed after it, if any.
fn register_copy(ctx: &SessionContext, p: &eventcache::Prepared) -> Result<()> {
    let url = ListingTableUrl::parse(format!("{}/", p.copy.to_string_lossy()))?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(events_table_schema());
    let copy = Arc::new(ListingTable::try_new(config)?);
    if p.recent.is_empty() {
        ctx.register_table("events", copy)?;
        return Ok(());
    }
    let recent = MemTable::try_new(events_table_schema(), vec![p.recent.clone()])?;
    let events = ctx
        .read_table(copy)?
        .union(ctx.read_table(Arc::new(recent))?)?
        .into_view();
    ctx.register_table("events", events)?;
    Ok(())
}

/// Resolves the options against the data: the period bounds and the as-of instant.
pub async fn resolve_scope(ctx: &SessionContext, opts: &ProjectionOptions) -> Result<Scope> {
    resolve_scope_known(ctx, opts, None).await
}

/// [`resolve_scope`], with the latest event time when it is already known (µs).
async fn resolve_scope_known(
    ctx: &SessionContext,
    opts: &ProjectionOptions,
    known_latest_us: Option<i64>,
) -> Result<Scope> {
    if let (Some(f), Some(t)) = (opts.from, opts.to)
        && f > t
    {
        return Err(Error::Invalid(format!(
            "the period starts ({f}) after it ends ({t})"
        )));
    }
    if !(opts.callback_target_hours.is_finite() && opts.callback_target_hours > 0.0) {
        return Err(Error::Invalid(format!(
            "the callback target must be a positive number of hours, not {}",
            opts.callback_target_hours
        )));
    }
    let latest = match known_latest_us {
        Some(us) => DateTime::<Utc>::from_timestamp_micros(us),
        None => latest_event(ctx).await?,
    };
    let as_of = opts.as_of.or(latest).unwrap_or_else(Utc::now);
    let latest_date = latest.map(|t| {
        t.with_timezone(&culla_schemas::arrow::REPORT_TZ)
            .date_naive()
    });
    let to = opts.to.unwrap_or(OPEN_TO);
    let year = match opts.to {
        Some(t) => t.year(),
        None => as_of.with_timezone(&culla_schemas::arrow::REPORT_TZ).year(),
    };
    Ok(Scope {
        from: opts.from.unwrap_or(OPEN_FROM),
        to,
        as_of,
        events_to: latest.map_or(as_of, |l| as_of.min(l)),
        year,
        latest_date,
    })
}

/// The latest `at` in `events`, if any.
pub async fn latest_event(ctx: &SessionContext) -> Result<Option<DateTime<Utc>>> {
    let batches = ctx
        .sql("SELECT arrow_cast(max(at), 'Int64') AS m FROM events")
        .await?
        .collect()
        .await?;
    let v = batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().cloned())
        .filter(|a| !a.is_empty() && a.is_valid(0))
        .map(|a| a.value(0));
    Ok(v.and_then(DateTime::<Utc>::from_timestamp_micros))
}

use datafusion::arrow::array::Array;

/// `contacts.sql` or `needs.sql` for a period that ends on or after the latest event,
/// when `profiles_to` is empty: without its join, each `CASE WHEN x.last_profile_date >
/// '{{to}}' THEN pt.col ELSE x.col END` reduced to `x.col` (the branch it always takes),
/// so the question reads no family column to probe an empty table.
fn without_profiles_to(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    for line in sql.lines() {
        if line.trim_start().starts_with("LEFT JOIN profiles_to pt ") {
            continue;
        }
        let reduced = (|| {
            let case = line.find("CASE WHEN ")?;
            line[case..].find(" THEN pt.")?;
            let value = case + line[case..].find(" ELSE ")? + " ELSE ".len();
            let end = value + line[value..].find(" END")?;
            Some(format!(
                "{}{}{}",
                &line[..case],
                &line[value..end],
                &line[end + " END".len()..]
            ))
        })();
        out.push_str(reduced.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Whether the period ends on or after the latest event, so `profiles` is
/// `profile_base` as it is.
fn profiles_are_base(scope: &Scope) -> bool {
    scope.latest_date.is_none_or(|d| scope.to >= d)
}

/// The projection SQL for `opts` and its resolved `scope`: (view name, SQL), in
/// dependency order. [`register_projections`] runs exactly these; benchmarks hand them
/// to other engines to answer the same question.
///
/// `profile_events` is rendered for every profile of the log and, as
/// `profile_events_to`, for the profiles up to the period end of the families profiled
/// again after it; `profile_fold` folds each into `profile_base` and `profiles_to`. When
/// the period ends on or after the latest event, `profiles` is `profile_base` itself and
/// `profiles_to` is empty.
pub fn rendered_projections(
    opts: &ProjectionOptions,
    scope: &Scope,
) -> Vec<(&'static str, String)> {
    let source_filter = match &opts.source {
        Some(s) => format!("AND source = {}", sql_string(s)),
        None => String::new(),
    };
    let target_us = (opts.callback_target_hours * 3_600_000_000.0).round() as i64;
    let to = scope.to.format("%Y-%m-%d").to_string();
    let vars = [
        ("from", scope.from.format("%Y-%m-%d").to_string()),
        ("to", to.clone()),
        ("as_of_us", scope.as_of.timestamp_micros().to_string()),
        (
            "events_to_us",
            scope.events_to.timestamp_micros().to_string(),
        ),
        ("source_filter", source_filter),
        ("target_us", target_us.to_string()),
        ("risk_threshold", opts.risk_threshold.to_string()),
    ];
    let whole_log = profiles_are_base(scope);
    PROJECTIONS
        .iter()
        .map(|(name, sql)| {
            let extra: Option<(&str, String)> = match *name {
                "profile_events" => Some(("profile_filter", String::new())),
                "profile_events_to" => Some((
                    "profile_filter",
                    format!(
                        "AND event_date <= '{to}' AND family IN \
                         (SELECT family FROM profile_base WHERE last_profile_date > '{to}')"
                    ),
                )),
                "profile_base" => Some(("input", "profile_events".into())),
                "profiles_to" => Some(("input", "profile_events_to".into())),
                _ => None,
            };
            let body = match (*name, extra) {
                ("profiles", _) if whole_log => "-- profiles: every family's profile as of \
                     the end of a period that ends on or after the latest event: \
                     `profile_base` as it is (see profiles.sql).\nSELECT * FROM profile_base"
                    .to_string(),
                ("profiles_to", _) if whole_log => "-- profiles_to: no family was profiled \
                     again after a period that ends on or after the latest event.\n\
                     SELECT * FROM profile_base WHERE false"
                    .to_string(),
                (_, Some(kv)) => render(&render(sql, &[kv]), &vars),
                ("contacts" | "needs", None) if whole_log => {
                    render(&without_profiles_to(sql), &vars)
                }
                (_, None) => render(sql, &vars),
            };
            (*name, body)
        })
        .collect()
}

/// Registers the projections for `opts` (tables must be registered first), each as a
/// [`cache::MaterializedView`]: computed on first use, then kept for the session.
pub async fn register_projections(ctx: &SessionContext, opts: &ProjectionOptions) -> Result<Scope> {
    Ok(register_projections_in(ctx, opts, None, None).await?.0)
}

/// The option projections: plain views over the base projections when those are
/// persisted (or being persisted); kept in memory otherwise. (`profiles_to` and its
/// input, small or empty, are kept in memory in every case: three views read them.)
const OPTION_VIEWS: &[&str] = &["profiles", "contacts", "referrals", "needs", "families"];

/// [`register_projections`] for events read from a consolidated copy: the public
/// projections are persisted under `data`'s cache for that table version.
async fn register_projections_in(
    ctx: &SessionContext,
    opts: &ProjectionOptions,
    data: Option<&Path>,
    consolidated: Option<Consolidated>,
) -> Result<(Scope, Option<PathBuf>)> {
    let scope =
        resolve_scope_known(ctx, opts, consolidated.as_ref().and_then(|c| c.max_at_us)).await?;
    // `--source S` over a log that holds only S selects every event: the projections
    // are those of every source (the same rows), so they share the persisted base.
    let only_source = consolidated
        .as_ref()
        .is_some_and(|c| c.sources.len() == 1 && opts.source.as_ref() == c.sources.first());
    let rendered = if only_source {
        let every = ProjectionOptions {
            source: None,
            ..opts.clone()
        };
        rendered_projections(&every, &scope)
    } else {
        rendered_projections(opts, &scope)
    };
    // Base projections are keyed by the base layer's SQL only, so every period and
    // threshold of one commit (and source and as-of instant) shares them.
    let persist_dirs = match (data, &consolidated) {
        (Some(data), Some(c)) => {
            let base = rendered
                .iter()
                .filter(|(n, _)| BASE.contains(n))
                .map(|(_, sql)| sql.as_str());
            Some((
                cache::projection_dir(&eventcache::cache_dir(data), c.seq, base),
                data,
            ))
        }
        _ => None,
    };
    // Strings read as views only when every base projection comes from its file.
    let views = persist_dirs
        .as_ref()
        .is_some_and(|(base, _)| base_is_complete(base));
    for (name, body) in rendered {
        let plan = ctx.sql(&body).await.map_err(|e| {
            Error::DataFusion(DataFusionError::Context(
                format!("projection {name}"),
                Box::new(e),
            ))
        })?;
        let view: Arc<dyn datafusion::catalog::TableProvider> = match &persist_dirs {
            // Over the consolidated copy, `scoped_events` stays a plain view: each
            // projection reads only its columns and, by the files' statistics, only the
            // event types it filters on; in memory it would hold every column of the log.
            _ if name == "scoped_events" && consolidated.is_some() => plan.into_view(),
            _ if PLAIN.contains(&name) => plan.into_view(),
            // `SELECT * FROM profile_base`: nothing to keep apart from it.
            _ if name == "profiles" && profiles_are_base(&scope) => plan.into_view(),
            Some((base, data)) if PERSISTED_BASE.contains(&name) => {
                let found = sealed::find_whole(base, name)
                    .and_then(|f| cache::persisted_table(&f, plan.schema().as_arrow(), views));
                match found {
                    Some(table) => table,
                    None => Arc::new(cache::MaterializedView::persisted(
                        name,
                        plan,
                        base.clone(),
                        data,
                    )),
                }
            }
            // Over persisted or persisting base projections, the option projections
            // are plain views: a question computes only the columns and rows it reads,
            // from the base files' columns it needs (a cut, a join, a small aggregate).
            Some(_) if OPTION_VIEWS.contains(&name) => plan.into_view(),
            _ => Arc::new(cache::MaterializedView::new(name, plan)),
        };
        ctx.register_table(name, view)?;
    }
    register_scope_table(ctx, opts, &scope)?;
    tracing::debug!(from = %scope.from, to = %scope.to, as_of = %scope.as_of, "projections registered");
    Ok((scope, persist_dirs.map(|(base, _)| base)))
}

fn register_scope_table(
    ctx: &SessionContext,
    opts: &ProjectionOptions,
    scope: &Scope,
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("period_from", DataType::Utf8, true),
        Field::new("period_to", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
        Field::new(
            "as_of",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("year", DataType::Int32, false),
        Field::new("risk_threshold", DataType::UInt32, false),
        Field::new("callback_target_hours", DataType::Float64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![opts.from.map(|d| d.to_string())])),
        Arc::new(StringArray::from(vec![opts.to.map(|d| d.to_string())])),
        Arc::new(StringArray::from(vec![opts.source.clone()])),
        Arc::new(
            TimestampMicrosecondArray::from(vec![scope.as_of.timestamp_micros()])
                .with_timezone("UTC"),
        ),
        Arc::new(Int32Array::from(vec![scope.year])),
        Arc::new(UInt32Array::from(vec![opts.risk_threshold])),
        Arc::new(Float64Array::from(vec![opts.callback_target_hours])),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(DataFusionError::from)?;
    ctx.register_table(
        "scope",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

/// Opens a data directory: registers `events`, `dead_letters`, `nil`, `births`, `scope`
/// and the projections `contacts`, `needs`, `referrals`, `families` (and their helpers)
/// computed for `opts`.
///
/// A missing or empty `events` directory gives empty tables with the right schema (use
/// [`has_events`] to tell the user). Hold [`read_lock`] while running queries.
pub async fn open(data: &Path, opts: &ProjectionOptions) -> Result<SessionContext> {
    Ok(open_scoped(data, opts).await?.0)
}

/// Like [`open`], also returning the resolved [`Scope`].
pub async fn open_scoped(data: &Path, opts: &ProjectionOptions) -> Result<(SessionContext, Scope)> {
    open_with(data, opts, eventcache::enabled()).await
}

/// Like [`open_scoped`], reading the event partitions directly and persisting nothing
/// (what `CULLA_CACHE=off` does): the reference the cached path is tested against.
pub async fn open_uncached(
    data: &Path,
    opts: &ProjectionOptions,
) -> Result<(SessionContext, Scope)> {
    open_with(data, opts, false).await
}

async fn open_with(
    data: &Path,
    opts: &ProjectionOptions,
    use_cache: bool,
) -> Result<(SessionContext, Scope)> {
    let ctx = new_context();
    let consolidated = register_tables_from(&ctx, data, use_cache).await?;
    let (scope, _) = register_projections_in(&ctx, opts, Some(data), consolidated).await?;
    Ok((ctx, scope))
}

/// The directory the base projections of `opts` are (or would be) persisted in for the
/// data's latest commit; `None` without a consolidated copy (benchmarks hand these
/// files to other engines). Hold [`read_lock`].
pub async fn base_projection_dir(data: &Path, opts: &ProjectionOptions) -> Result<Option<PathBuf>> {
    let ctx = new_context();
    let consolidated = register_tables_from(&ctx, data, true).await?;
    Ok(
        register_projections_in(&ctx, opts, Some(data), consolidated)
            .await?
            .1,
    )
}

/// `dt` with string views (how the base projections' strings are read, see
/// [`cache::persisted_table`]) as plain strings, in lists too; `None` if it has none.
pub(crate) fn plain_type(dt: &DataType) -> Option<DataType> {
    match dt {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::List(f) => plain_type(f.data_type())
            .map(|t| DataType::List(Arc::new(f.as_ref().clone().with_data_type(t)))),
        _ => None,
    }
}

/// `schema` with string views as plain strings.
fn plain_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| match plain_type(f.data_type()) {
                Some(t) => f.as_ref().clone().with_data_type(t),
                None => f.as_ref().clone(),
            })
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// Runs `df` and returns its rows with every string-view column cast to a plain string
/// (`Utf8`), the type culla stores and writes, and their schema: for every answer given
/// to users, so an answer's types do not depend on whether the base projections were
/// read from their files (as views) or computed. Cast by each batch's own columns, not
/// by the plan's schema (a `coalesce` over a view can be declared `Utf8` and be a view).
pub async fn collect_plain(
    df: DataFrame,
) -> datafusion::error::Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = plain_schema(df.schema().as_arrow());
    let batches = df.collect().await?;
    let batches = batches
        .into_iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        datafusion::arrow::compute::cast(c, f.data_type())
                    }
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}

/// Runs one SQL statement and returns its rows as one batch (strings plain).
pub async fn sql_one_batch(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let (schema, batches) = collect_plain(ctx.sql(sql).await?).await?;
    Ok(
        datafusion::arrow::compute::concat_batches(&schema, &batches)
            .map_err(DataFusionError::from)?,
    )
}

/// The registered tables and views with their columns, one table per paragraph.
pub async fn describe_tables(ctx: &SessionContext) -> Result<String> {
    let mut names = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default();
    names.sort();
    let mut out = String::new();
    for name in names {
        let table = ctx.table(name.as_str()).await?;
        out.push_str(&format!("{name}\n"));
        for f in table.schema().fields() {
            let t = plain_type(f.data_type()).unwrap_or_else(|| f.data_type().clone());
            out.push_str(&format!("  {:24} {t}\n", f.name()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_at_the_latest_event_joins_no_refolded_profile() {
        for (file, cases) in [
            (include_str!("../sql/contacts.sql"), 3),
            (include_str!("../sql/needs.sql"), 4),
        ] {
            let plain = without_profiles_to(file);
            let code: Vec<&str> = plain
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect();
            let code = code.join("\n");
            assert!(
                !code.contains("profiles_to") && !code.contains("pt."),
                "{plain}"
            );
            assert_eq!(plain.lines().count(), file.lines().count() - 1);
            assert_eq!(
                file.matches("CASE WHEN").count() - plain.matches("CASE WHEN").count(),
                cases
            );
            assert!(plain.contains(" AS comune,") || plain.contains(" AS comune\n"));
        }
    }
}
