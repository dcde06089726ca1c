//! Survey comparison: do the families who contact the line report the same needs as
//! families surveyed in the territory (like Melzo's 2022 survey of 87 families)?
//!
//! [`parse_survey`] reads the survey CSV (format in `docs/SURVEY.md`; one row per
//! family, one yes/no column per need category, empty = not answered). For each need
//! category [`compare`] puts the survey share (families reporting it / families
//! answering that item) beside the contact share (families in contact in the year who
//! recorded a need of that category / families in contact, from [`contact_shares`]),
//! each with a Wilson 95% interval, their difference and a p-value: Fisher's exact
//! two-sided test, or Pearson's chi-square without continuity correction when every
//! expected count of the 2×2 table is at least 5. The p-values are adjusted with
//! Benjamini–Hochberg across categories; a difference is significant when q < 0.05.

use crate::stats::{Z_95, benjamini_hochberg, chi2_2x2, fisher_exact_two_sided, wilson};
use crate::{Error, Result};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The need categories of the contract, in contract order (survey columns of the same name).
pub const CATEGORIES: [&str; 11] = [
    "economic",
    "health",
    "education",
    "childcare",
    "socialisation",
    "documents",
    "housing",
    "work",
    "psychological",
    "violence",
    "other",
];

/// Optional isolation-factor columns of the survey.
pub const FLAG_COLUMNS: [&str; 6] = [
    "single_parent",
    "no_family_network",
    "language_barrier",
    "arrived_last_2y",
    "first_child",
    "no_pediatrician",
];

/// Per category: (families answering yes, families answering the item).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Survey {
    /// Families (data rows) in the file.
    pub families: u64,
    /// Per need category: `(yes, answered)`.
    pub needs: BTreeMap<String, (u64, u64)>,
    /// Per isolation factor present in the file: `(yes, answered)`.
    pub flags: BTreeMap<String, (u64, u64)>,
}

fn parse_answer(s: &str) -> Option<Option<bool>> {
    let v = s.trim().to_lowercase();
    match v.as_str() {
        "" => Some(None),
        "yes" | "y" | "si" | "sì" | "1" | "true" => Some(Some(true)),
        "no" | "n" | "0" | "false" => Some(Some(false)),
        _ => None,
    }
}

/// Parses a survey CSV (UTF-8, comma-separated, header row). `file` names it in errors.
pub fn parse_survey(text: &str, file: &str) -> Result<Survey> {
    let err = |line: usize, message: String| Error::Survey {
        file: file.to_string(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| err(1, format!("cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    if col("family_id").is_none() {
        return Err(err(1, "the header has no family_id column".into()));
    }
    let mut need_cols = Vec::new();
    for c in CATEGORIES {
        match col(c) {
            Some(i) => need_cols.push((c, i)),
            None => {
                return Err(err(
                    1,
                    format!("the header has no {c} column (every need category is required)"),
                ));
            }
        }
    }
    let flag_cols: Vec<(&str, usize)> = FLAG_COLUMNS
        .iter()
        .filter_map(|c| Some((*c, col(c)?)))
        .collect();
    let mut s = Survey::default();
    for c in CATEGORIES {
        s.needs.insert(c.to_string(), (0, 0));
    }
    for (c, _) in &flag_cols {
        s.flags.insert(c.to_string(), (0, 0));
    }
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| err(line, format!("not a valid CSV row: {e}")))?;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        s.families += 1;
        for (target, cols) in [(&mut s.needs, &need_cols), (&mut s.flags, &flag_cols)] {
            for (name, idx) in cols.iter() {
                let raw = rec.get(*idx).unwrap_or("");
                let ans = parse_answer(raw).ok_or_else(|| {
                    err(
                        line,
                        format!("column {name} has {raw:?}; expected yes, no or empty"),
                    )
                })?;
                if let Some(yes) = ans {
                    let e = target.entry(name.to_string()).or_default();
                    e.1 += 1;
                    if yes {
                        e.0 += 1;
                    }
                }
            }
        }
    }
    if s.families == 0 {
        return Err(err(2, "the file has no families (no data rows)".into()));
    }
    Ok(s)
}

/// Reads and parses a survey file.
pub fn read_survey(path: &Path) -> Result<Survey> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse_survey(&text, &path.display().to_string())
}

