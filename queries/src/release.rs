//! A release: every protected question of one calendar year, for all sources together
//! and for each source alone, protected together so that no published cell of any of
//! them can be worked out from the others.
//!
//! Every public output — `culla query --public`, the report, the dashboard's API —
//! takes its hidden cells from the release of its year, so the same cell is hidden the
//! same way wherever it appears. The release is built from the questions' own answers
//! and the equations that tie their cells ([`crate::protect`]):
//! - a table's cells add up, along any of its keys, to an unpublished total shared by
//!   every table that reaches the same total (a comune's needs in the NIL and the
//!   Municipio tables; a category's unmet needs by stage and by reason; all families in
//!   contact, which the flags table also shows as `of_families`);
//! - met + unmet + declined + open = needs, in a row;
//! - all sources = the sum of each source, cell by cell;
//! - a NIL's and a Municipio's counts are sums of the same unpublished cells (the
//!   families or needs of one NIL in one Municipio, as the data have them: a profile's
//!   Municipio can differ from its NIL's), and a Municipio holds at least the NIL cells
//!   the NIL map puts in it (what an attacker who knows the map assumes).
//!
//! An equation that does not hold on the data (a family in contact with two lines is
//! one family of all sources) is left out: it is no relation an attacker could use.
//! Releases are cached per data commit, year and threshold, so the dashboard builds one
//! once.

use crate::disclosure::{key_strings, mark};
use crate::protect::{Kind, Protection, System, protect};
use crate::registry::{QueryInfo, registry};
use crate::{Error, Params, Result, run_many_and_sql};
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The risk threshold and callback target every public release uses: the contract's.
/// Other values would make tables that differ from the release's by a few families.
pub const PUBLIC_RISK_THRESHOLD: u32 = 3;
/// See [`PUBLIC_RISK_THRESHOLD`].
pub const PUBLIC_CALLBACK_TARGET_HOURS: f64 = 72.0;
/// The smallest threshold a public output may use (SISTAN's minimum).
pub const MIN_PUBLIC_THRESHOLD: u32 = 3;

/// One cell of a release: which table, which row, which count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellId {
    /// The question.
    pub question: &'static str,
    /// `None`: all sources together.
    pub source: Option<String>,
    /// The row's key values, in the question's key-column order.
    pub row: Vec<String>,
    /// The count column.
    pub column: &'static str,
}

impl std::fmt::Display for CellId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let info = crate::find(self.question);
        let keys: Vec<String> = info
            .map(|i| i.key_columns)
            .unwrap_or_default()
            .iter()
            .zip(&self.row)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(
            f,
            "{} [{}] {} {}",
            self.question,
            self.source.as_deref().unwrap_or("all sources"),
            keys.join(" "),
            self.column
        )
    }
}

/// The protected questions of one year, protected together.
#[derive(Debug, Default)]
pub struct Release {
    /// Every published cell: hidden (`Some(true)` as a partner, `c`; `Some(false)` as
    /// small, `<5`) or shown (`None`).
    cells: HashMap<CellId, Option<bool>>,
    /// Hidden cells the equations still pin down because only zeros stand beside them
    /// (their totals are small themselves); `culla disclosure check` lists them.
    pub exposed: Vec<CellId>,
    /// Equations between them.
    pub equations: usize,
    /// The sources, each with its own tables.
    pub sources: Vec<String>,
}

impl Release {
    /// Whether `cell` is hidden, and if so whether as a partner.
    pub fn hidden(&self, cell: &CellId) -> Option<bool> {
        self.cells.get(cell).copied().flatten()
    }

    /// Every published cell of the release, with its state (see [`Release::hidden`]).
    pub fn cells(&self) -> impl Iterator<Item = (&CellId, Option<bool>)> {
        self.cells.iter().map(|(id, s)| (id, *s))
    }

    /// How many published cells are hidden.
    pub fn hidden_count(&self) -> usize {
        self.cells.values().filter(|s| s.is_some()).count()
    }

