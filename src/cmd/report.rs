//! `culla report`, `culla serve` and `culla survey compare`: the published outputs.
//!
//! Thin wrappers over `culla-dashboards`: parse flags, run the library on a tokio
//! runtime, write the file or serve, and turn errors into one line.

use anyhow::Context;
use clap::Subcommand;
use culla_dashboards::i18n::Lang;
use std::path::PathBuf;
use std::process::ExitCode;

fn parse_lang(s: &str) -> Result<Lang, String> {
    Lang::parse(s).ok_or_else(|| format!("{s:?} is not a report language (it or en)"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Write the annual report: one self-contained, printable, accessible HTML file.
///
/// Contacts and service levels by month (beside the 85%-in-30-seconds target), contacts
/// by weekday and hour, escalation and time to callback (72-hour and 95% targets), needs
/// and unmet needs with their reasons, isolation risk per NIL as a map of Milan and per
/// Municipio, the change from the previous year when the data has it, the survey
/// comparison with --survey, and a methods page. Counts from 1 to 4 are never shown.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla report --data data --year 2024 --out report-2024.html
  culla report --data data --year 2024 --lang en --out report-2024-en.html
  culla report --data data --year 2024 --survey survey-melzo.csv --source melzo-1000giorni

Open the file in any browser; print it (A4) or save it as PDF from there. It loads
nothing from the network.")]
pub struct ReportArgs {
    /// Data directory (written by `culla ingest`).
    #[arg(long, env = "CULLA_DATA", default_value = "data")]
    data: PathBuf,
    /// Year to report on (Europe/Rome calendar year).
    #[arg(long, env = "CULLA_YEAR")]
    year: i32,
    /// Language of the report: it (Italian) or en (English).
    #[arg(long, env = "CULLA_LANG", default_value = "it", value_parser = parse_lang)]
    lang: Lang,
    /// Output HTML file.
    #[arg(long, env = "CULLA_REPORT_OUT", default_value = "report.html")]
    out: PathBuf,
    /// Survey CSV to compare with the families in contact (format in docs/SURVEY.md).
    #[arg(long, env = "CULLA_SURVEY")]
    survey: Option<PathBuf>,
    /// Only this service line (e.g. milano-020202); all lines when absent.
    #[arg(long, env = "CULLA_SOURCE")]
    source: Option<String>,
    /// Disclosure threshold: counts from 1 to this minus one are shown as "<N".
    #[arg(long, env = "CULLA_MIN_COUNT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    min_count: u32,
}

/// Runs `culla report`.
pub fn run_report(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let opts = culla_dashboards::report::ReportOptions {
        data: a.data,
        year: a.year,
        lang: a.lang,
        source: a.source,
        survey: a.survey,
        min_count: a.min_count,
    };
    let started = std::time::Instant::now();
    let html = runtime()?.block_on(culla_dashboards::report::generate(&opts))?;
    std::fs::write(&a.out, html.as_bytes())
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    super::published(&a.out)?;
    eprintln!(
        "culla: wrote {} ({} KiB) in {:.2} s",
        a.out.display(),
        html.len() / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Serve a live, read-only dashboard of the data directory on this machine.
///
/// The page shows the panels of the dashboard definitions (built in, or --defs DIR),
/// with filters for year, line and Municipio, and updates itself within 5 seconds of
/// ingest committing new data. It answers only the named queries of the registry
/// (`/api/query/<name>?year=&source=&municipio=`, JSON, counts 1–4 suppressed), never
/// arbitrary SQL. It listens on 127.0.0.1 unless --bind says otherwise.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla serve --data data                 then open http://127.0.0.1:8080/
  culla serve --data data --port 9000 --lang en
  curl 'http://127.0.0.1:8080/api/query/contacts_by_month?year=2024&source=milano-020202'

Pages: / (first dashboard), /d/<name>; API: /api/status, /api/dashboards,
/api/query/<name>. Binding another address than 127.0.0.1 publishes the dashboard
to the network: put it behind the municipality's authenticating proxy.")]
pub struct ServeArgs {
    /// Data directory (written by `culla ingest`).
    #[arg(long, env = "CULLA_DATA", default_value = "data")]
    data: PathBuf,
    /// TCP port to listen on (0 picks a free one and prints it).
    #[arg(long, env = "CULLA_PORT", default_value_t = 8080)]
    port: u16,
    /// Address to listen on; the default keeps the dashboard on this machine.
    #[arg(long, env = "CULLA_BIND", default_value = "127.0.0.1")]
    bind: String,
    /// Folder of dashboard definitions (*.json) to serve instead of the built-in ones.
    #[arg(long, env = "CULLA_DEFS")]
    defs: Option<PathBuf>,
    /// Language of the pages: it or en (each page also takes ?lang=).
    #[arg(long, env = "CULLA_LANG", default_value = "it", value_parser = parse_lang)]
    lang: Lang,
    /// Disclosure threshold: counts from 1 to this minus one are suppressed.
    #[arg(long, env = "CULLA_MIN_COUNT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    min_count: u32,
}

/// Runs `culla serve` until interrupted.
pub fn run_serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let dashboards = match &a.defs {
        Some(dir) => culla_dashboards::defs::load_dir(dir)?,
        None => culla_dashboards::defs::builtin()?,
    };
    let server = culla_dashboards::serve::Server::bind(culla_dashboards::serve::ServeOptions {
        data: a.data,
        bind: a.bind,
        port: a.port,
        dashboards,
        lang: a.lang,
        min_count: a.min_count,
    })?;
    match server.addr() {
        Some(addr) => eprintln!("culla: dashboard at http://{addr}/ (Ctrl-C to stop)"),
        None => eprintln!("culla: dashboard started (Ctrl-C to stop)"),
    }
    server.run()?;
    Ok(ExitCode::SUCCESS)
}

/// Compare a family survey with the families in contact with the line.
#[derive(clap::Args)]
pub struct SurveyArgs {
    #[command(subcommand)]
    command: SurveyCommand,
}

#[derive(Subcommand)]
enum SurveyCommand {
    /// Per need category: survey share vs contact share, Wilson 95% intervals, Fisher's
    /// exact test (or Pearson's chi-square without continuity correction when every
    /// expected count is at least 5), Benjamini–Hochberg q-values.
    #[command(after_help = "Examples:
  culla survey compare --survey survey.csv --data data --year 2024
  culla survey compare --survey survey.csv --data data --year 2024 --format csv --out comparison.csv
  culla survey compare --survey survey.csv --data data --year 2024 --source melzo-1000giorni --format json
  culla survey compare --survey survey.csv --data data --year 2024 --public --format csv

A difference is marked significant (*) when its q-value is below 0.05. The survey CSV
format is in docs/SURVEY.md (culla simulate-survey writes one).")]
    Compare(CompareArgs),
}

#[derive(clap::Args)]
struct CompareArgs {
    /// Survey CSV file (header family_id,stage,economic,…; yes/no/empty answers).
    #[arg(long, env = "CULLA_SURVEY")]
    survey: PathBuf,
    /// Data directory (written by `culla ingest`).
    #[arg(long, env = "CULLA_DATA", default_value = "data")]
    data: PathBuf,
    /// Year whose families in contact are compared.
    #[arg(long, env = "CULLA_YEAR")]
    year: i32,
    /// Only families in contact with this service line.
    #[arg(long, env = "CULLA_SOURCE")]
    source: Option<String>,
    /// Output format: table, csv or json.
    #[arg(long, env = "CULLA_FORMAT", default_value = "table", value_parser = ["table", "csv", "json"])]
    format: String,
    /// For publishing: withhold the categories whose family counts disclosure control
    /// hides (protected with every other public table of the year).
    #[arg(long, env = "CULLA_PUBLIC")]
    public: bool,
    /// With --public: the smallest count shown (at least 3).
    #[arg(long, env = "CULLA_MIN_COUNT", default_value_t = 5)]
    min_count: u32,
    /// Write to this file instead of standard output.
    #[arg(long, env = "CULLA_OUT")]
    out: Option<PathBuf>,
}

/// Runs `culla survey …`.
pub fn run_survey(a: SurveyArgs) -> anyhow::Result<ExitCode> {
    let SurveyCommand::Compare(c) = a.command;
    let survey = culla_dashboards::survey::read_survey(&c.survey)?;
    let contacts = runtime()?.block_on(culla_dashboards::survey::contact_shares(
        &c.data,
        c.year,
        c.source.as_deref(),
    ))?;
    if contacts.families == 0 {
        anyhow::bail!(
            "the data directory {} has no families in contact in {}",
            c.data.display(),
            c.year
        );
    }
    let mut rows = culla_dashboards::survey::compare(&survey, &contacts);
    if c.public {
        let p = runtime()?.block_on(culla_dashboards::survey::publication(
            &c.data,
            c.year,
            c.source.as_deref(),
            c.min_count,
            &rows,
        ))?;
        culla_dashboards::survey::adjust_for_publication(&mut rows, &p);
        let contact_families = (!p.contact_n_hidden).then_some(contacts.families);
        let text = match c.format.as_str() {
            "csv" => culla_dashboards::survey::to_public_csv(&rows, &p),
            "json" => {
                let v = serde_json::json!({
                    "year": c.year,
                    "survey_families": survey.families,
                    "contact_families": contact_families,
                    "rows": culla_dashboards::survey::to_public_json(&rows, &p),
                });
                format!("{}\n", serde_json::to_string_pretty(&v)?)
            }
            _ => format!(
                "survey: {} families; families in contact in {}: {}\n{}",
                survey.families,
                c.year,
                contact_families.map_or("withheld".to_string(), |n| n.to_string()),
                culla_dashboards::survey::to_public_text(&rows, &p)
            ),
        };
        return write_text(&c.out, &text);
    }
    let text = match c.format.as_str() {
        "csv" => culla_dashboards::survey::to_csv(&rows),
        "json" => {
            let v = serde_json::json!({
                "year": c.year,
                "survey_families": survey.families,
                "contact_families": contacts.families,
                "rows": rows,
            });
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        _ => format!(
            "survey: {} families; families in contact in {}: {}\n{}",
            survey.families,
            c.year,
            contacts.families,
            culla_dashboards::survey::to_text(&rows)
        ),
    };
    write_text(&c.out, &text)
}

/// Writes `text` to `out`, or standard output.
fn write_text(out: &Option<PathBuf>, text: &str) -> anyhow::Result<ExitCode> {
    match out {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
            super::published(p)?;
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