/// Families in contact in the period and, per need category, those who recorded it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ContactShares {
    /// Families with at least one contact in the period.
    pub families: u64,
    /// Per category: families in contact with at least one need of it recorded in the period.
    pub needs: BTreeMap<String, u64>,
}

/// Computes [`ContactShares`] for one year (and optionally one source) of `data`.
pub async fn contact_shares(data: &Path, year: i32, source: Option<&str>) -> Result<ContactShares> {
    let opts = culla_transform::ProjectionOptions {
        from: chrono::NaiveDate::from_ymd_opt(year, 1, 1),
        to: chrono::NaiveDate::from_ymd_opt(year, 12, 31),
        source: source.map(str::to_string),
        ..Default::default()
    };
    let q = |e: String| Error::Query {
        name: "survey contact shares".into(),
        message: e,
    };
    let _lock = culla_transform::read_lock(data).map_err(|e| q(e.to_string()))?;
    let ctx = culla_transform::open(data, &opts)
        .await
        .map_err(|e| q(e.to_string()))?;
    let sql = "WITH f AS (SELECT DISTINCT family FROM families), \
               n AS (SELECT DISTINCT family, category FROM needs) \
               SELECT 'families' AS category, CAST(count(*) AS BIGINT) AS n FROM f \
               UNION ALL \
               SELECT n.category, CAST(count(*) AS BIGINT) FROM n JOIN f ON n.family = f.family GROUP BY n.category";
    let df = ctx.sql(sql).await.map_err(|e| q(e.to_string()))?;
    let (_, batches) = culla_transform::collect_plain(df)
        .await
        .map_err(|e| q(e.to_string()))?;
    let mut out = ContactShares::default();
    for c in CATEGORIES {
        out.needs.insert(c.to_string(), 0);
    }
    for b in &batches {
        let cats = b.column(0).as_string::<i32>();
        let ns = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let n = ns.value(i).max(0) as u64;
            match cats.value(i) {
                "families" => out.families = n,
                c => {
                    out.needs.insert(c.to_string(), n);
                }
            }
        }
    }
    Ok(out)
}

/// The test used for a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// Fisher's exact test, two-sided (some expected count under 5).
    Fisher,
    /// Pearson's chi-square, 1 degree of freedom, no continuity correction.
    ChiSquare,
}

/// One category of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Need category.
    pub category: String,
    /// Surveyed families reporting it.
    pub survey_yes: u64,
    /// Surveyed families answering the item.
    pub survey_n: u64,
    /// `survey_yes / survey_n`.
    pub survey_share: f64,
    /// Wilson 95% interval, low.
    pub survey_ci_low: f64,
    /// Wilson 95% interval, high.
    pub survey_ci_high: f64,
    /// Families in contact who recorded it.
    pub contact_yes: u64,
    /// Families in contact.
    pub contact_n: u64,
    /// `contact_yes / contact_n`.
    pub contact_share: f64,
    /// Wilson 95% interval, low.
    pub contact_ci_low: f64,
    /// Wilson 95% interval, high.
    pub contact_ci_high: f64,
    /// `survey_share − contact_share`.
    pub difference: f64,
    /// Test used.
    pub test: Test,
    /// Chi-square statistic (when [`Test::ChiSquare`]).
    pub chi2: Option<f64>,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Benjamini–Hochberg adjusted p-value.
    pub q_value: f64,
    /// `q_value < 0.05`.
    pub significant: bool,
}

