//! `culla demo`: the whole job on the embedded default, as a newcomer's first run.
//!
//! It simulates a year of Milan's 02.02.02 line (with a few malformed events), puts
//! it on the embedded local event log, ingests it into Parquet exactly once, answers
//! the analysts' questions, simulates an 87-family survey, and writes the annual
//! report in Italian and English. Each step says what it did and which command does
//! the same on real data, so the output teaches what culla is for.

use anyhow::Context;
use culla_ingest::locallog::{LocalLogSink, LocalLogSource};
use culla_ingest::pipeline::{self, IngestOptions};
use culla_schemas::layout::DataDir;
use culla_simulate::{SimConfig, SourceLine, SurveyConfig};
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Run the whole job on a simulated year: events → local log → Parquet → answers → report.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla demo                          # everything under ./demo-out
  culla demo --out /tmp/culla --year 2023 --seed 11

Afterwards:
  open demo-out/report-2024-it.html (or -en) in a browser
  culla serve --data demo-out/data          # the dashboard on http://127.0.0.1:8080
  culla query --list                        # the questions, then e.g.
  culla query isolation_risk_by_municipio --data demo-out/data --year 2024 --public")]
pub struct Args {
    /// Output folder (created; an existing demo there is replaced).
    #[arg(long, env = "CULLA_DEMO_OUT", default_value = "demo-out")]
    out: PathBuf,
    /// Year to simulate.
    #[arg(long, env = "CULLA_YEAR", default_value_t = 2024)]
    year: i32,
    /// Seed of the simulation: the same seed gives the same year.
    #[arg(long, env = "CULLA_SEED", default_value_t = 7)]
    seed: u64,
    /// Share of malformed events mixed in, to show the dead-letter store.
    #[arg(long, env = "CULLA_BAD_RATE", default_value_t = 0.002)]
    bad_rate: f64,
}

/// Runs the demo.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let out = a.out;
    let data = out.join("data");
    if data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot replace {}", data.display()))?;
    }
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let dir = DataDir::new(&data);

    // 1. A synthetic year, as the contact center's systems would emit it.
    let cfg = SimConfig {
        year: a.year,
        seed: a.seed,
        source: SourceLine::Milano,
        bad_rate: a.bad_rate,
        contacts: None,
    };
    cfg.check()?;
    let ndjson = out.join(format!("events-{}.ndjson", a.year));
    let stats = {
        let f = std::fs::File::create(&ndjson)
            .with_context(|| format!("cannot write {}", ndjson.display()))?;
        let mut w = std::io::BufWriter::new(f);
        let s = culla_simulate::write_ndjson(&cfg, &mut w)?;
        w.flush()?;
        s
    };
    step(
        1,
        &format!(
            "simulated {} events of Milan's 02.02.02 line in {} ({} contacts, {} malformed on purpose)",
            stats.lines, a.year, stats.contacts, stats.invalid
        ),
        &format!(
            "culla simulate --year {} --seed {} --out {}",
            a.year,
            a.seed,
            ndjson.display()
        ),
    );

    // 2. Onto the embedded local event log (what Kafka is in production).
    let mut sink = LocalLogSink::open(dir.log_dir(), 3)?;
    let f = std::fs::File::open(&ndjson)?;
    let produced = culla_ingest::produce::produce(&mut BufReader::new(f), &mut sink, "calls")?;
    drop(sink);
    step(
        2,
        &format!(
            "appended them to the local event log in {}: {produced}",
            dir.log_dir().display()
        ),
        &format!(
            "culla produce --from {} --data {}",
            ndjson.display(),
            data.display()
        ),
    );

    // 3. Log → Parquet, exactly once; bad events to the dead-letter store.
    let mut source = LocalLogSource::open(
        dir.log_dir(),
        &[
            "calls".to_string(),
            "chats".to_string(),
            "referrals".to_string(),
        ],
        pipeline::start_offsets(&dir),
    )?;
    let opts = IngestOptions {
        until_idle: true,
        progress: true,
        ..IngestOptions::default()
    };
    let summary = pipeline::run(&mut source, &dir, &opts, &AtomicBool::new(false))?;
    step(
        3,
        &format!("ingested into Parquet under {}: {summary}", data.display()),
        &format!(
            "culla ingest --data {} --until-idle   (and: culla deadletters list --data {})",
            data.display(),
            data.display()
        ),
    );

    // 4. The analysts' questions, with disclosure control as if published.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let params = culla_queries::Params {
        data: data.clone(),
        year: Some(a.year),
        public: true,
        ..culla_queries::Params::default()
    };
    let names: Vec<&str> = culla_queries::registry().iter().map(|q| q.name).collect();
    let answers = rt.block_on(culla_queries::run_many(&names, &params))?;
    let answers_dir = out.join("answers");
    std::fs::create_dir_all(&answers_dir)?;
    for (name, batch) in names.iter().zip(&answers) {
        let path = answers_dir.join(format!("{name}.csv"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        culla_queries::write(batch, culla_queries::Output::Csv, &mut f)?;
        f.flush()?;
        super::published(&path)?;
    }
    step(
        4,
        &format!(
            "answered {} questions (public, counts under 5 suppressed) into {}",
            names.len(),
            answers_dir.display()
        ),
        &format!(
            "culla query isolation_risk_flags --data {} --year {} --public",
            data.display(),
            a.year
        ),
    );
    if let Some(i) = names.iter().position(|n| *n == "isolation_risk_flags") {
        let mut stdout = std::io::stdout().lock();
        culla_queries::write(&answers[i], culla_queries::Output::Table, &mut stdout)?;
        writeln!(stdout)?;
    }

    // 5. A family survey to compare with, like Melzo's 87 families.
    let survey = out.join("survey.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&survey)?);
        culla_simulate::write_survey_csv(
            &SurveyConfig {
                families: 87,
                seed: a.seed,
                with_nil: true,
            },
            &mut w,
        )?;
        w.flush()?;
    }
    step(
        5,
        &format!("simulated an 87-family survey in {}", survey.display()),
        &format!(
            "culla survey compare --survey {} --data {} --year {}",
            survey.display(),
            data.display(),
            a.year
        ),
    );

    // 6. The annual report, in both languages.
    let mut reports = Vec::new();
    for lang in [
        culla_dashboards::i18n::Lang::It,
        culla_dashboards::i18n::Lang::En,
    ] {
        let opts = culla_dashboards::report::ReportOptions {
            data: data.clone(),
            year: a.year,
            lang,
            source: None,
            survey: Some(survey.clone()),
            min_count: 5,
        };
        let html = rt.block_on(culla_dashboards::report::generate(&opts))?;
        let path = out.join(format!("report-{}-{}.html", a.year, lang.tag()));
        std::fs::write(&path, html.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        super::published(&path)?;
        reports.push(path);
    }
    step(
        6,
        &format!(
            "wrote the annual report: {}",
            reports
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        &format!(
            "culla report --data {} --year {} --lang it --out report.html",
            data.display(),
            a.year
        ),
    );

    println!(
        "Done in {:.1} s. Open {} in a browser; for the live dashboard run\n  culla serve --data {}\nand open http://127.0.0.1:8080/.",
        started.elapsed().as_secs_f64(),
        reports[0].display(),
        data.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn step(n: u32, what: &str, command: &str) {
    println!("[{n}/6] {what}\n      same on your data: {command}");
}