    /// Applies the release's hidden cells to `batch`, the answer of `info` for
    /// `source` in the release's year.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        info: &'static QueryInfo,
        source: Option<&str>,
        min_count: u32,
    ) -> Result<RecordBatch> {
        let keys = key_strings(batch, info)?;
        let values = crate::disclosure::count_columns(batch, info)?;
        Ok(mark(batch, info, min_count, |r, column| {
            let id = CellId {
                question: info.name,
                source: source.map(str::to_string),
                row: keys[r].clone(),
                column: info.counts.iter().find(|c| **c == column)?,
            };
            match self.cells.get(&id) {
                Some(Some(partner)) => Some(*partner),
                // Shown by the release, or a cell it does not know (no such source in the
                // year, or data committed since it was built): hidden when small, so
                // nothing unprotected slips through.
                _ => values
                    .get(id.column)
                    .and_then(|v| v[r])
                    .filter(|v| *v > 0 && *v < i64::from(min_count))
                    .map(|_| false),
            }
        })?)
    }
}

/// Checks that `params` ask for something a release can answer: a calendar year, the
/// contract's thresholds, the latest data, a threshold of at least 3.
pub fn check_public(params: &Params) -> Result<i32> {
    if params.min_count < MIN_PUBLIC_THRESHOLD {
        return Err(Error::Params(format!(
            "a public output hides counts below at least {MIN_PUBLIC_THRESHOLD} (SISTAN's minimum); --min-count {} is too low",
            params.min_count
        )));
    }
    let Some(year) = params.year else {
        return Err(Error::Params(
            "public tables by territory, need or family characteristic are released per calendar year: give --year (periods that overlap could be subtracted from each other)".into(),
        ));
    };
    if params.as_of.is_some() {
        return Err(Error::Params(
            "public tables are released on the latest data: --as-of would publish a second version of the same cells".into(),
        ));
    }
    if params.risk_threshold != PUBLIC_RISK_THRESHOLD
        || params.callback_target_hours != PUBLIC_CALLBACK_TARGET_HOURS
    {
        return Err(Error::Params(format!(
            "public tables use the contract's thresholds ({PUBLIC_RISK_THRESHOLD} flags, {PUBLIC_CALLBACK_TARGET_HOURS} h): two thresholds' tables could be subtracted"
        )));
    }
    Ok(year)
}

type CacheKey = (PathBuf, String, i32, u32);

fn cache() -> &'static Mutex<HashMap<CacheKey, Arc<Release>>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Arc<Release>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The data directory's version (every commit moves it): a release is valid for it only.
fn data_version(params: &Params) -> String {
    culla_table::data_version(&culla_table::DataDir::new(&params.data))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The release `params` belong to (after [`check_public`]), built or from the cache.
pub async fn of(params: &Params) -> Result<Arc<Release>> {
    let year = check_public(params)?;
    let key = (
        params.data.clone(),
        data_version(params),
        year,
        params.min_count,
    );
    if let Some(r) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(r.clone());
    }
    // Boxed: building runs the questions through `run_many_and_sql`, which asks for
    // the release of public questions (never for these, which are not public).
    let release = Arc::new(Box::pin(build(params)).await?);
    let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
    c.retain(|k, _| k.0 != key.0 || k.1 == key.1);
    c.insert(key, release.clone());
    Ok(release)
}

/// Families in contact with at least one need of each category, and (`category` =
/// `all`) all families in contact: the contact side of a survey comparison
/// (`culla survey compare`, the report's survey section). Not a named question, but a
/// protected table of every release, so the comparison is protected with the rest.
pub static SURVEY_FAMILIES: QueryInfo = QueryInfo {
    name: "survey_families_by_need",
    title_en: "Families in contact by need category (survey comparison)",
    title_it: "Famiglie in contatto per categoria di bisogno (confronto con l'indagine)",
    description: "Families in contact with at least one need of each category, and all families in contact.",
    key_columns: &["category"],
    sql: "",
    counts: &["families"],
    derived: &[],
    additive_keys: &[],
    row_parts: &[],
    protected: true,
};

/// The row of [`SURVEY_FAMILIES`] holding all families in contact.
pub const SURVEY_ALL: &str = "all";

const SURVEY_SQL: &str = "WITH f AS (SELECT DISTINCT family FROM families), \
     n AS (SELECT DISTINCT family, category FROM needs) \
     SELECT 'all' AS category, CAST(count(*) AS BIGINT) AS families FROM f \
     UNION ALL \
     SELECT n.category, CAST(count(*) AS BIGINT) FROM n JOIN f ON n.family = f.family GROUP BY n.category";

/// The flags that count the families with a need of one category, where the survey
/// table can show the same count.
const FLAG_CATEGORIES: &[(&str, &str)] = &[
    ("psychological_need", "psychological"),
    ("economic_need", "economic"),
];

