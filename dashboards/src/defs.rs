//! Dashboard definitions: which named queries a dashboard shows, and how.
//!
//! A definition is a JSON file (`dashboards/defs/*.json`, compiled in; or a folder
//! given to `culla serve --defs`) with a name, Italian and English titles and a list of
//! panels. Each panel names one query of the `culla-queries` registry and a chart kind
//! (`line`, `bar`, `heatmap`, `map`, `table`) with the columns it plots. [`validate`]
//! rejects a panel naming an unknown query, a chart missing the columns it needs, or
//! two panels with one id — a dashboard never shows something the registry does not
//! answer, and never runs anything but a named query.
//!
//! A line or bar chart of rates combines several rows per point (the lines, when no
//! line is chosen): each rate then names in `weights` the count it is a rate of, so
//! the point is the rates' mean weighted by that count — the rate of the summed
//! counts, not an unweighted mean of per-line rates. [`validate`] requires it.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// How a panel draws its query's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// Lines over `x` (one per `y` column, or per `series` value).
    Line,
    /// Bars over `x` (one per `y` column, or per `series` value).
    Bar,
    /// A grid: `series` rows × `x` columns coloured by `y[0]`.
    Heatmap,
    /// Milan's NIL coloured by `y[0]` (the query must have a `nil` column).
    Map,
    /// The rows as a table (columns `y`, or all).
    Table,
}

/// How values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueFormat {
    /// Whole numbers (counts; 1–4 shown as `<5`).
    #[default]
    Count,
    /// Shares in [0, 1] as percentages.
    Pct,
    /// Decimals.
    Num,
}

/// One panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    /// Identifier, unique in the dashboard (used in element ids).
    pub id: String,
    /// Title in Italian.
    pub title_it: String,
    /// Title in English.
    pub title_en: String,
    /// Registry name of the query.
    pub query: String,
    /// Chart kind.
    pub chart: ChartKind,
    /// Column along the horizontal axis (line, bar, heatmap columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Value columns.
    #[serde(default)]
    pub y: Vec<String>,
    /// Column whose values make separate series (line, bar) or rows (heatmap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// A horizontal target line (line charts), in the unit of `y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// How to write values.
    #[serde(default)]
    pub format: ValueFormat,
    /// For rates (`pct`, `num`) in line and bar charts: per `y` column, the count
    /// column it is a rate of (its denominator), used to weight the rows combined into
    /// one point. Required for every `y` of such a panel.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, String>,
}

/// One dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    /// Name (URL path segment): lowercase letters, digits and `-`.
    pub name: String,
    /// Title in Italian.
    pub title_it: String,
    /// Title in English.
    pub title_en: String,
    /// Panels, in page order.
    pub panels: Vec<Panel>,
}

/// The definitions shipped with culla: (file name, JSON text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("overview.json", include_str!("../defs/overview.json")),
    ("territory.json", include_str!("../defs/territory.json")),
];

/// Parses and validates one definition; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Dashboard> {
    let d: Dashboard = serde_json::from_str(text).map_err(|e| Error::Definition {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let known: Vec<&str> = culla_queries::registry().iter().map(|q| q.name).collect();
    validate(&d, &known).map_err(|message| Error::Definition {
        file: file.to_string(),
        message,
    })?;
    Ok(d)
}

/// Checks a dashboard against the query names of the registry; the error is one sentence.
pub fn validate(d: &Dashboard, known_queries: &[&str]) -> std::result::Result<(), String> {
    if d.name.is_empty()
        || !d
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "dashboard name {:?} must be lowercase letters, digits and '-'",
            d.name
        ));
    }
    if d.panels.is_empty() {
        return Err(format!("dashboard {} has no panels", d.name));
    }
    let mut ids = std::collections::BTreeSet::new();
    for p in &d.panels {
        if !ids.insert(p.id.as_str()) {
            return Err(format!("two panels have the id {:?}", p.id));
        }
        if p.id.is_empty()
            || !p
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "panel id {:?} must be letters, digits, '-' or '_'",
                p.id
            ));
        }
        if !known_queries.contains(&p.query.as_str()) {
            return Err(format!(
                "panel {} names the unknown query {:?}",
                p.id, p.query
            ));
        }
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("panel {} ({:?} chart) needs {what}", p.id, p.chart))
            }
        };
        match p.chart {
            ChartKind::Line | ChartKind::Bar => {
                need(p.x.is_some(), "an x column")?;
                need(!p.y.is_empty(), "at least one y column")?;
                if p.format != ValueFormat::Count {
                    check_weights(p)?;
                }
            }
            ChartKind::Heatmap => {
                need(p.x.is_some() && p.series.is_some(), "x and series columns")?;
                need(p.y.len() == 1, "exactly one y column")?;
            }
            ChartKind::Map => need(p.y.len() == 1, "exactly one y column")?,
            ChartKind::Table => {}
        }
    }
    Ok(())
}

