//! Milan reference data shipped inside culla, and its registration as tables.
//!
//! The files under `schemas/reference/milano/` are Comune di Milano open data (CC-BY 4.0,
//! "Comune di Milano"; see `SOURCES.md` there) compiled into the binary, so a laptop
//! without network or `../shared` has them. Tables:
//! - `nil`: the 88 NIL with their ds205 name (latest year), Municipio (derived fallback
//!   table, see SOURCES.md) and area;
//! - `births`: live births, residents and minors per NIL per year, 2011–2024 (ds205).
//!
//! The NIL boundaries (GeoJSON, CRS84) are served as text for maps.

use datafusion::arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use datafusion::prelude::SessionContext;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

const DS205: &str = include_str!("../reference/milano/ds205_nil_demographics_2011_2024.csv");
const NIL_MUNICIPIO: &str = include_str!("../reference/milano/nil_municipio.csv");
const BOUNDARIES: &str = include_str!("../reference/milano/nil_boundaries_2016.geojson");

/// ISTAT code of the Comune di Milano.
pub const MILANO_ISTAT: &str = "015146";
/// The attribution every published output that uses this data carries.
pub const ATTRIBUTION: &str = "Comune di Milano open data (ds205, NIL layer), CC-BY 4.0";

/// One NIL–year row of ds205.
#[derive(Debug, Clone, PartialEq)]
pub struct NilYear {
    /// Year.
    pub year: i32,
    /// NIL id, 1–88.
    pub nil: i32,
    /// NIL name as ds205 spells it that year.
    pub name: String,
    /// Live births ("Nati vivi").
    pub births: i64,
    /// Residents ("Totale").
    pub residents: i64,
    /// Residents under 18 ("Minori").
    pub minors: i64,
    /// Area in square metres.
    pub area_m2: f64,
}

/// One NIL with its Municipio.
#[derive(Debug, Clone, PartialEq)]
pub struct Nil {
    /// NIL id, 1–88.
    pub nil: i32,
    /// Name from ds205 (latest year).
    pub name: String,
    /// Municipio from the derived table; `None` for the three NIL it leaves open.
    pub municipio: Option<i32>,
    /// How the Municipio was derived (`majority_points`, `neighbours`).
    pub municipio_method: Option<String>,
}

static DS205_ROWS: LazyLock<Vec<NilYear>> = LazyLock::new(|| parse_ds205(DS205));
static NILS: LazyLock<Vec<Nil>> = LazyLock::new(|| parse_nils(&DS205_ROWS, NIL_MUNICIPIO));

fn parse_ds205(text: &str) -> Vec<NilYear> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(y), Some(q), Some(n), Some(t), Some(m), Some(b), Some(a)) = (
        col("Anno"),
        col("Quartiere"),
        col("NIL"),
        col("Totale"),
        col("Minori"),
        col("Nati vivi"),
        col("Area (metri quadrati)"),
    ) else {
        return Vec::new();
    };
    let int = |s: &str| s.trim().parse::<i64>().unwrap_or(0);
    lines
        .filter_map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            let nil = f.get(n)?.trim().parse::<i32>().ok()?; // skips the N.D. rows
            Some(NilYear {
                year: f.get(y)?.trim().parse().ok()?,
                nil,
                name: f.get(q)?.to_string(),
                births: int(f.get(b)?),
                residents: int(f.get(t)?),
                minors: int(f.get(m)?),
                area_m2: f.get(a)?.replace(',', ".").parse().unwrap_or(0.0),
            })
        })
        .collect()
}

fn parse_nils(rows: &[NilYear], municipi: &str) -> Vec<Nil> {
    let mut latest: BTreeMap<i32, &NilYear> = BTreeMap::new();
    for r in rows {
        let e = latest.entry(r.nil).or_insert(r);
        if r.year > e.year {
            *e = r;
        }
    }
    let mut mun: BTreeMap<i32, (Option<i32>, Option<String>)> = BTreeMap::new();
    for line in municipi.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if let Some(id) = f.first().and_then(|s| s.parse::<i32>().ok()) {
            let m = f.get(2).and_then(|s| s.parse::<i32>().ok());
            let method = f.last().filter(|s| !s.is_empty()).map(|s| s.to_string());
            mun.insert(id, (m, method.filter(|_| m.is_some())));
        }
    }
    latest
        .into_iter()
        .map(|(nil, r)| {
            let (municipio, municipio_method) = mun.get(&nil).cloned().unwrap_or((None, None));
            Nil {
                nil,
                name: r.name.clone(),
                municipio,
                municipio_method,
            }
        })
        .collect()
}

