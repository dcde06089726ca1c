//! The annual report: one self-contained HTML file a municipality can publish.
//!
//! [`gather`] asks the query library for every table the report shows (disclosure
//! control always on) plus the year's headline [`Summary`], and the previous year's
//! when the data holds it; [`html::render`] turns that [`ReportData`] into HTML with
//! inline SVG charts, print CSS for A4 and the accessibility structure of WCAG 2.1 AA
//! (Legge 4/2004). Nothing in the output is fetched from the network.

pub mod html;

use crate::data::{Request, Summary, Table, fetch_many_with_summary, summary};
use crate::i18n::Lang;
use crate::survey;
use crate::{Error, Result};
use std::path::PathBuf;

/// What to put in the report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Data directory.
    pub data: PathBuf,
    /// Year reported on.
    pub year: i32,
    /// Language.
    pub lang: Lang,
    /// Only this service line (all when `None`).
    pub source: Option<String>,
    /// Survey CSV to compare with, if any.
    pub survey: Option<PathBuf>,
    /// Disclosure threshold (counts below it and above 0 are suppressed); at least 1.
    pub min_count: u32,
}

/// The survey part of the report.
#[derive(Debug, Clone)]
pub struct SurveySection {
    /// Families in the survey file.
    pub families: u64,
    /// The comparison rows.
    pub rows: Vec<survey::Row>,
    /// What of them the report may show (protected with the year's release).
    pub publication: survey::Publication,
}

/// Everything the report shows, already disclosure-controlled.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    /// Year reported on.
    pub year: i32,
    /// Disclosure threshold used.
    pub min_count: u32,
    /// Service lines present.
    pub sources: Vec<String>,
    /// Headline figures of the year.
    pub summary: Summary,
    /// Headline figures of the previous year, when the data has it.
    pub previous: Option<Summary>,
    /// `contacts_by_month`.
    pub contacts_by_month: Table,
    /// `service_levels_by_month`.
    pub service_levels_by_month: Table,
    /// `escalations_by_month`.
    pub escalations_by_month: Table,
    /// `contacts_by_weekday_hour`.
    pub contacts_by_weekday_hour: Table,
    /// `needs_by_category`.
    pub needs_by_category: Table,
    /// `unmet_needs_by_reason`.
    pub unmet_needs_by_reason: Table,
    /// `isolation_risk_flags`.
    pub isolation_risk_flags: Table,
    /// `isolation_risk_by_nil`.
    pub isolation_risk_by_nil: Table,
    /// `isolation_risk_by_municipio`.
    pub isolation_risk_by_municipio: Table,
    /// `unmet_needs_by_municipio`.
    pub unmet_needs_by_municipio: Table,
    /// Survey comparison, when a survey was given.
    pub survey: Option<SurveySection>,
}

/// Runs every query the report needs.
pub async fn gather(opts: &ReportOptions) -> Result<ReportData> {
    let mut req = Request::new(&opts.data, Some(opts.year));
    req.source = opts.source.clone();
    req.min_count = opts.min_count.max(1);
    let (tables, summary) = fetch_many_with_summary(&QUERIES, &req).await?;
    if summary.contacts == 0 {
        return Err(Error::NoData(format!(
            "the data directory {} has no contacts in {}",
            opts.data.display(),
            opts.year
        )));
    }
    let mut prev_req = req.clone();
    prev_req.year = Some(opts.year - 1);
    let previous = if has_event_dates_in(&opts.data, opts.year - 1) {
        summary_if_any(&prev_req).await?
    } else {
        None // no event of that year at all: no second fold of the log
    };
    let mut t = tables.into_iter();
    let mut next = || t.next().unwrap_or_default();
    let contacts_by_month = next();
    let mut sources: Vec<String> = contacts_by_month
        .rows
        .iter()
        .map(|r| contacts_by_month.get(r, "source").as_text())
        .filter(|s| !s.is_empty())
        .collect();
    sources.sort();
    sources.dedup();
    let survey = match &opts.survey {
        Some(path) => {
            let s = survey::read_survey(path)?;
            let c = survey::contact_shares(&opts.data, opts.year, opts.source.as_deref()).await?;
            let mut rows = survey::compare(&s, &c);
            let publication = survey::publication(
                &opts.data,
                opts.year,
                opts.source.as_deref(),
                req.min_count,
                &rows,
            )
            .await?;
            survey::adjust_for_publication(&mut rows, &publication);
            Some(SurveySection {
                families: s.families,
                rows,
                publication,
            })
        }
        None => None,
    };
    Ok(ReportData {
        year: opts.year,
        min_count: req.min_count,
        sources,
        summary,
        previous,
        contacts_by_month,
        service_levels_by_month: next(),
        escalations_by_month: next(),
        contacts_by_weekday_hour: next(),
        needs_by_category: next(),
        unmet_needs_by_reason: next(),
        isolation_risk_flags: next(),
        isolation_risk_by_nil: next(),
        isolation_risk_by_municipio: next(),
        unmet_needs_by_municipio: next(),
        survey,
    })
}

/// The named queries the report shows, in [`ReportData`] order.
pub const QUERIES: [&str; 10] = [
    "contacts_by_month",
    "service_levels_by_month",
    "escalations_by_month",
    "contacts_by_weekday_hour",
    "needs_by_category",
    "unmet_needs_by_reason",
    "isolation_risk_flags",
    "isolation_risk_by_nil",
    "isolation_risk_by_municipio",
    "unmet_needs_by_municipio",
];

/// Whether the data directory has an `events` partition dated in `year` (any source):
/// a cheap look at the directory names, before folding the log for that year.
fn has_event_dates_in(data: &std::path::Path, year: i32) -> bool {
    let prefix = format!("event_date={year:04}-");
    let events = culla_schemas::layout::DataDir::new(data).events_dir();
    let Ok(sources) = std::fs::read_dir(events) else {
        return false;
    };
    sources.flatten().any(|s| {
        std::fs::read_dir(s.path()).is_ok_and(|dates| {
            dates
                .flatten()
                .any(|d| d.file_name().to_string_lossy().starts_with(&prefix))
        })
    })
}

async fn summary_if_any(req: &Request) -> Result<Option<Summary>> {
    let s = summary(req).await?;
    Ok((s.contacts > 0).then_some(s))
}

/// Gathers and renders the report: the complete HTML document.
pub async fn generate(opts: &ReportOptions) -> Result<String> {
    let data = gather(opts).await?;
    Ok(html::render(&data, opts.lang))
}
