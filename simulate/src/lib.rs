//! Deterministic synthetic data for culla: a year of contact-line events, and surveys.
//!
//! [`simulate`] turns a [`SimConfig`] (year, seed, service line, share of malformed
//! lines, volume) into NDJSON lines in arrival order: calls and chats with their waits
//! and durations, what operators recorded (profiles, needs, referrals) and the second
//! level's case flow (callbacks, appointments, closings), some arriving late. The same
//! seed always gives byte-identical output: the generator ([`rng`]) and every
//! distribution are written here, and nothing depends on hash-map order. Every rate and
//! where it comes from is in `docs/SIMULATION.md`. [`survey`] writes an 87-family
//! survey CSV like Melzo's 2022 one (`docs/SURVEY.md`).

pub mod bad;
pub mod calendar;
mod model;
pub mod rng;
pub mod survey;

use std::io::{self, Write};

pub use survey::{SurveyConfig, write_survey_csv};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the output failed.
    #[error("cannot write the simulated data: {0}")]
    Io(#[from] io::Error),
    /// A configuration value is out of range.
    #[error("{0}")]
    Config(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The service line to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceLine {
    /// Comune di Milano contact center 02.02.02, keys 4 then 3 (calls, a few web chats).
    #[default]
    Milano,
    /// Comune di Melzo "1.000 giorni" WhatsApp line.
    Melzo,
}

impl SourceLine {
    /// The `source` value its events carry.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceLine::Milano => "milano-020202",
            SourceLine::Melzo => "melzo-1000giorni",
        }
    }

    /// Parses a `source` value (`milano-020202`, `melzo-1000giorni`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "milano-020202" | "milano" => Some(SourceLine::Milano),
            "melzo-1000giorni" | "melzo" => Some(SourceLine::Melzo),
            _ => None,
        }
    }

    /// Contacts per year when no override is given (see docs/SIMULATION.md).
    pub fn default_contacts(self) -> u32 {
        match self {
            SourceLine::Milano => 15_000,
            SourceLine::Melzo => 600,
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Calendar year (Europe/Rome); every event's `at` falls inside it.
    pub year: i32,
    /// Seed: the same seed gives byte-identical output.
    pub seed: u64,
    /// Service line.
    pub source: SourceLine,
    /// Probability, after each valid line, of inserting one malformed line (0–1).
    pub bad_rate: f64,
    /// Contacts (calls received + chats opened) in the year; `None` = the line's default.
    pub contacts: Option<u32>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            year: 2024,
            seed: 7,
            source: SourceLine::Milano,
            bad_rate: 0.0,
            contacts: None,
        }
    }
}

impl SimConfig {
    /// Checks the ranges (year 2015–9998, bad rate 0–1).
    pub fn check(&self) -> Result<()> {
        if !(2015..=9998).contains(&self.year) {
            return Err(Error::Config(format!(
                "year {} is outside 2015–9998 (events before 2015 are invalid by contract)",
                self.year
            )));
        }
        if !(0.0..=1.0).contains(&self.bad_rate) {
            return Err(Error::Config(format!(
                "bad rate {} is outside 0–1",
                self.bad_rate
            )));
        }
        Ok(())
    }
}

/// One output line, without its trailing newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLine {
    /// The bytes of the line (not always UTF-8 when `valid` is false).
    pub bytes: Vec<u8>,
    /// Whether it is a valid v1 event (false for the deliberately malformed lines).
    pub valid: bool,
}

/// What [`write_ndjson`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Lines written.
    pub lines: u64,
    /// Valid events among them.
    pub valid: u64,
    /// Malformed lines among them.
    pub invalid: u64,
    /// Contacts (`call.received` + `chat.opened`).
    pub contacts: u64,
    /// Bytes written, newlines included.
    pub bytes: u64,
}

/// Simulates a year: every line in arrival order (an out-of-range config gives no lines;
/// call [`SimConfig::check`] first to get the reason).
pub fn simulate(cfg: &SimConfig) -> Vec<SimLine> {
    if cfg.check().is_err() {
        return Vec::new();
    }
    let events = model::generate(cfg);
    let mut lines =
        Vec::with_capacity(events.len() + (events.len() as f64 * cfg.bad_rate) as usize);
    let mut bad_rng = rng::Rng::stream(cfg.seed, u64::MAX);
    let mut kind = 0usize;
    for ev in events {
        let insert_bad = cfg.bad_rate > 0.0 && bad_rng.chance(cfg.bad_rate);
        let bad = insert_bad.then(|| {
            // Kinds in turn, so even a short run shows all of them.
            let k = bad::BadKind::ALL[kind % bad::BadKind::ALL.len()];
            kind += 1;
            bad::bad_line(k, &ev.json, &mut bad_rng)
        });
        lines.push(SimLine {
            bytes: ev.json.into_bytes(),
            valid: true,
        });
        if let Some(b) = bad {
            lines.push(SimLine {
                bytes: b,
                valid: false,
            });
        }
    }
    lines
}

/// Simulates a year and writes it as NDJSON (one line per event, `\n`-terminated).
pub fn write_ndjson(cfg: &SimConfig, out: &mut dyn Write) -> io::Result<SimStats> {
    cfg.check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut stats = SimStats::default();
    for line in simulate(cfg) {
        out.write_all(&line.bytes)?;
        out.write_all(b"\n")?;
        stats.lines += 1;
        stats.bytes += line.bytes.len() as u64 + 1;
        if line.valid {
            stats.valid += 1;
            if is_contact(&line.bytes) {
                stats.contacts += 1;
            }
        } else {
            stats.invalid += 1;
        }
    }
    out.flush()?;
    Ok(stats)
}

/// Whether a valid line is a contact (`call.received` or `chat.opened`).
fn is_contact(line: &[u8]) -> bool {
    let find = |pat: &[u8]| line.windows(pat.len()).any(|w| w == pat);
    find(br#""type":"call.received""#) || find(br#""type":"chat.opened""#)
}

/// The number of contacts that gives at least about `events` valid events for this
/// config (measured on a small pilot run of the same line and year, plus 3% margin so
/// that cutting the output at `events` lines is possible).
pub fn contacts_for_events(cfg: &SimConfig, events: u64) -> u32 {
    let pilot_contacts = 2_000u32;
    let pilot = SimConfig {
        contacts: Some(pilot_contacts),
        bad_rate: 0.0,
        ..cfg.clone()
    };
    let n = model::generate(&pilot).len().max(1) as f64;
    let per_contact = n / pilot_contacts as f64;
    ((events as f64 * 1.03 / per_contact).ceil() as u64).clamp(1, u32::MAX as u64) as u32
}
