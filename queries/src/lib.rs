//! culla-queries: the analysts' questions, answered by DataFusion over the projections
//! of [`culla_transform`].
//!
//! Each question is one SQL file, `queries/sql/<name>.sql`, with a header comment saying
//! what it answers and its parameters, listed in the [`registry`] with its titles (English
//! and Italian) and key columns. [`run`] opens the data directory under its shared read
//! lock, builds the projections for the [`Params`] (period, source, as-of instant,
//! thresholds), runs the question and returns one batch sorted by the key columns;
//! with `params.public` a protected question's result takes its hidden cells from the
//! [`release`] of its year (every protected question, all sources and each, protected
//! together by [`protect`]) and [`disclosure`] marks them.
//! [`write`] renders a result as a table, CSV, JSON or Parquet.

pub mod disclosure;
pub mod fixture;
pub mod output;
pub mod protect;
pub mod registry;
pub mod release;

pub use datafusion::arrow::record_batch::RecordBatch;
pub use output::{Format, Output, WriteError, write};
pub use registry::{QueryInfo, find, registry};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use culla_transform::{ProjectionOptions, render};
use datafusion::arrow::compute::concat_batches;
use datafusion::error::DataFusionError;
use std::path::PathBuf;

/// Errors answering a question.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No question has that name.
    #[error("unknown query {name:?}{}", suggestion.map(|s| format!(" (did you mean {s}?)")).unwrap_or_else(|| " (culla query --list shows them)".into()))]
    UnknownQuery {
        /// The name asked for.
        name: String,
        /// The closest registered name.
        suggestion: Option<&'static str>,
    },
    /// The parameters contradict each other.
    #[error("invalid parameters: {0}")]
    Params(String),
    /// Opening the data or building the projections failed.
    #[error(transparent)]
    Transform(#[from] culla_transform::Error),
    /// The question's SQL failed.
    #[error("query {name} failed: {source}")]
    Query {
        /// The question.
        name: String,
        /// DataFusion's error.
        source: DataFusionError,
    },
    /// Disclosure control could not be applied.
    #[error("disclosure control failed: {0}")]
    Disclosure(#[from] datafusion::arrow::error::ArrowError),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to answer the questions for.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The data directory.
    pub data: PathBuf,
    /// First local date of the period (inclusive).
    pub from: Option<NaiveDate>,
    /// Last local date of the period (inclusive).
    pub to: Option<NaiveDate>,
    /// A calendar year: the period 1 January – 31 December (not with `from`/`to`).
    pub year: Option<i32>,
    /// Only this source (service line), e.g. `milano-020202`.
    pub source: Option<String>,
    /// Judge time-dependent states as of this instant (default: the latest event).
    pub as_of: Option<DateTime<Utc>>,
    /// High risk = at least this many isolation-risk flags (default 3).
    pub risk_threshold: u32,
    /// Callback target in hours (default 72).
    pub callback_target_hours: f64,
    /// Apply disclosure control (for anything published).
    pub public: bool,
    /// Smallest count shown when public (default 5: counts 1–4 are suppressed).
    pub min_count: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            data: PathBuf::from("data"),
            from: None,
            to: None,
            year: None,
            source: None,
            as_of: None,
            risk_threshold: 3,
            callback_target_hours: 72.0,
            public: false,
            min_count: 5,
        }
    }
}

impl Params {
    /// The projection options these parameters mean.
    pub fn projection_options(&self) -> Result<ProjectionOptions> {
        let (from, to) = match self.year {
            Some(y) => {
                if self.from.is_some() || self.to.is_some() {
                    return Err(Error::Params(
                        "give either a year or --from/--to, not both".into(),
                    ));
                }
                let first = NaiveDate::from_ymd_opt(y, 1, 1)
                    .ok_or_else(|| Error::Params(format!("year {y} is out of range")))?;
                let last = NaiveDate::from_ymd_opt(y, 12, 31)
                    .ok_or_else(|| Error::Params(format!("year {y} is out of range")))?;
                (Some(first), Some(last))
            }
            None => (self.from, self.to),
        };
        if self.public && self.min_count < release::MIN_PUBLIC_THRESHOLD {
            return Err(Error::Params(format!(
                "a public output hides counts below at least {} (SISTAN's minimum); --min-count {} is too low",
                release::MIN_PUBLIC_THRESHOLD,
                self.min_count
            )));
        }
        Ok(ProjectionOptions {
            from,
            to,
            source: self.source.clone(),
            as_of: self.as_of,
            risk_threshold: self.risk_threshold,
            callback_target_hours: self.callback_target_hours,
        })
    }
}

