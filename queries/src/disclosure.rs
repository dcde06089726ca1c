//! Disclosure control for everything published (`--public`): no count of 1 to
//! `min_count - 1` families, contacts or needs may be seen or worked out.
//!
//! 1. Primary suppression: every count cell with `0 < value < min_count` is suppressed.
//!    0 is never suppressed.
//! 2. Secondary suppression: cells of a count add up to totals along the query's
//!    additive keys (e.g. the channels of one month add up to the month's contacts) and
//!    some counts of one row add up to another (met + unmet + declined + open = needs).
//!    In every such group where exactly one cell is suppressed, the smallest other
//!    non-zero cell is suppressed too, so the total cannot reveal it; repeated until
//!    nothing changes.
//! 3. Every rate, share or percentile built on a suppressed count is suppressed.
//!
//! Suppressed cells become null. Two columns are added last: `suppressed` lists the
//! row's hidden columns (counts and derived values), comma-separated, and
//! `suppressed_secondary` lists those of them that are counts hidden in step 2 — a
//! partner's true value may be large, so it must not be printed `<5`. Both are null
//! when none. The batch schema carries `culla.min_count` in its metadata so writers show
//! `<5` (primary), [`SECONDARY_SYMBOL`] (secondary) and `-` (derived values) in tables
//! and CSV; JSON and Parquet keep null plus the two marker columns.

use crate::protect::{Kind, System, protect};
use crate::registry::QueryInfo;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, nullif};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Schema metadata key holding the threshold used.
pub const MIN_COUNT_KEY: &str = "culla.min_count";
/// Name of the marker column listing a row's suppressed columns.
pub const MARKER: &str = "suppressed";
/// Name of the marker column listing the row's counts hidden by secondary suppression
/// (always a subset of [`MARKER`]'s list).
pub const SECONDARY_MARKER: &str = "suppressed_secondary";
/// How tables, CSV and reports write a count hidden by secondary suppression: `c`
/// ("confidential", as in Eurostat's tables), unlike the `<5` of a primary one, because
/// its true value may be large.
pub const SECONDARY_SYMBOL: &str = "c";

/// Protects one query result on its own: its cells, the totals its additive keys and
/// row parts add up to (assumed published), and nothing else. A release's outputs are
/// protected together by [`crate::release`]; this is for a table published alone (a
/// survey comparison, the unit tests).
pub fn apply(
    batch: &RecordBatch,
    info: &QueryInfo,
    min_count: u32,
) -> Result<RecordBatch, ArrowError> {
    let mut sys = System::default();
    let counts = count_columns(batch, info)?;
    let keys = key_strings(batch, info)?;
    let mut cells: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for (c, vals) in &counts {
        for (r, v) in vals.iter().enumerate() {
            if let Some(v) = v {
                cells.insert((r, c), sys.cell(*v, Kind::Shown));
            }
        }
    }
    for dim in info.additive_keys {
        let Some(pos) = info.key_columns.iter().position(|k| k == dim) else {
            continue;
        };
        for c in counts.keys() {
            let mut by: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
            for (r, key) in keys.iter().enumerate() {
                let mut g: Vec<&str> = key.iter().map(String::as_str).collect();
                g.remove(pos);
                if let Some(&cell) = cells.get(&(r, *c)) {
                    by.entry(g).or_default().push(cell);
                }
            }
            for group in by.into_values().filter(|g| g.len() > 1) {
                let total: i64 = group.iter().map(|&x| sys.value(x)).sum();
                let t = sys.cell(total, Kind::Fixed);
                let mut eq: Vec<(usize, i64)> = group.iter().map(|&x| (x, 1)).collect();
                eq.push((t, -1));
                sys.equation(eq);
            }
        }
    }
    for (parts, total) in info.row_parts {
        for r in 0..batch.num_rows() {
            let Some(&t) = cells.get(&(r, *total)) else {
                continue;
            };
            let mut eq: Vec<(usize, i64)> = parts
                .iter()
                .filter_map(|p| cells.get(&(r, *p)).map(|&x| (x, 1)))
                .collect();
            eq.push((t, -1));
            sys.equation(eq);
        }
    }
    let p = protect(&sys, i64::from(min_count));
    mark(batch, info, min_count, |r, c| {
        cells
            .get(&(r, c))
            .filter(|&&x| p.hidden[x])
            .map(|&x| p.secondary[x])
    })
}

