//! Output formats of a query result: an aligned text table for people, CSV with a
//! header, JSON (an array of objects, one per row) and Parquet (opens in DuckDB, pandas,
//! Power BI).
//!
//! A result that went through disclosure control ([`crate::disclosure`]) shows its
//! suppressed counts as `<5` (the threshold used), counts hidden by secondary
//! suppression as `c` (their value may be large) and suppressed derived values as `-`
//! in tables and CSV, and drops the marker columns there; JSON and Parquet keep the
//! nulls and the `suppressed` and `suppressed_secondary` marker columns, so programs
//! can tell suppressed from missing, and primary from secondary.

use crate::disclosure::{MARKER, SECONDARY_MARKER, SECONDARY_SYMBOL, is_marker, min_count};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use std::io::Write;

/// How to write a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Aligned text table (the default on a terminal).
    #[default]
    Table,
    /// Comma-separated values with a header line.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
    /// A Parquet file (zstd).
    Parquet,
}

/// Another name for [`Output`].
pub type Format = Output;

impl std::str::FromStr for Output {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(Output::Table),
            "csv" => Ok(Output::Csv),
            "json" => Ok(Output::Json),
            "parquet" => Ok(Output::Parquet),
            other => Err(format!(
                "unknown format {other:?}: use table, csv, json or parquet"
            )),
        }
    }
}

/// Errors writing a result.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The destination refused the bytes.
    #[error("cannot write the result: {0}")]
    Io(#[from] std::io::Error),
    /// Arrow could not format a value.
    #[error("cannot format the result: {0}")]
    Arrow(#[from] ArrowError),
    /// The Parquet writer failed.
    #[error("cannot write Parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
}

fn suppressed_cells(batch: &RecordBatch, marker: &str) -> Option<Vec<Vec<String>>> {
    let m = batch.column_by_name(marker)?;
    let m = m
        .as_any()
        .downcast_ref::<datafusion::arrow::array::StringArray>()?;
    Some(
        (0..batch.num_rows())
            .map(|r| {
                if m.is_valid(r) {
                    m.value(r).split(',').map(str::to_string).collect()
                } else {
                    Vec::new()
                }
            })
            .collect(),
    )
}

/// The cells as text, for tables and CSV: `(header, rows)`.
fn text_cells(
    batch: &RecordBatch,
    round_floats: bool,
) -> Result<(Vec<String>, Vec<Vec<String>>), ArrowError> {
    let schema = batch.schema();
    let sup = suppressed_cells(batch, MARKER);
    let sec = suppressed_cells(batch, SECONDARY_MARKER);
    let threshold = min_count(batch).unwrap_or(5);
    let opts = FormatOptions::default().with_null("");
    let mut header = Vec::new();
    let mut cols = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if is_marker(f.name()) {
            continue;
        }
        header.push(f.name().clone());
        let fmt = ArrayFormatter::try_new(batch.column(i).as_ref(), &opts)?;
        let col = batch.column(i);
        let is_int = matches!(
            f.data_type(),
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt32
                | DataType::UInt64
        );
        let mut cells = Vec::with_capacity(batch.num_rows());
        for r in 0..batch.num_rows() {
            let hidden = sup
                .as_ref()
                .is_some_and(|s| s[r].iter().any(|n| n == f.name()));
            let partner = sec
                .as_ref()
                .is_some_and(|s| s[r].iter().any(|n| n == f.name()));
            let cell = if hidden {
                if is_int && partner {
                    SECONDARY_SYMBOL.to_string()
                } else if is_int {
                    format!("<{threshold}")
                } else {
                    "-".to_string()
                }
            } else if round_floats && f.data_type() == &DataType::Float64 && col.is_valid(r) {
                let v = col
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::Float64Array>()
                    .map(|a| a.value(r))
                    .unwrap_or_default();
                let s = format!("{v:.4}");
                let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
                if s == "-0" { "0".into() } else { s }
            } else {
                fmt.value(r).to_string()
            };
            cells.push(cell);
        }
        cols.push(cells);
    }
    let rows = (0..batch.num_rows())
        .map(|r| cols.iter().map(|c| c[r].clone()).collect())
        .collect();
    Ok((header, rows))
}

fn write_table(batch: &RecordBatch, out: &mut dyn Write) -> Result<(), WriteError> {
    let (header, rows) = text_cells(batch, true)?;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric: Vec<bool> = batch
        .schema()
        .fields()
        .iter()
        .filter(|f| !is_marker(f.name()))
        .map(|f| f.data_type().is_numeric())
        .collect();
    let line = |cells: &[String], out: &mut dyn Write| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = w - c.chars().count();
            if numeric[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(&header, out)?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, out)?;
    for row in &rows {
        line(row, out)?;
    }
    writeln!(out, "({} rows)", rows.len())?;
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(batch: &RecordBatch, out: &mut dyn Write) -> Result<(), WriteError> {
    let (header, rows) = text_cells(batch, false)?;
    writeln!(
        out,
        "{}",
        header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",")
    )?;
    for row in rows {
        writeln!(
            out,
            "{}",
            row.iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(",")
        )?;
    }
    Ok(())
}

fn json_value(col: &dyn Array, r: usize, fmt: &ArrayFormatter<'_>) -> serde_json::Value {
    use datafusion::arrow::array::{
        BooleanArray, Float64Array, Int32Array, Int64Array, UInt32Array, UInt64Array,
    };
    use serde_json::Value;
    if col.is_null(r) {
        return Value::Null;
    }
    let any = col.as_any();
    if let Some(a) = any.downcast_ref::<Int64Array>() {
        return a.value(r).into();
    }
    if let Some(a) = any.downcast_ref::<Int32Array>() {
        return a.value(r).into();
    }
    if let Some(a) = any.downcast_ref::<UInt64Array>() {
        return a.value(r).into();
    }
    if let Some(a) = any.downcast_ref::<UInt32Array>() {
        return a.value(r).into();
    }
    if let Some(a) = any.downcast_ref::<Float64Array>() {
        return serde_json::Number::from_f64(a.value(r))
            .map(Value::Number)
            .unwrap_or(Value::Null);
    }
    if let Some(a) = any.downcast_ref::<BooleanArray>() {
        return a.value(r).into();
    }
    Value::String(fmt.value(r).to_string())
}

fn write_json(batch: &RecordBatch, out: &mut dyn Write) -> Result<(), WriteError> {
    let schema = batch.schema();
    let opts = FormatOptions::default();
    let fmts: Vec<ArrayFormatter<'_>> = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let mut obj = serde_json::Map::new();
        for (i, f) in schema.fields().iter().enumerate() {
            obj.insert(
                f.name().clone(),
                json_value(batch.column(i).as_ref(), r, &fmts[i]),
            );
        }
        rows.push(serde_json::Value::Object(obj));
    }
    serde_json::to_writer_pretty(&mut *out, &serde_json::Value::Array(rows))
        .map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

fn write_parquet(batch: &RecordBatch, out: &mut dyn Write) -> Result<(), WriteError> {
    let props = culla_schemas::layout::parquet_writer_properties().build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    out.write_all(&buf)?;
    Ok(())
}

/// Writes `batch` to `out` in `format`.
pub fn write(batch: &RecordBatch, format: Output, out: &mut dyn Write) -> Result<(), WriteError> {
    match format {
        Output::Table => write_table(batch, out),
        Output::Csv => write_csv(batch, out),
        Output::Json => write_json(batch, out),
        Output::Parquet => write_parquet(batch, out),
    }
}