fn lookup(name: &str) -> Result<&'static QueryInfo> {
    find(name).ok_or_else(|| Error::UnknownQuery {
        name: name.to_string(),
        suggestion: registry::closest(name),
    })
}

/// Answers one question: one batch, rows sorted by the key columns; disclosure control
/// applied when `params.public`.
pub async fn run(name: &str, params: &Params) -> Result<RecordBatch> {
    let mut v = run_many(&[name], params).await?;
    v.pop()
        .ok_or_else(|| Error::Params("no query given".into()))
}

/// Answers several questions on one opening of the data (one lock, one set of
/// projections), in the order given.
pub async fn run_many(names: &[&str], params: &Params) -> Result<Vec<RecordBatch>> {
    Ok(run_many_and_sql(names, params, &[]).await?.0)
}

/// Like [`run_many`], and on the same opening (the same projections, computed once)
/// also runs the SQL statements `extra`, returned as they come, **without** disclosure
/// control: for internal figures such as a report's headline totals.
pub async fn run_many_and_sql(
    names: &[&str],
    params: &Params,
    extra: &[&str],
) -> Result<(Vec<RecordBatch>, Vec<Vec<RecordBatch>>)> {
    let infos: Vec<&QueryInfo> = names.iter().map(|n| lookup(n)).collect::<Result<_>>()?;
    let opts = params.projection_options()?;
    // Protected questions take their hidden cells from the release of their year, built
    // (or found) before this opening takes its lock.
    let release = if params.public && infos.iter().any(|i| i.protected) {
        Some(release::of(params).await?)
    } else {
        None
    };
    let _lock = culla_transform::read_lock(&params.data)?;
    let (ctx, scope) = culla_transform::open_scoped(&params.data, &opts).await?;
    let mut out = Vec::with_capacity(infos.len());
    for info in infos {
        let started = std::time::Instant::now();
        let sql = render_query(info, params, &scope);
        let qerr = |source| Error::Query {
            name: info.name.to_string(),
            source,
        };
        let df = ctx.sql(&sql).await.map_err(qerr)?;
        let (schema, batches) = culla_transform::collect_plain(df).await.map_err(qerr)?;
        let batch = concat_batches(&schema, &batches)?;
        let batch = match (&release, params.public) {
            (Some(r), _) if info.protected => {
                r.apply(&batch, info, params.source.as_deref(), params.min_count)?
            }
            // Counts by time, source or channel alone: protected table by table (1.1 lets
            // them be published as they are; the report and the dashboard still draw
            // them with the table-by-table rule).
            (_, true) => disclosure::apply(&batch, info, params.min_count)?,
            (_, false) => batch,
        };
        tracing::debug!(
            query = info.name,
            rows = batch.num_rows(),
            ms = started.elapsed().as_millis() as u64,
            "query answered"
        );
        out.push(batch);
    }
    let mut more = Vec::with_capacity(extra.len());
    for sql in extra {
        let qerr = |source| Error::Query {
            name: "sql".to_string(),
            source,
        };
        more.push(
            culla_transform::collect_plain(ctx.sql(sql).await.map_err(qerr)?)
                .await
                .map_err(qerr)?
                .1,
        );
    }
    Ok((out, more))
}

/// The SQL text of question `info` for `params` on the resolved `scope`: exactly what
/// [`run`] executes over the projections (benchmarks hand it to other engines).
pub fn render_query(info: &QueryInfo, params: &Params, scope: &culla_transform::Scope) -> String {
    let births_year = culla_schemas::reference::births_year_for(params.year.unwrap_or(scope.year));
    let vars = [
        ("births_year", births_year.to_string()),
        (
            "callback_target_hours",
            format!("{:?}", params.callback_target_hours),
        ),
    ];
    render(info.sql, &vars)
}

/// The year a result's per-births rates use for `params` (for captions).
pub fn year_of(params: &Params) -> Option<i32> {
    params.year.or(params.to.map(|d| d.year()))
}
