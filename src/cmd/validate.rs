//! `culla validate FILE`: check an NDJSON file of events against the v1 contract.
//!
//! Every line goes through `culla_schemas::parse_event`, the same check ingest uses,
//! so a file that validates here is accepted there. Each bad line is reported with its
//! line number, stable reason code and a one-sentence message; a summary follows.
//! Blank lines are skipped (and counted), as NDJSON readers commonly do. A line longer
//! than `--max-line-bytes` is reported as `too_long` without being held in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use culla_schemas::parse_event;

/// Output format of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per bad line, then a summary.
    Text,
    /// One JSON object: counts, counts by reason, and every bad line.
    Json,
}

/// Validate every line of an NDJSON file of events against the v1 event contract.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  culla validate events.ndjson
  culla simulate --bad-rate 0.01 | culla validate -
  culla validate --format json events.ndjson > report.json

Each bad line is printed as `line N: <reason>: <message>`, e.g.
  line 17: no_offset: field \"at\" has no UTC offset
then a summary with counts by reason. Blank lines are skipped and counted.
Exit code: 0 when every line is a valid event, 1 when any line is bad, 2 when the
file cannot be read. Reason codes are listed in docs/EVENTS.md (\"Bad input\").")]
pub struct Args {
    /// NDJSON file to check; `-` reads standard input.
    #[arg(env = "CULLA_VALIDATE_FILE")]
    pub file: PathBuf,
    /// Report format: `text` or `json`.
    #[arg(
        long,
        value_enum,
        env = "CULLA_VALIDATE_FORMAT",
        default_value = "text"
    )]
    pub format: Format,
    /// Judge "more than a day in the future" against this instant (RFC 3339) instead of now.
    #[arg(long, env = "CULLA_NOW")]
    pub now: Option<DateTime<Utc>>,
    /// Lines longer than this many bytes are reported as `too_long` and not parsed.
    #[arg(long, env = "CULLA_MAX_LINE_BYTES", default_value_t = 16 << 20)]
    pub max_line_bytes: usize,
}

/// One bad line.
struct Bad {
    line: u64,
    reason: &'static str,
    field: Option<String>,
    message: String,
}

/// Runs `culla validate`.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let now = a.now.unwrap_or_else(Utc::now);
    let name = a.file.display().to_string();
    let input: Box<dyn Read> = if a.file.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&a.file).with_context(|| format!("cannot open {name}"))?)
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let (mut lines, mut valid, mut blank) = (0u64, 0u64, 0u64);
    let mut by_reason: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut bad: Vec<Bad> = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let too_long = match read_line(&mut reader, &mut buf, a.max_line_bytes)
            .with_context(|| format!("cannot read {name} after line {lines}"))?
        {
            None => break,
            Some(t) => t,
        };
        lines += 1;
        let b = if too_long {
            None
        } else {
            Some(trim_newline(&buf))
        };
        let result = match b {
            None => Err(Bad {
                line: lines,
                reason: "too_long",
                field: None,
                message: format!("line is longer than {} bytes", a.max_line_bytes),
            }),
            Some(b) if b.iter().all(u8::is_ascii_whitespace) => {
                blank += 1;
                continue;
            }
            Some(b) => parse_event(b, now).map(|_| ()).map_err(|e| Bad {
                line: lines,
                reason: e.reason.as_str(),
                field: e.field,
                message: e.message,
            }),
        };
        match result {
            Ok(()) => valid += 1,
            Err(e) => {
                *by_reason.entry(e.reason).or_default() += 1;
                if a.format == Format::Text {
                    writeln!(out, "line {}: {}: {}", e.line, e.reason, e.message)?;
                } else {
                    bad.push(e);
                }
            }
        }
    }
    let invalid: u64 = by_reason.values().sum();
    match a.format {
        Format::Text => {
            writeln!(
                out,
                "{name}: {lines} lines: {valid} valid, {invalid} invalid, {blank} blank (skipped)"
            )?;
            for (reason, n) in &by_reason {
                writeln!(out, "  {reason}: {n}")?;
            }
        }
        Format::Json => {
            let errors: Vec<serde_json::Value> = bad
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "line": e.line, "reason": e.reason, "field": e.field, "message": e.message
                    })
                })
                .collect();
            let report = serde_json::json!({
                "file": name, "lines": lines, "valid": valid, "invalid": invalid,
                "blank": blank, "by_reason": by_reason, "errors": errors,
            });
            writeln!(out, "{report}")?;
        }
    }
    out.flush()?;
    Ok(if invalid > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn trim_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Reads one line into `buf` (newline included); `None` at end of input. A line longer
/// than `max` bytes is consumed but not kept, and `Some(true)` is returned.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<bool>> {
    let mut read_any = false;
    let mut too_long = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(read_any.then_some(too_long));
        }
        read_any = true;
        let (take, done) = match chunk.iter().position(|&c| c == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > max.saturating_add(1) {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        r.consume(take);
        if done {
            return Ok(Some(too_long));
        }
    }
}