/// Every `y` of a rate panel names, in `weights`, a count column of its query.
fn check_weights(p: &Panel) -> std::result::Result<(), String> {
    let counts = culla_queries::find(&p.query)
        .map(|q| q.counts)
        .unwrap_or_default();
    for y in &p.y {
        match p.weights.get(y) {
            None => {
                return Err(format!(
                    "panel {} needs weights.{y}: the count {y} is a rate of, so lines combine as a weighted mean",
                    p.id
                ));
            }
            Some(w) if !counts.contains(&w.as_str()) => {
                return Err(format!(
                    "panel {}: weights.{y} = {w:?} is not a count of {} ({})",
                    p.id,
                    p.query,
                    counts.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = p.weights.keys().find(|k| !p.y.contains(k)) {
        return Err(format!(
            "panel {}: weights.{extra} names no y column of the panel",
            p.id
        ));
    }
    Ok(())
}

/// The built-in dashboards.
pub fn builtin() -> Result<Vec<Dashboard>> {
    BUILTIN
        .iter()
        .map(|(file, text)| parse(text, file))
        .collect()
}

/// Every `*.json` definition of a folder, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Dashboard>> {
    let io = |source| Error::Io {
        action: "read",
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| Error::Io {
            action: "read",
            path: f.clone(),
            source,
        })?;
        out.push(parse(&text, &f.display().to_string())?);
    }
    if out.is_empty() {
        return Err(Error::Definition {
            file: dir.display().to_string(),
            message: "the folder holds no .json dashboard definition".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_definitions_are_valid() {
        let d = builtin().unwrap();
        assert_eq!(d.len(), BUILTIN.len());
        assert!(
            d.iter()
                .any(|x| x.panels.iter().any(|p| p.chart == ChartKind::Map))
        );
    }

    #[test]
    fn an_unknown_query_is_an_error() {
        let text = r#"{"name":"x","title_it":"X","title_en":"X","panels":[
            {"id":"a","title_it":"A","title_en":"A","query":"drop_table_events","chart":"table"}]}"#;
        let e = parse(text, "x.json").unwrap_err().to_string();
        assert_eq!(
            e,
            "dashboard definition x.json: panel a names the unknown query \"drop_table_events\""
        );
    }

    #[test]
    fn charts_need_their_columns_and_fields_are_checked() {
        let text = r#"{"name":"x","title_it":"X","title_en":"X","panels":[
            {"id":"a","title_it":"A","title_en":"A","query":"contacts_by_month","chart":"line","y":["contacts"]}]}"#;
        let e = parse(text, "x.json").unwrap_err().to_string();
        assert!(e.ends_with("panel a (Line chart) needs an x column"), "{e}");
        let text = r#"{"name":"x","title_it":"X","title_en":"X","panels":[
            {"id":"a","title_it":"A","title_en":"A","query":"contacts_by_month","chart":"pie"}]}"#;
        assert!(parse(text, "x.json").is_err());
        let text = r#"{"name":"x","title_it":"X","title_en":"X","sql":"select 1","panels":[]}"#;
        assert!(
            parse(text, "x.json")
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }

    #[test]
    fn rate_panels_name_the_count_to_weight_by() {
        let panel = |weights: &str| {
            format!(
                r#"{{"name":"x","title_it":"X","title_en":"X","panels":[
            {{"id":"a","title_it":"A","title_en":"A","query":"service_levels_by_month","chart":"line",
              "x":"month","y":["service_level"],"format":"pct"{weights}}}]}}"#
            )
        };
        let e = parse(&panel(""), "x.json").unwrap_err().to_string();
        assert!(e.ends_with("panel a needs weights.service_level: the count service_level is a rate of, so lines combine as a weighted mean"), "{e}");
        let e = parse(
            &panel(r#","weights":{"service_level":"wait_p50_s"}"#),
            "x.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"wait_p50_s\" is not a count of service_levels_by_month"),
            "{e}"
        );
        let d = parse(&panel(r#","weights":{"service_level":"calls"}"#), "x.json").unwrap();
        assert_eq!(d.panels[0].weights["service_level"], "calls");
        // Counts need no weights: they add up.
        let text = r#"{"name":"x","title_it":"X","title_en":"X","panels":[
            {"id":"a","title_it":"A","title_en":"A","query":"contacts_by_month","chart":"bar","x":"month","y":["contacts"]}]}"#;
        assert!(parse(text, "x.json").is_ok());
    }

    #[test]
    fn builtin_rate_panels_weight_by_their_denominators() {
        // Each rate of the built-in panels is a rate of these counts (queries/sql).
        let expected = [
            ("service-level", "service_level", "calls"),
            ("service-level", "answer_rate", "calls"),
            ("callbacks", "callback_within_target_share", "referrals"),
            ("callbacks", "escalation_rate", "contacts"),
        ];
        let d = builtin().unwrap();
        for (id, y, w) in expected {
            let p = d
                .iter()
                .flat_map(|x| &x.panels)
                .find(|p| p.id == id)
                .unwrap();
            assert_eq!(p.weights.get(y).map(String::as_str), Some(w), "{id}.{y}");
        }
    }
}