/// The values of `info`'s count columns present in `batch` (`None`: null).
pub(crate) fn count_columns<'a>(
    batch: &RecordBatch,
    info: &'a QueryInfo,
) -> Result<BTreeMap<&'a str, Vec<Option<i64>>>, ArrowError> {
    let schema = batch.schema();
    let mut values = BTreeMap::new();
    for c in info.counts {
        if let Ok(idx) = schema.index_of(c) {
            let col = cast(batch.column(idx), &DataType::Int64)?;
            let col = col
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .ok_or_else(|| ArrowError::CastError(format!("column {c} is not a count")))?;
            values.insert(*c, col.iter().collect());
        }
    }
    Ok(values)
}

/// Each row's key column values as text (null: empty), in `info.key_columns` order.
pub(crate) fn key_strings(
    batch: &RecordBatch,
    info: &QueryInfo,
) -> Result<Vec<Vec<String>>, ArrowError> {
    let schema = batch.schema();
    let mut rows = vec![Vec::with_capacity(info.key_columns.len()); batch.num_rows()];
    for k in info.key_columns {
        let Ok(idx) = schema.index_of(k) else {
            continue;
        };
        let col = cast(batch.column(idx), &DataType::Utf8)?;
        let col = col
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| ArrowError::CastError(format!("key {k} is not text")))?;
        for (i, row) in rows.iter_mut().enumerate() {
            row.push(if col.is_valid(i) {
                col.value(i).to_string()
            } else {
                String::new()
            });
        }
    }
    Ok(rows)
}

/// Hides the counts `hidden(row, column)` names (`Some(secondary)`), and every derived
/// value built on a hidden count, as nulls; adds the marker columns and the threshold
/// to the schema. With nothing hidden it is how a table published as it is (counts by
/// time alone) gets the same shape as a protected one.
pub fn mark(
    batch: &RecordBatch,
    info: &QueryInfo,
    min_count: u32,
    hidden: impl Fn(usize, &str) -> Option<bool>,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let rows = batch.num_rows();
    let mut suppressed: BTreeSet<(usize, &str)> = BTreeSet::new();
    let mut secondary: BTreeSet<(usize, &str)> = BTreeSet::new();
    for c in info.counts {
        for r in 0..rows {
            if let Some(sec) = hidden(r, c) {
                suppressed.insert((r, c));
                if sec {
                    secondary.insert((r, c));
                }
            }
        }
    }
    // Derived cells built on suppressed counts.
    let mut derived: BTreeSet<(usize, &str)> = BTreeSet::new();
    for (d, bases) in info.derived {
        for r in 0..rows {
            if bases.iter().any(|b| suppressed.contains(&(r, *b))) {
                derived.insert((r, d));
            }
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns() + 1);
    for (i, f) in schema.fields().iter().enumerate() {
        let name = f.name().as_str();
        let mask: BooleanArray = (0..rows)
            .map(|r| Some(suppressed.contains(&(r, name)) || derived.contains(&(r, name))))
            .collect();
        if mask.true_count() == 0 {
            columns.push(batch.column(i).clone());
        } else {
            columns.push(nullif(batch.column(i), &mask)?);
        }
    }
    let marker: StringArray = (0..rows)
        .map(|r| {
            let names: Vec<&str> = schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| suppressed.contains(&(r, n)) || derived.contains(&(r, n)))
                .collect();
            (!names.is_empty()).then(|| names.join(","))
        })
        .collect();
    columns.push(Arc::new(marker));
    let secondary_marker: StringArray = (0..rows)
        .map(|r| {
            let names: Vec<&str> = schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| secondary.contains(&(r, n)))
                .collect();
            (!names.is_empty()).then(|| names.join(","))
        })
        .collect();
    columns.push(Arc::new(secondary_marker));
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(MARKER, DataType::Utf8, true));
    fields.push(Field::new(SECONDARY_MARKER, DataType::Utf8, true));
    let mut meta = schema.metadata().clone();
    meta.insert(MIN_COUNT_KEY.to_string(), min_count.to_string());
    let out_schema = Arc::new(Schema::new_with_metadata(fields, meta));
    RecordBatch::try_new(out_schema, columns)
}

/// Whether column `name` of row `row` was suppressed (per the marker column).
pub fn is_suppressed(batch: &RecordBatch, row: usize, name: &str) -> bool {
    listed(batch, MARKER, row, name)
}

