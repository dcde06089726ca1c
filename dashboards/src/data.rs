//! Query results as small, typed tables, and how they are fetched.
//!
//! Every output of this crate starts here: [`fetch`] runs one named query of the
//! `culla-queries` registry with disclosure control on and converts the Arrow result
//! into a [`Table`] of [`Cell`]s (text, integer, decimal or null — a suppressed count
//! comes back null). Tables serialise to JSON as `{"columns": [...], "rows": [[...]]}`
//! for the dashboard's API.

use crate::{Error, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::Serialize;
use std::path::PathBuf;

/// One value of a result table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// Missing, or suppressed by disclosure control.
    Null,
    /// A whole number (counts).
    Int(i64),
    /// A decimal (rates, shares, percentiles).
    Float(f64),
    /// Text (labels, months, categories).
    Text(String),
}

impl Cell {
    /// The value as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) if f.is_finite() => Some(*f),
            _ => None,
        }
    }
    /// The value as text (numbers in plain Rust formatting; null as empty).
    pub fn as_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Text(s) => s.clone(),
        }
    }
    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }
}

/// Why disclosure control hid a published cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hidden {
    /// Primary suppression: a count from 1 to `min_count - 1` (written `<5`), or a value
    /// built on one.
    Small,
    /// Secondary suppression: a count of any size hidden as the partner of a small cell,
    /// so a total cannot give the small one away (written `c`).
    Partner,
}

/// A query result: column names and rows of cells.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Table {
    /// Column names, in query order.
    pub columns: Vec<String>,
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[&str]) -> Self {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Converts Arrow batches (all of one schema) into a table.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let mut t = Table::default();
        let Some(first) = batches.first() else {
            return Ok(t);
        };
        t.columns = first
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for batch in batches {
            let mut cols: Vec<Vec<Cell>> = Vec::with_capacity(batch.num_columns());
            for col in batch.columns() {
                cols.push(column_cells(col.as_ref())?);
            }
            for r in 0..batch.num_rows() {
                t.rows.push(cols.iter().map(|c| c[r].clone()).collect());
            }
        }
        Ok(t)
    }

    /// Index of a column.
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The cell of `row` in column `name` (null if the column is absent).
    pub fn get<'a>(&'a self, row: &'a [Cell], name: &str) -> &'a Cell {
        static NULL: Cell = Cell::Null;
        self.col(name).and_then(|i| row.get(i)).unwrap_or(&NULL)
    }

    /// Why the cell of `row` in column `name` is hidden by disclosure control, if it is
    /// (read from the result's marker columns `suppressed` and `suppressed_secondary`).
    pub fn hidden(&self, row: &[Cell], name: &str) -> Option<Hidden> {
        use culla_queries::disclosure::{MARKER, SECONDARY_MARKER};
        let listed = |marker: &str| {
            self.get(row, marker)
                .as_text()
                .split(',')
                .any(|n| n == name)
        };
        if !listed(MARKER) {
            None
        } else if listed(SECONDARY_MARKER) {
            Some(Hidden::Partner)
        } else {
            Some(Hidden::Small)
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Keeps the rows whose column `name` equals `value` as text; a table without that
    /// column is returned unchanged.
    pub fn filter_eq(&self, name: &str, value: &str) -> Table {
        let Some(i) = self.col(name) else {
            return self.clone();
        };
        Table {
            columns: self.columns.clone(),
            rows: self
                .rows
                .iter()
                .filter(|r| r.get(i).map(|c| c.as_text()) == Some(value.to_string()))
                .cloned()
                .collect(),
        }
    }
}

fn column_cells(col: &dyn Array) -> Result<Vec<Cell>> {
    use datafusion::arrow::compute::cast;
    let n = col.len();
    let mut out = Vec::with_capacity(n);
    match col.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let c = cast(col, &DataType::Int64).map_err(|e| Error::Arrow(e.to_string()))?;
            let a = c.as_primitive::<Int64Type>();
            for i in 0..n {
                out.push(if a.is_null(i) {
                    Cell::Null
                } else {
                    Cell::Int(a.value(i))
                });
            }
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            let c = cast(col, &DataType::Float64).map_err(|e| Error::Arrow(e.to_string()))?;
            let a = c.as_primitive::<Float64Type>();
            for i in 0..n {
                out.push(if a.is_null(i) || !a.value(i).is_finite() {
                    Cell::Null
                } else {
                    Cell::Float(a.value(i))
                });
            }
        }
        _ => {
            let opts = FormatOptions::default();
            let f = ArrayFormatter::try_new(col, &opts).map_err(|e| Error::Arrow(e.to_string()))?;
            for i in 0..n {
                out.push(if col.is_null(i) {
                    Cell::Null
                } else {
                    Cell::Text(f.value(i).to_string())
                });
            }
        }
    }
    Ok(out)
}