/// Compares a survey with the families in contact, category by category.
pub fn compare(survey: &Survey, contacts: &ContactShares) -> Vec<Row> {
    let share = |a: u64, n: u64| if n == 0 { 0.0 } else { a as f64 / n as f64 };
    let mut rows: Vec<Row> = CATEGORIES
        .iter()
        .map(|c| {
            let (sy, sn) = survey.needs.get(*c).copied().unwrap_or((0, 0));
            let cn = contacts.families;
            let cy = contacts.needs.get(*c).copied().unwrap_or(0).min(cn);
            let sy = sy.min(sn);
            let (a, b, cc, d) = (sy, sn - sy, cy, cn - cy);
            let (stat, p_chi, min_e) = chi2_2x2(a, b, cc, d);
            let (test, chi2, p) = if min_e >= 5.0 {
                (Test::ChiSquare, Some(stat), p_chi)
            } else {
                (Test::Fisher, None, fisher_exact_two_sided(a, b, cc, d))
            };
            let (sl, sh) = wilson(sy, sn, Z_95);
            let (cl, ch) = wilson(cy, cn, Z_95);
            Row {
                category: c.to_string(),
                survey_yes: sy,
                survey_n: sn,
                survey_share: share(sy, sn),
                survey_ci_low: sl,
                survey_ci_high: sh,
                contact_yes: cy,
                contact_n: cn,
                contact_share: share(cy, cn),
                contact_ci_low: cl,
                contact_ci_high: ch,
                difference: share(sy, sn) - share(cy, cn),
                test,
                chi2,
                p_value: p,
                q_value: 1.0,
                significant: false,
            }
        })
        .collect();
    let q = benjamini_hochberg(&rows.iter().map(|r| r.p_value).collect::<Vec<_>>());
    for (r, q) in rows.iter_mut().zip(q) {
        r.q_value = q;
        r.significant = q < 0.05;
    }
    rows
}

/// The comparison as CSV (header + one row per category; shares as decimals).
pub fn to_csv(rows: &[Row]) -> String {
    let mut o = String::from(
        "category,survey_yes,survey_n,survey_share,survey_ci_low,survey_ci_high,contact_yes,contact_n,contact_share,contact_ci_low,contact_ci_high,difference,test,chi2,p_value,q_value,significant\n",
    );
    for r in rows {
        o.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.6},{},{},{:.6},{:.6},{:.6},{:.6},{},{},{:.6e},{:.6e},{}\n",
            r.category,
            r.survey_yes,
            r.survey_n,
            r.survey_share,
            r.survey_ci_low,
            r.survey_ci_high,
            r.contact_yes,
            r.contact_n,
            r.contact_share,
            r.contact_ci_low,
            r.contact_ci_high,
            r.difference,
            match r.test {
                Test::Fisher => "fisher",
                Test::ChiSquare => "chi_square",
            },
            r.chi2.map(|c| format!("{c:.6}")).unwrap_or_default(),
            r.p_value,
            r.q_value,
            r.significant
        ));
    }
    o
}