/// Counts of a row that are at most another of the row: (question, part, whole).
const AT_MOST: &[(&str, &str, &str)] = &[
    ("isolation_risk_by_nil", "high_risk", "families"),
    ("isolation_risk_by_municipio", "high_risk", "families"),
    ("unmet_needs_by_nil", "unmet", "needs"),
    ("unmet_needs_by_municipio", "unmet", "needs"),
    ("isolation_risk_flags", "families", "of_families"),
];

/// The protected questions, in registry order.
pub fn protected() -> Vec<&'static QueryInfo> {
    registry().iter().filter(|q| q.protected).collect()
}

const SOURCES_SQL: &str = "SELECT source FROM families UNION SELECT source FROM needs";

/// Families and needs by (comune, NIL, Municipio), as the NIL and Municipio questions
/// print those keys: the unpublished cells both tables add up.
const FAMILIES_INTERIOR_SQL: &str = "SELECT coalesce(comune, 'unknown') AS comune, \
     coalesce(CAST(nil AS VARCHAR), 'unknown') AS nil, \
     coalesce(CAST(municipio AS VARCHAR), 'unknown') AS municipio, \
     count(*) AS families, count(CASE WHEN high_risk THEN 1 END) AS high_risk \
     FROM families GROUP BY coalesce(comune, 'unknown'), \
     coalesce(CAST(nil AS VARCHAR), 'unknown'), coalesce(CAST(municipio AS VARCHAR), 'unknown')";
const NEEDS_INTERIOR_SQL: &str = "SELECT coalesce(comune, 'unknown') AS comune, \
     coalesce(CAST(nil AS VARCHAR), 'unknown') AS nil, \
     coalesce(CAST(municipio AS VARCHAR), 'unknown') AS municipio, \
     count(*) AS needs, count(CASE WHEN status = 'unmet' THEN 1 END) AS unmet \
     FROM needs GROUP BY coalesce(comune, 'unknown'), \
     coalesce(CAST(nil AS VARCHAR), 'unknown'), coalesce(CAST(municipio AS VARCHAR), 'unknown')";

/// The NIL and Municipio questions that share interior cells, and the interior query
/// (0: families, 1: needs) their counts come from.
const TERRITORY_PAIRS: &[(&str, &str, usize)] = &[
    ("isolation_risk_by_nil", "isolation_risk_by_municipio", 0),
    ("unmet_needs_by_nil", "unmet_needs_by_municipio", 1),
];