/// Whether count `name` of row `row` was hidden by secondary suppression, as the
/// partner of a small cell (per the [`SECONDARY_MARKER`] column).
pub fn is_secondary(batch: &RecordBatch, row: usize, name: &str) -> bool {
    listed(batch, SECONDARY_MARKER, row, name)
}

/// Whether `name` is in the comma-separated list of marker column `marker` at `row`.
fn listed(batch: &RecordBatch, marker: &str, row: usize, name: &str) -> bool {
    batch
        .column_by_name(marker)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .filter(|m| row < m.len() && m.is_valid(row))
        .is_some_and(|m| m.value(row).split(',').any(|n| n == name))
}

/// Whether a column is one of the marker columns this module adds.
pub fn is_marker(name: &str) -> bool {
    name == MARKER || name == SECONDARY_MARKER
}

/// The threshold a suppressed batch was made with, if it was.
pub fn min_count(batch: &RecordBatch) -> Option<u32> {
    batch
        .schema()
        .metadata()
        .get(MIN_COUNT_KEY)
        .and_then(|v| v.parse().ok())
}

/// Whether a column of `info` is a count (else a derived value or a key).
pub fn is_count(info: &QueryInfo, name: &str) -> bool {
    info.counts.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;
    use datafusion::arrow::array::{Float64Array, Int64Array};

    fn batch(months: &[&str], channels: &[&str], contacts: &[i64]) -> RecordBatch {
        let n = months.len();
        let schema = Arc::new(Schema::new(vec![
            Field::new("month", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("channel", DataType::Utf8, false),
            Field::new("contacts", DataType::Int64, false),
            Field::new("families", DataType::Int64, false),
            Field::new("out_of_hours", DataType::Int64, false),
            Field::new("out_of_hours_share", DataType::Float64, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(months.to_vec())),
            Arc::new(StringArray::from(vec!["s"; n])),
            Arc::new(StringArray::from(channels.to_vec())),
            Arc::new(Int64Array::from(contacts.to_vec())),
            Arc::new(Int64Array::from(contacts.to_vec())),
            Arc::new(Int64Array::from(vec![0; n])),
            Arc::new(Float64Array::from(vec![0.0; n])),
        ];
        RecordBatch::try_new(schema, cols).unwrap()
    }

    fn ints(b: &RecordBatch, c: &str) -> Vec<Option<i64>> {
        b.column_by_name(c)
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .iter()
            .collect()
    }

    #[test]
    fn small_counts_and_their_rates_are_suppressed_zero_is_not() {
        let info = find("contacts_by_month").unwrap();
        let b = batch(
            &["2024-01", "2024-01", "2024-02"],
            &["phone", "whatsapp", "phone"],
            &[3, 0, 12],
        );
        let out = apply(&b, info, 5).unwrap();
        // The 3 is hidden; 0 never is; phone's yearly total (3 + 12) would give the 3
        // away, so the 12 is hidden as its partner.
        assert_eq!(ints(&out, "contacts"), vec![None, Some(0), None]);
        assert!(is_suppressed(&out, 0, "contacts"));
        assert!(is_suppressed(&out, 0, "out_of_hours_share"));
        assert!(!is_suppressed(&out, 1, "contacts"));
        // The 3 is primary (`<5`); the 12 is secondary, so it must not be shown as `<5`.
        assert!(!is_secondary(&out, 0, "contacts"));
        assert!(is_secondary(&out, 2, "contacts"));
        assert!(is_suppressed(&out, 2, "contacts"));
        assert_eq!(min_count(&out), Some(5));
        // No published count is between 1 and 4.
        for c in info.counts {
            for v in ints(&out, c).into_iter().flatten() {
                assert!(v == 0 || v >= 5, "{c} = {v} survived");
            }
        }
    }

    #[test]
    fn a_lone_suppressed_cell_gets_the_smallest_partner() {
        let info = find("contacts_by_month").unwrap();
        // January: phone 2 (suppressed), whatsapp 7, webchat 30. The month total would
        // give the 2 away, so 7 (the smallest other non-zero cell) goes too.
        let b = batch(
            &["2024-01", "2024-01", "2024-01"],
            &["phone", "whatsapp", "webchat"],
            &[2, 7, 30],
        );
        let out = apply(&b, info, 5).unwrap();
        assert_eq!(ints(&out, "contacts"), vec![None, None, Some(30)]);
        assert!(is_suppressed(&out, 1, "out_of_hours_share"));
        assert!(!is_suppressed(&out, 2, "contacts"));
        assert!(!is_secondary(&out, 0, "contacts"));
        assert!(is_secondary(&out, 1, "contacts"));
        // A derived value is never listed as secondary: it is written `-` either way.
        assert!(!is_secondary(&out, 1, "out_of_hours_share"));
        let names: Vec<String> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names[names.len() - 2..], [MARKER, SECONDARY_MARKER]);
        let sec = out
            .column_by_name(SECONDARY_MARKER)
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        // whatsapp's contacts and families (equal counts here) are both partners.
        assert_eq!(
            sec.iter().collect::<Vec<_>>(),
            vec![None, Some("contacts,families"), None]
        );
    }

    #[test]
    fn tables_and_csv_tell_primary_from_secondary() {
        let info = find("contacts_by_month").unwrap();
        let b = batch(
            &["2024-01", "2024-01", "2024-01"],
            &["phone", "whatsapp", "webchat"],
            &[2, 70, 300],
        );
        let out = apply(&b, info, 5).unwrap();
        let mut csv = Vec::new();
        crate::output::write(&out, crate::output::Output::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "month,source,channel,contacts,families,out_of_hours,out_of_hours_share"
        );
        // The 2 is `<5`; its partner 70 is `c` (not `<5`: it is not small); the rate
        // built on either is `-`; 0 stays 0.
        assert_eq!(lines[1], "2024-01,s,phone,<5,<5,0,-");
        assert_eq!(lines[2], "2024-01,s,whatsapp,c,c,0,-");
        assert!(
            lines[3].starts_with("2024-01,s,webchat,300,300,0,0"),
            "{}",
            lines[3]
        );
        let mut table = Vec::new();
        crate::output::write(&out, crate::output::Output::Table, &mut table).unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(!table.contains("suppressed"), "{table}");
        let whatsapp = table.lines().find(|l| l.contains("whatsapp")).unwrap();
        assert_eq!(
            whatsapp.split_whitespace().collect::<Vec<_>>(),
            ["2024-01", "s", "whatsapp", "c", "c", "0", "-"]
        );
        let mut json = Vec::new();
        crate::output::write(&out, crate::output::Output::Json, &mut json).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(json[1]["contacts"], serde_json::Value::Null);
        assert_eq!(
            json[1]["suppressed"],
            "contacts,families,out_of_hours_share"
        );
        assert_eq!(json[1]["suppressed_secondary"], "contacts,families");
        assert_eq!(json[0]["suppressed_secondary"], serde_json::Value::Null);
        assert_eq!(json[2]["suppressed"], serde_json::Value::Null);
    }

    #[test]
    fn row_parts_get_a_partner_too() {
        let info = find("needs_by_category").unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("category", DataType::Utf8, false),
            Field::new("stage", DataType::Utf8, false),
            Field::new("needs", DataType::Int64, false),
            Field::new("met", DataType::Int64, false),
            Field::new("unmet", DataType::Int64, false),
            Field::new("declined", DataType::Int64, false),
            Field::new("open", DataType::Int64, false),
            Field::new("unmet_share", DataType::Float64, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["economic"])),
            Arc::new(StringArray::from(vec!["0-12m"])),
            Arc::new(Int64Array::from(vec![40])),
            Arc::new(Int64Array::from(vec![30])),
            Arc::new(Int64Array::from(vec![7])),
            Arc::new(Int64Array::from(vec![3])),
            Arc::new(Int64Array::from(vec![0])),
            Arc::new(Float64Array::from(vec![0.175])),
        ];
        let out = apply(&RecordBatch::try_new(schema, cols).unwrap(), info, 5).unwrap();
        assert_eq!(ints(&out, "declined"), vec![None]);
        assert_eq!(
            ints(&out, "unmet"),
            vec![None],
            "needs - met - open would reveal declined"
        );
        assert!(is_suppressed(&out, 0, "unmet_share"));
        assert_eq!(ints(&out, "needs"), vec![Some(40)]);
        assert!(!is_secondary(&out, 0, "declined"));
        assert!(is_secondary(&out, 0, "unmet"));
        assert!(!is_secondary(&out, 0, "needs"));
    }
}