/// The comparison as an aligned text table for a terminal.
pub fn to_text(rows: &[Row]) -> String {
    let mut o = format!(
        "{:<14} {:>22} {:>22} {:>8} {:>10} {:>10} {:>10} {}\n",
        "category",
        "survey % [95% CI]",
        "contacts % [95% CI]",
        "diff pp",
        "test",
        "p",
        "q (BH)",
        "sig."
    );
    let pct = |v: f64| format!("{:.1}", v * 100.0);
    for r in rows {
        o.push_str(&format!(
            "{:<14} {:>22} {:>22} {:>8} {:>10} {:>10.4} {:>10.4} {}\n",
            r.category,
            format!(
                "{} [{}–{}]",
                pct(r.survey_share),
                pct(r.survey_ci_low),
                pct(r.survey_ci_high)
            ),
            format!(
                "{} [{}–{}]",
                pct(r.contact_share),
                pct(r.contact_ci_low),
                pct(r.contact_ci_high)
            ),
            format!("{:+.1}", r.difference * 100.0),
            match r.test {
                Test::Fisher => "fisher",
                Test::ChiSquare => "chi2",
            },
            r.p_value,
            r.q_value,
            if r.significant { "*" } else { "" }
        ));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "family_id,stage,economic,health,education,childcare,socialisation,documents,housing,work,psychological,violence,other,single_parent,no_family_network,language_barrier,arrived_last_2y,first_child,no_pediatrician,nil";

    #[test]
    fn parses_answers_and_blanks() {
        let text = format!(
            "{HEADER}\nf1,0-12m,yes,no,,no,no,no,no,no,no,no,no,sì,,,,,,12\nf2,pregnancy,Si,TRUE,1,0,false,no,no,no,no,no,no,no,,,,,,\n"
        );
        let s = parse_survey(&text, "t.csv").unwrap();
        assert_eq!(s.families, 2);
        assert_eq!(s.needs["economic"], (2, 2));
        assert_eq!(s.needs["health"], (1, 2));
        assert_eq!(s.needs["education"], (1, 1)); // f1 left it empty
        assert_eq!(s.flags["single_parent"], (1, 2));
        assert_eq!(s.flags["no_family_network"], (0, 0));
    }

    #[test]
    fn rejects_bad_values_with_the_line() {
        let text = format!("{HEADER}\nf1,0-12m,maybe,no,no,no,no,no,no,no,no,no,no,,,,,,,\n");
        let e = parse_survey(&text, "t.csv").unwrap_err().to_string();
        assert_eq!(
            e,
            "survey file t.csv, line 2: column economic has \"maybe\"; expected yes, no or empty"
        );
        let e = parse_survey("family_id,economic\nf1,yes\n", "t.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no health column"), "{e}");
    }

    // By hand: survey 30/87 economic vs contacts 300/1000 → table [[30, 57], [300, 700]];
    // expected counts all ≥ 5 (smallest 87·330/1087 = 26.4), so chi-square is used.
    #[test]
    fn chooses_the_test_by_expected_counts() {
        let mut s = Survey {
            families: 87,
            ..Default::default()
        };
        let mut c = ContactShares {
            families: 1000,
            ..Default::default()
        };
        for cat in CATEGORIES {
            s.needs.insert(cat.into(), (0, 87));
            c.needs.insert(cat.into(), 0);
        }
        s.needs.insert("economic".into(), (30, 87));
        c.needs.insert("economic".into(), 300);
        s.needs.insert("violence".into(), (2, 87));
        c.needs.insert("violence".into(), 10);
        let rows = compare(&s, &c);
        let eco = rows.iter().find(|r| r.category == "economic").unwrap();
        assert_eq!(eco.test, Test::ChiSquare);
        assert!((eco.difference - (30.0 / 87.0 - 0.3)).abs() < 1e-12);
        let vio = rows.iter().find(|r| r.category == "violence").unwrap();
        assert_eq!(vio.test, Test::Fisher);
        // Categories with 0 in both: table [[0, 87], [0, 1000]] → p = 1.
        let other = rows.iter().find(|r| r.category == "other").unwrap();
        assert_eq!(other.p_value, 1.0);
        assert!(to_csv(&rows).lines().count() == 12);
    }
}

/// Which rows of a comparison may be published, and whether the count of families in
/// contact may.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Publication {
    /// Per row: publishable.
    pub rows: Vec<bool>,
    /// Whether all families in contact (`contact_n`) are hidden (then no row is shown).
    pub contact_n_hidden: bool,
}

