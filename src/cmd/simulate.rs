//! `culla simulate` and `culla simulate-survey`: deterministic synthetic data.
//!
//! Both call culla-simulate; the same seed always gives byte-identical output, so a
//! simulated year can stand in for real data in demos, tests and benchmarks.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use culla_simulate::{SimConfig, SourceLine, SurveyConfig};

/// Simulate a year of events of a contact line as NDJSON, in arrival order.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla simulate --year 2024 --seed 7 --out y.ndjson
  culla simulate --source melzo-1000giorni --out melzo.ndjson
  culla simulate --bad-rate 0.01 | culla validate -
  culla simulate --events 1000000 --out big.ndjson

Every rate the simulator uses, and where it comes from, is in docs/SIMULATION.md.
A summary (lines, contacts, malformed lines) is printed on stderr.")]
pub struct Args {
    /// Calendar year to simulate (Europe/Rome); every event's `at` falls inside it.
    #[arg(long, env = "CULLA_SIM_YEAR", default_value_t = 2024)]
    pub year: i32,
    /// Seed: the same seed gives byte-identical output.
    #[arg(long, env = "CULLA_SIM_SEED", default_value_t = 7)]
    pub seed: u64,
    /// Service line: `milano-020202` (02.02.02 keys 4-3) or `melzo-1000giorni` (WhatsApp).
    #[arg(long, env = "CULLA_SIM_SOURCE", default_value = "milano-020202")]
    pub source: String,
    /// Share of malformed lines to mix in (0–1), of 16 kinds covering every reject reason.
    #[arg(long, env = "CULLA_SIM_BAD_RATE", default_value_t = 0.0)]
    pub bad_rate: f64,
    /// Contacts (calls + chats) in the year; default 15,000 for Milan, 600 for Melzo.
    #[arg(long, env = "CULLA_SIM_CONTACTS", conflicts_with = "events")]
    pub contacts: Option<u32>,
    /// Aim for about this many valid events (sets the contacts; output cut at N events).
    #[arg(long, env = "CULLA_SIM_EVENTS")]
    pub events: Option<u64>,
    /// Output file; standard output when absent or `-`.
    #[arg(long, short, env = "CULLA_SIM_OUT")]
    pub out: Option<PathBuf>,
}

/// Runs `culla simulate`.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let source = SourceLine::parse(&a.source).with_context(|| {
        format!(
            "unknown source {:?}; use milano-020202 or melzo-1000giorni",
            a.source
        )
    })?;
    let mut cfg = SimConfig {
        year: a.year,
        seed: a.seed,
        source,
        bad_rate: a.bad_rate,
        contacts: a.contacts,
    };
    cfg.check()?;
    if let Some(n) = a.events {
        cfg.contacts = Some(culla_simulate::contacts_for_events(&cfg, n));
    }
    let mut out = open_out(a.out.as_ref())?;
    let (lines, valid, invalid, contacts) = if let Some(limit) = a.events {
        // Cut at `limit` valid events (malformed lines in between are kept).
        let (mut lines, mut valid, mut invalid, mut contacts) = (0u64, 0u64, 0u64, 0u64);
        for l in culla_simulate::simulate(&cfg) {
            if l.valid {
                if valid == limit {
                    break;
                }
                valid += 1;
                let is_contact = |pat: &[u8]| l.bytes.windows(pat.len()).any(|w| w == pat);
                if is_contact(br#""type":"call.received""#)
                    || is_contact(br#""type":"chat.opened""#)
                {
                    contacts += 1;
                }
            } else {
                invalid += 1;
            }
            out.write_all(&l.bytes).context("cannot write the output")?;
            out.write_all(b"\n").context("cannot write the output")?;
            lines += 1;
        }
        out.flush().context("cannot write the output")?;
        (lines, valid, invalid, contacts)
    } else {
        let s = culla_simulate::write_ndjson(&cfg, &mut out).context("cannot write the output")?;
        (s.lines, s.valid, s.invalid, s.contacts)
    };
    eprintln!(
        "culla: simulated {} {}: {lines} lines, {valid} valid events, {contacts} contacts, {invalid} malformed lines",
        source.as_str(),
        cfg.year
    );
    Ok(ExitCode::SUCCESS)
}

/// Simulate a family survey CSV like Melzo's 2022 survey of 87 families.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla simulate-survey --families 87 --seed 7 --out survey.csv
  culla simulate-survey --nil --out survey-milano.csv

The CSV format (header, yes/no/empty answers) is documented in docs/SURVEY.md;
`culla survey` compares it with the contact line's recorded needs.")]
pub struct SurveyArgs {
    /// Number of respondent families.
    #[arg(long, env = "CULLA_SURVEY_FAMILIES", default_value_t = 87)]
    pub families: u32,
    /// Seed: the same seed gives the same file.
    #[arg(long, env = "CULLA_SURVEY_SEED", default_value_t = 7)]
    pub seed: u64,
    /// Fill the `nil` column with Milan NIL (drawn by births); empty otherwise, as in Melzo.
    #[arg(long, env = "CULLA_SURVEY_NIL")]
    pub nil: bool,
    /// Output file; standard output when absent or `-`.
    #[arg(long, short, env = "CULLA_SURVEY_OUT")]
    pub out: Option<PathBuf>,
}

/// Runs `culla simulate-survey`.
pub fn run_survey(a: SurveyArgs) -> anyhow::Result<ExitCode> {
    if a.families == 0 {
        anyhow::bail!("--families must be at least 1");
    }
    let cfg = SurveyConfig {
        families: a.families,
        seed: a.seed,
        with_nil: a.nil,
    };
    let mut out = open_out(a.out.as_ref())?;
    culla_simulate::write_survey_csv(&cfg, &mut out).context("cannot write the survey")?;
    Ok(ExitCode::SUCCESS)
}

fn open_out(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match path {
        Some(p) if p.as_os_str() != "-" => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        _ => Box::new(BufWriter::with_capacity(1 << 20, io::stdout().lock())),
    })
}