/// What to ask the query library: the data directory and the filters every output uses.
#[derive(Debug, Clone)]
pub struct Request {
    /// Data directory.
    pub data: PathBuf,
    /// Calendar year.
    pub year: Option<i32>,
    /// Service line (`source`), all when `None`.
    pub source: Option<String>,
    /// Disclosure threshold: counts from 1 to `min_count - 1` are suppressed (5 → `<5`).
    pub min_count: u32,
}

impl Request {
    /// A request for one year of `data` with the default threshold of 5.
    pub fn new(data: impl Into<PathBuf>, year: Option<i32>) -> Self {
        Request {
            data: data.into(),
            year,
            source: None,
            min_count: 5,
        }
    }
}

impl Request {
    /// The query library's parameters for this request (always public).
    pub fn params(&self) -> culla_queries::Params {
        culla_queries::Params {
            data: self.data.clone(),
            year: self.year,
            source: self.source.clone(),
            public: true,
            min_count: self.min_count.max(1),
            ..Default::default()
        }
    }
}

/// Runs one named query of the registry with disclosure control on.
pub async fn fetch(name: &str, req: &Request) -> Result<Table> {
    let mut v = fetch_many(&[name], req).await?;
    Ok(v.pop().unwrap_or_default())
}

/// Runs several named queries on one opening of the data, disclosure control on.
pub async fn fetch_many(names: &[&str], req: &Request) -> Result<Vec<Table>> {
    let batches = culla_queries::run_many(names, &req.params())
        .await
        .map_err(|e| Error::Query {
            name: names.join(", "),
            message: e.to_string(),
        })?;
    batches
        .iter()
        .map(|b| Table::from_batches(std::slice::from_ref(b)))
        .collect()
}

/// The headline figures of a period, counted once over the whole period (not summed
/// from monthly cells, so no suppressed cell is lost from a total).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Year.
    pub year: i32,
    /// Contacts (calls received + chats opened).
    pub contacts: u64,
    /// Families with at least one contact.
    pub families: u64,
    /// Calls received.
    pub calls: u64,
    /// Calls answered.
    pub answered: u64,
    /// Calls answered within 30 s.
    pub within_30s: u64,
    /// Contacts outside service hours.
    pub out_of_hours: u64,
    /// Contacts with at least one referral.
    pub escalated: u64,
    /// Referrals created.
    pub referrals: u64,
    /// Referrals reached within the callback target.
    pub callback_within_target: u64,
    /// Median hours to the first reached callback (over reached referrals).
    pub callback_median_h: Option<f64>,
    /// Needs recorded.
    pub needs: u64,
    /// Needs unmet.
    pub unmet: u64,
}