/// Every NIL–year row of ds205 (the unassigned `N.D.` rows left out).
pub fn nil_years() -> &'static [NilYear] {
    &DS205_ROWS
}

/// The 88 NIL.
pub fn nils() -> &'static [Nil] {
    &NILS
}

/// Years with births data, ascending.
pub fn birth_years() -> Vec<i32> {
    let mut years: Vec<i32> = DS205_ROWS.iter().map(|r| r.year).collect();
    years.sort_unstable();
    years.dedup();
    years
}

/// The births year to use for `year`: itself if present, else the latest available
/// before it (or the earliest, for years before the data starts).
pub fn births_year_for(year: i32) -> i32 {
    let years = birth_years();
    years
        .iter()
        .rev()
        .find(|y| **y <= year)
        .or(years.first())
        .copied()
        .unwrap_or(year)
}

/// The NIL boundaries, GeoJSON FeatureCollection in CRS84 (property `IDquartiere` = NIL id).
pub fn boundaries_geojson() -> &'static str {
    BOUNDARIES
}

/// The `nil` table.
pub fn nil_batch() -> RecordBatch {
    let n = nils();
    let schema = Schema::new(vec![
        Field::new("nil", DataType::Int32, false),
        Field::new("nil_name", DataType::Utf8, false),
        Field::new("municipio", DataType::Int32, true),
        Field::new("municipio_method", DataType::Utf8, true),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(n.iter().map(|x| x.nil))),
        Arc::new(StringArray::from_iter_values(
            n.iter().map(|x| x.name.as_str()),
        )),
        Arc::new(Int32Array::from_iter(n.iter().map(|x| x.municipio))),
        Arc::new(StringArray::from_iter(
            n.iter().map(|x| x.municipio_method.as_deref()),
        )),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).expect("static reference schema")
}

/// The `births` table.
pub fn births_batch() -> RecordBatch {
    let r = nil_years();
    let schema = Schema::new(vec![
        Field::new("year", DataType::Int32, false),
        Field::new("nil", DataType::Int32, false),
        Field::new("nil_name", DataType::Utf8, false),
        Field::new("births", DataType::Int64, false),
        Field::new("residents", DataType::Int64, false),
        Field::new("minors", DataType::Int64, false),
        Field::new("area_m2", DataType::Float64, false),
    ]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(r.iter().map(|x| x.year))),
        Arc::new(Int32Array::from_iter_values(r.iter().map(|x| x.nil))),
        Arc::new(StringArray::from_iter_values(
            r.iter().map(|x| x.name.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(r.iter().map(|x| x.births))),
        Arc::new(Int64Array::from_iter_values(r.iter().map(|x| x.residents))),
        Arc::new(Int64Array::from_iter_values(r.iter().map(|x| x.minors))),
        Arc::new(Float64Array::from_iter_values(r.iter().map(|x| x.area_m2))),
    ];
    RecordBatch::try_new(Arc::new(schema), cols).expect("static reference schema")
}

/// Registers `nil` and `births` in a DataFusion session.
pub fn register(ctx: &SessionContext) -> DfResult<()> {
    for (name, batch) in [("nil", nil_batch()), ("births", births_batch())] {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        ctx.register_table(name, Arc::new(table))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milan_has_88_nil_and_the_2024_births_of_sources_md() {
        assert_eq!(nils().len(), 88);
        let births_2024: i64 = nil_years()
            .iter()
            .filter(|r| r.year == 2024)
            .map(|r| r.births)
            .sum();
        let residents_2024: i64 = nil_years()
            .iter()
            .filter(|r| r.year == 2024)
            .map(|r| r.residents)
            .sum();
        // Figures stated in SOURCES.md for 2024.
        assert_eq!(births_2024, 9_147);
        assert_eq!(residents_2024, 1_407_044);
        assert_eq!(birth_years(), (2011..=2024).collect::<Vec<_>>());
        assert_eq!(births_year_for(2026), 2024);
        assert_eq!(births_year_for(2020), 2020);
        let unassigned: Vec<i32> = nils()
            .iter()
            .filter(|n| n.municipio.is_none())
            .map(|n| n.nil)
            .collect();
        assert_eq!(unassigned, vec![27, 58, 86]);
    }

    #[test]
    fn boundaries_hold_88_features() {
        let v: serde_json::Value = serde_json::from_str(boundaries_geojson()).unwrap();
        assert_eq!(v["features"].as_array().unwrap().len(), 88);
    }
}