/// What a count column counts, where two questions name one thing differently.
fn measure(info: &QueryInfo, column: &'static str) -> &'static str {
    match (info.name, column) {
        ("unmet_needs_by_reason", "needs") => "unmet",
        ("isolation_risk_flags", "of_families") => "families",
        _ => column,
    }
}

/// One scope's answers: the protected questions' batches, the two interior ones and
/// the survey comparison's families.
struct Answers {
    source: Option<String>,
    tables: Vec<(&'static QueryInfo, RecordBatch)>,
    interior: [Vec<RecordBatch>; 2],
    survey: Vec<RecordBatch>,
}

/// Builds the release of `params`' year (thresholds and data as in `params`).
pub async fn build(params: &Params) -> Result<Release> {
    check_public(params)?;
    let infos = protected();
    let names: Vec<&str> = infos.iter().map(|q| q.name).collect();
    let base = Params {
        public: false,
        source: None,
        ..params.clone()
    };
    let extra = [
        FAMILIES_INTERIOR_SQL,
        NEEDS_INTERIOR_SQL,
        SURVEY_SQL,
        SOURCES_SQL,
    ];
    let (tables, mut more) = run_many_and_sql(&names, &base, &extra).await?;
    let sources = strings(&more.pop().unwrap_or_default(), 0)?;
    let mut scopes = vec![answers(None, &infos, tables, more)];
    for s in &sources {
        let p = Params {
            source: Some(s.clone()),
            ..base.clone()
        };
        let (tables, more) = run_many_and_sql(&names, &p, &extra[..3]).await?;
        scopes.push(answers(Some(s.clone()), &infos, tables, more));
    }
    let mut b = Builder::default();
    for a in &scopes {
        b.scope(a)?;
    }
    b.across_sources();
    let started = std::time::Instant::now();
    let p = protect(&b.sys, i64::from(params.min_count));
    tracing::debug!(
        year = params.year,
        cells = b.cells.len(),
        equations = b.sys.equations(),
        hidden = p.hidden.iter().filter(|h| **h).count(),
        ms = started.elapsed().as_millis() as u64,
        "release protected"
    );
    Ok(b.finish(p, sources))
}

fn answers(
    source: Option<String>,
    infos: &[&'static QueryInfo],
    tables: Vec<RecordBatch>,
    mut more: Vec<Vec<RecordBatch>>,
) -> Answers {
    more.truncate(3);
    let survey = more.pop().unwrap_or_default();
    let needs = more.pop().unwrap_or_default();
    let families = more.pop().unwrap_or_default();
    Answers {
        source,
        tables: infos.iter().copied().zip(tables).collect(),
        interior: [families, needs],
        survey,
    }
}

/// The distinct texts of column `i` of every batch (nulls left out).
fn strings(batches: &[RecordBatch], i: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        let col = strings_of(b, i)?;
        out.extend(col.into_iter().filter(|v| !v.is_empty()));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// An unpublished total: (source, measure, the keys held fixed and their values).
type TotalKey = (Option<String>, &'static str, Vec<(String, String)>);

/// All lines' cell and each line's cells of one (question, row, column).
type AcrossSources<'a> =
    BTreeMap<(&'static str, &'a Vec<String>, &'static str), (Option<usize>, Vec<usize>)>;

#[derive(Default)]
struct Builder {
    sys: System,
    /// Published cells.
    cells: BTreeMap<CellId, usize>,
    /// Unpublished totals: (source, measure, fixed keys) → cell.
    totals: HashMap<TotalKey, usize>,
}

impl Builder {
    /// `part ≤ whole`, as `whole − part − slack = 0` with an unpublished slack ≥ 0.
    fn at_most(&mut self, part: usize, whole: usize) {
        let slack = self.sys.value(whole) - self.sys.value(part);
        if slack >= 0 {
            let x = self.sys.cell(slack, Kind::Unpublished);
            self.sys.bound(vec![(whole, 1), (part, -1), (x, -1)]);
        }
    }

    /// The published cell `column` of `row` of `question` for `source`, if any.
    fn published(
        &self,
        question: &'static str,
        source: &Option<String>,
        row: Vec<String>,
        column: &'static str,
    ) -> Option<usize> {
        let id = CellId {
            question,
            source: source.clone(),
            row,
            column,
        };
        self.cells.get(&id).copied()
    }

    /// The unpublished total `key` worth `value`: shared when another table reached the
    /// same total with the same value, else a cell of its own.
    fn total(&mut self, key: TotalKey, value: i64) -> usize {
        match self.totals.get(&key) {
            Some(&t) if self.sys.value(t) == value => t,
            Some(_) => self.sys.cell(value, Kind::Unpublished),
            None => {
                let t = self.sys.cell(value, Kind::Unpublished);
                self.totals.insert(key, t);
                t
            }
        }
    }

    fn scope(&mut self, a: &Answers) -> Result<()> {
        for (info, batch) in &a.tables {
            self.table(info, a.source.as_ref(), batch)?;
        }
        for &(nil_q, mun_q, which) in TERRITORY_PAIRS {
            self.territory(a, nil_q, mun_q, which)?;
            self.nil_map(a, nil_q, mun_q)?;
        }
        for b in &a.survey {
            self.table(&SURVEY_FAMILIES, a.source.as_ref(), b)?;
        }
        // The same count reached as a flag and as a need category.
        for &(flag, category) in FLAG_CATEGORIES {
            let cell = |question, row: &str| {
                self.published(question, &a.source, vec![row.to_string()], "families")
            };
            if let (Some(x), Some(y)) = (
                cell("isolation_risk_flags", flag),
                cell(SURVEY_FAMILIES.name, category),
            ) {
                self.sys.equation(vec![(x, 1), (y, -1)]);
            }
        }
        Ok(())
    }

    /// The cells of one table, its totals along every set of keys, and its row parts.
    fn table(
        &mut self,
        info: &'static QueryInfo,
        source: Option<&String>,
        batch: &RecordBatch,
    ) -> Result<()> {
        let keys = key_strings(batch, info)?;
        let counts = crate::disclosure::count_columns(batch, info)?;
        let mut row_cells: Vec<HashMap<&'static str, usize>> = vec![HashMap::new(); keys.len()];
        for c in info.counts {
            let Some(vals) = counts.get(c) else { continue };
            for (r, v) in vals.iter().enumerate() {
                let Some(v) = v else { continue };
                let id = CellId {
                    question: info.name,
                    source: source.cloned(),
                    row: keys[r].clone(),
                    column: c,
                };
                let cell = self.sys.cell(*v, Kind::Shown);
                self.cells.insert(id, cell);
                row_cells[r].insert(c, cell);
            }
        }
        // Totals along every non-empty set of keys (the flags are not additive: a family
        // carries several); `of_families` is the total of all families.
        let k = info.key_columns.len();
        let additive = !info.additive_keys.is_empty();
        for c in info.counts {
            let m = measure(info, c);
            if info.name == SURVEY_FAMILIES.name {
                for (r, rc) in row_cells.iter().enumerate() {
                    if keys[r].first().map(String::as_str) == Some(SURVEY_ALL)
                        && let Some(&cell) = rc.get(c)
                    {
                        let t = self.total((source.cloned(), m, Vec::new()), self.sys.value(cell));
                        self.sys.equation(vec![(cell, 1), (t, -1)]);
                    }
                }
                continue;
            }
            if info.name == "isolation_risk_flags" {
                if *c == "of_families" {
                    for rc in &row_cells {
                        if let Some(&cell) = rc.get(c) {
                            let t =
                                self.total((source.cloned(), m, Vec::new()), self.sys.value(cell));
                            self.sys.equation(vec![(cell, 1), (t, -1)]);
                        }
                    }
                }
                continue;
            }
            if !additive {
                continue;
            }
            for mask in 1..(1u32 << k) {
                let mut groups: BTreeMap<Vec<(String, String)>, Vec<usize>> = BTreeMap::new();
                for (r, key) in keys.iter().enumerate() {
                    let Some(&cell) = row_cells[r].get(c) else {
                        continue;
                    };
                    let fixed: Vec<(String, String)> = (0..k)
                        .filter(|i| mask & (1 << i) == 0)
                        .map(|i| (info.key_columns[i].to_string(), key[i].clone()))
                        .collect();
                    groups.entry(fixed).or_default().push(cell);
                }
                for (fixed, cells) in groups {
                    let sum: i64 = cells.iter().map(|&x| self.sys.value(x)).sum();
                    let t = self.total((source.cloned(), m, fixed), sum);
                    let mut eq: Vec<(usize, i64)> = cells.iter().map(|&x| (x, 1)).collect();
                    eq.push((t, -1));
                    self.sys.equation(eq);
                }
            }
        }
        // A part is at most its whole, in a row: whole − part = slack ≥ 0.
        for &(q, part, whole) in AT_MOST {
            if q != info.name {
                continue;
            }
            for rc in &row_cells {
                if let (Some(&p), Some(&w)) = (rc.get(part), rc.get(whole)) {
                    self.at_most(p, w);
                }
            }
        }
        if info.name == SURVEY_FAMILIES.name {
            let all = keys
                .iter()
                .position(|k| k.first().map(String::as_str) == Some(SURVEY_ALL))
                .and_then(|r| row_cells[r].get("families").copied());
            if let Some(w) = all {
                for rc in &row_cells {
                    if let Some(&p) = rc.get("families")
                        && p != w
                    {
                        self.at_most(p, w);
                    }
                }
            }
        }
        for (parts, total) in info.row_parts {
            for rc in &row_cells {
                let Some(&t) = rc.get(total) else { continue };
                let mut eq: Vec<(usize, i64)> = parts
                    .iter()
                    .filter_map(|p| rc.get(p).map(|&x| (x, 1)))
                    .collect();
                eq.push((t, -1));
                self.sys.equation(eq);
            }
        }
        Ok(())
    }

    /// What an attacker who knows the NIL map assumes: a Municipio holds at least its
    /// NIL cells (`Municipio − Σ NIL = slack ≥ 0`, the slack being its families or needs
    /// of an unknown or another NIL). Added where it holds on the data.
    fn nil_map(&mut self, a: &Answers, nil_q: &'static str, mun_q: &'static str) -> Result<()> {
        let Some((info, batch)) = a.tables.iter().find(|(i, _)| i.name == nil_q) else {
            return Ok(());
        };
        let Ok(idx) = batch.schema().index_of("municipio") else {
            return Ok(());
        };
        let mun = strings_of(batch, idx)?;
        let keys = key_strings(batch, info)?;
        for column in info.counts {
            let mut of_mun: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
            for (r, key) in keys.iter().enumerate() {
                if mun[r].is_empty() {
                    continue;
                }
                if let Some(cell) = self.published(nil_q, &a.source, key.clone(), column) {
                    of_mun
                        .entry(vec![key[0].clone(), mun[r].clone()])
                        .or_default()
                        .push(cell);
                }
            }
            for (row, nils) in of_mun {
                let Some(m) = self.published(mun_q, &a.source, row, column) else {
                    continue;
                };
                let slack =
                    self.sys.value(m) - nils.iter().map(|&c| self.sys.value(c)).sum::<i64>();
                if slack < 0 {
                    continue;
                }
                let x = self.sys.cell(slack, Kind::Unpublished);
                let mut eq: Vec<(usize, i64)> = nils.iter().map(|&c| (c, -1)).collect();
                eq.push((m, 1));
                eq.push((x, -1));
                self.sys.bound(eq);
            }
        }
        Ok(())
    }

    /// The NIL and Municipio cells of one scope as sums of the interior cells.
    fn territory(
        &mut self,
        a: &Answers,
        nil_q: &'static str,
        mun_q: &'static str,
        which: usize,
    ) -> Result<()> {
        let Some(nil_info) = crate::find(nil_q) else {
            return Ok(());
        };
        for b in &a.interior[which] {
            let (comune, nil, mun) = (strings_of(b, 0)?, strings_of(b, 1)?, strings_of(b, 2)?);
            for (i, column) in nil_info.counts.iter().enumerate() {
                let vals = ints_of(b, 3 + i)?;
                let mut of_nil: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
                let mut of_mun: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
                for r in 0..b.num_rows() {
                    if vals[r] == 0 {
                        continue;
                    }
                    let x = self.sys.cell(vals[r], Kind::Unpublished);
                    of_nil
                        .entry(vec![comune[r].clone(), nil[r].clone()])
                        .or_default()
                        .push(x);
                    of_mun
                        .entry(vec![comune[r].clone(), mun[r].clone()])
                        .or_default()
                        .push(x);
                }
                for (q, groups) in [(nil_q, of_nil), (mun_q, of_mun)] {
                    for (row, xs) in groups {
                        if let Some(cell) = self.published(q, &a.source, row, column) {
                            let mut eq: Vec<(usize, i64)> = xs.iter().map(|&x| (x, -1)).collect();
                            eq.push((cell, 1));
                            self.sys.equation(eq);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// All sources = the sum of each source, cell by cell (a row a source lacks is 0).
    fn across_sources(&mut self) {
        let mut by: AcrossSources = BTreeMap::new();
        for (id, &cell) in &self.cells {
            let e = by.entry((id.question, &id.row, id.column)).or_default();
            match id.source {
                None => e.0 = Some(cell),
                Some(_) => e.1.push(cell),
            }
        }
        let eqs: Vec<Vec<(usize, i64)>> = by
            .into_values()
            .filter_map(|(all, parts)| {
                let all = all?;
                let mut eq: Vec<(usize, i64)> = parts.iter().map(|&x| (x, -1)).collect();
                eq.push((all, 1));
                Some(eq)
            })
            .collect();
        for eq in eqs {
            self.sys.equation(eq);
        }
    }

    fn finish(self, p: Protection, sources: Vec<String>) -> Release {
        let mut cells = HashMap::new();
        let mut by_index: HashMap<usize, &CellId> = HashMap::new();
        for (id, &cell) in &self.cells {
            by_index.insert(cell, id);
            cells.insert(id.clone(), p.hidden[cell].then_some(p.secondary[cell]));
        }
        let mut exposed: Vec<CellId> = p
            .exposed
            .iter()
            .filter_map(|c| by_index.get(c).map(|id| (*id).clone()))
            .collect();
        exposed.sort();
        Release {
            cells,
            exposed,
            equations: self.sys.equations(),
            sources,
        }
    }
}

fn strings_of(b: &RecordBatch, i: usize) -> Result<Vec<String>> {
    let col = cast(b.column(i), &DataType::Utf8)?;
    let col = col
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("cast to Utf8 gives strings");
    Ok((0..col.len())
        .map(|r| {
            if col.is_valid(r) {
                col.value(r).to_string()
            } else {
                String::new()
            }
        })
        .collect())
}

fn ints_of(b: &RecordBatch, i: usize) -> Result<Vec<i64>> {
    let col = cast(b.column(i), &DataType::Int64)?;
    let col = col
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64 gives integers");
    Ok(col.iter().map(|v| v.unwrap_or(0)).collect())
}