/// Decides what of `rows` a public output shows. The contact side is a table of the
/// year's release (`culla_queries::release`), protected together with every other
/// public table: a category whose count the release hides is withheld. A row is also
/// withheld when a survey count, or the families without the need on either side, is
/// between 1 and `min_count - 1`.
pub async fn publication(
    data: &Path,
    year: i32,
    source: Option<&str>,
    min_count: u32,
    rows: &[Row],
) -> Result<Publication> {
    let params = culla_queries::Params {
        data: data.to_path_buf(),
        year: Some(year),
        public: true,
        min_count,
        ..Default::default()
    };
    let release = culla_queries::release::of(&params)
        .await
        .map_err(|e| Error::Query {
            name: "survey comparison release".into(),
            message: e.to_string(),
        })?;
    let hidden = |category: &str| {
        let id = culla_queries::release::CellId {
            question: culla_queries::release::SURVEY_FAMILIES.name,
            source: source.map(str::to_string),
            row: vec![category.to_string()],
            column: "families",
        };
        release.hidden(&id).is_some()
    };
    let contact_n_hidden = hidden(culla_queries::release::SURVEY_ALL);
    let min = u64::from(min_count);
    let fine = |v: u64| v == 0 || v >= min;
    Ok(Publication {
        rows: rows
            .iter()
            .map(|r| {
                !contact_n_hidden
                    && (r.contact_yes == 0 || !hidden(&r.category))
                    && fine(r.survey_yes)
                    && fine(r.survey_n - r.survey_yes)
                    && fine(r.contact_yes)
                    && fine(r.contact_n - r.contact_yes)
            })
            .collect(),
        contact_n_hidden,
    })
}

/// The fields a withheld row still shows.
const SHOWN_WHEN_WITHHELD: [&str; 2] = ["category", "survey_n"];

/// The rows as JSON objects, withheld rows' values null, with a `suppressed` flag.
pub fn to_public_json(rows: &[Row], p: &Publication) -> Vec<serde_json::Value> {
    rows.iter()
        .zip(&p.rows)
        .map(|(r, ok)| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                if !ok {
                    for (k, x) in o.iter_mut() {
                        if !SHOWN_WHEN_WITHHELD.contains(&k.as_str()) {
                            *x = serde_json::Value::Null;
                        }
                    }
                }
                o.insert("suppressed".into(), serde_json::Value::Bool(!ok));
            }
            v
        })
        .collect()
}

/// The public comparison as CSV: [`to_csv`]'s columns, withheld rows' values empty,
/// and a last column `suppressed` (true/false) so numbers stay numbers.
pub fn to_public_csv(rows: &[Row], p: &Publication) -> String {
    let full = to_csv(rows);
    let mut lines = full.lines();
    let header = lines.next().unwrap_or_default();
    let names: Vec<&str> = header.split(',').collect();
    let mut o = format!("{header},suppressed\n");
    for ((line, ok), r) in lines.zip(&p.rows).zip(rows) {
        if *ok {
            o.push_str(&format!("{line},false\n"));
        } else {
            let cells: Vec<String> = names
                .iter()
                .map(|n| match *n {
                    "category" => r.category.clone(),
                    "survey_n" => r.survey_n.to_string(),
                    _ => String::new(),
                })
                .collect();
            o.push_str(&format!("{},true\n", cells.join(",")));
        }
    }
    o
}

/// The public comparison for a terminal: withheld rows say so.
pub fn to_public_text(rows: &[Row], p: &Publication) -> String {
    let full = to_text(rows);
    let mut lines = full.lines();
    let mut o = format!("{}\n", lines.next().unwrap_or_default());
    for ((line, ok), r) in lines.zip(&p.rows).zip(rows) {
        if *ok {
            o.push_str(line);
        } else {
            o.push_str(&format!("{:<14} withheld (disclosure control)", r.category));
        }
        o.push('\n');
    }
    o
}

/// Recomputes the Benjamini–Hochberg q-values (and `significant`) over the published
/// rows only: adjusted over every category, a shown row's q can carry a withheld row's
/// p-value, and with it that row's counts.
pub fn adjust_for_publication(rows: &mut [Row], p: &Publication) {
    let shown: Vec<usize> = (0..rows.len())
        .filter(|&i| p.rows.get(i).copied().unwrap_or(false))
        .collect();
    let q = benjamini_hochberg(&shown.iter().map(|&i| rows[i].p_value).collect::<Vec<_>>());
    for (i, q) in shown.into_iter().zip(q) {
        rows[i].q_value = q;
        rows[i].significant = q < 0.05;
    }
}