impl Summary {
    /// Service level: calls answered within 30 s / calls received.
    pub fn service_level(&self) -> Option<f64> {
        ratio(self.within_30s, self.calls)
    }
    /// Escalation rate: contacts with a referral / contacts.
    pub fn escalation_rate(&self) -> Option<f64> {
        ratio(self.escalated, self.contacts)
    }
    /// Referrals reached within target / referrals.
    pub fn callback_share(&self) -> Option<f64> {
        ratio(self.callback_within_target, self.referrals)
    }
    /// Unmet needs / needs.
    pub fn unmet_share(&self) -> Option<f64> {
        ratio(self.unmet, self.needs)
    }
    /// Out-of-hours contacts / contacts.
    pub fn out_of_hours_share(&self) -> Option<f64> {
        ratio(self.out_of_hours, self.contacts)
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

const SUMMARY_SQL: &str = "\
SELECT c.contacts, f.families, c.calls, c.answered, c.within_30s, c.out_of_hours, c.escalated,
       r.referrals, r.within_target, r.median_h, n.needs, n.unmet
FROM (SELECT CAST(count(*) AS BIGINT) AS contacts,
             CAST(count(answered) AS BIGINT) AS calls,
             CAST(count(CASE WHEN answered THEN 1 END) AS BIGINT) AS answered,
             CAST(count(CASE WHEN answered_within_30s THEN 1 END) AS BIGINT) AS within_30s,
             CAST(count(CASE WHEN out_of_hours THEN 1 END) AS BIGINT) AS out_of_hours,
             CAST(count(CASE WHEN escalated THEN 1 END) AS BIGINT) AS escalated
      FROM contacts) c
CROSS JOIN (SELECT CAST(count(*) AS BIGINT) AS families FROM families) f
CROSS JOIN (SELECT CAST(count(*) AS BIGINT) AS referrals,
                   CAST(count(CASE WHEN callback_within_target THEN 1 END) AS BIGINT) AS within_target,
                   CAST(median(CASE WHEN reached THEN hours_to_callback END) AS DOUBLE) AS median_h
            FROM referrals) r
CROSS JOIN (SELECT CAST(count(*) AS BIGINT) AS needs,
                   CAST(count(CASE WHEN status = 'unmet' THEN 1 END) AS BIGINT) AS unmet
            FROM needs) n";

/// Computes the [`Summary`] of the request's year over the projections of
/// `culla-transform` (the same definitions the named queries use).
pub async fn summary(req: &Request) -> Result<Summary> {
    let q = |e: String| Error::Query {
        name: "summary".into(),
        message: e,
    };
    let year = req
        .year
        .unwrap_or_else(|| chrono::Datelike::year(&chrono::Utc::now()));
    let opts = culla_transform::ProjectionOptions {
        from: chrono::NaiveDate::from_ymd_opt(year, 1, 1),
        to: chrono::NaiveDate::from_ymd_opt(year, 12, 31),
        source: req.source.clone(),
        ..Default::default()
    };
    let _lock = culla_transform::read_lock(&req.data).map_err(|e| q(e.to_string()))?;
    let ctx = culla_transform::open(&req.data, &opts)
        .await
        .map_err(|e| q(e.to_string()))?;
    let df = ctx.sql(SUMMARY_SQL).await.map_err(|e| q(e.to_string()))?;
    let (_, batches) = culla_transform::collect_plain(df)
        .await
        .map_err(|e| q(e.to_string()))?;
    summary_of(year, &batches)
}

/// Reads a [`Summary`] from the result of `SUMMARY_SQL`.
fn summary_of(year: i32, batches: &[RecordBatch]) -> Result<Summary> {
    let t = Table::from_batches(batches)?;
    let mut s = Summary {
        year,
        ..Default::default()
    };
    if let Some(row) = t.rows.first() {
        let n = |c: &str| t.get(row, c).as_f64().unwrap_or(0.0).max(0.0) as u64;
        s.contacts = n("contacts");
        s.families = n("families");
        s.calls = n("calls");
        s.answered = n("answered");
        s.within_30s = n("within_30s");
        s.out_of_hours = n("out_of_hours");
        s.escalated = n("escalated");
        s.referrals = n("referrals");
        s.callback_within_target = n("within_target");
        s.callback_median_h = t.get(row, "median_h").as_f64();
        s.needs = n("needs");
        s.unmet = n("unmet");
    }
    Ok(s)
}

/// Like [`fetch_many`], and the request's [`Summary`] from the same opening of the data
/// (one fold of the log instead of two). `req.year` must be set.
pub async fn fetch_many_with_summary(
    names: &[&str],
    req: &Request,
) -> Result<(Vec<Table>, Summary)> {
    let year = req.year.ok_or_else(|| Error::Query {
        name: "summary".into(),
        message: "a year is needed for the summary".into(),
    })?;
    let (batches, extra) = culla_queries::run_many_and_sql(names, &req.params(), &[SUMMARY_SQL])
        .await
        .map_err(|e| Error::Query {
            name: names.join(", "),
            message: e.to_string(),
        })?;
    let tables = batches
        .iter()
        .map(|b| Table::from_batches(std::slice::from_ref(b)))
        .collect::<Result<Vec<_>>>()?;
    let summary = summary_of(year, extra.first().map_or(&[][..], |b| b.as_slice()))?;
    Ok((tables, summary))
}
