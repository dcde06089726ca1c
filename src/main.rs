//! The `culla` command line: a thin layer over the library crates.
//!
//! Each subcommand lives in `src/cmd/<name>.rs` as a clap `Args` struct and a `run`
//! function; this file only dispatches and turns errors into one line on stderr and a
//! non-zero exit (never a panic or a backtrace).

mod cmd;

/// mimalloc: the parse workers and the writer allocate many small strings on different
/// threads; glibc's allocator spent about a third of their time (see BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// culla: analytics and reports for municipal family-support contact lines.
///
/// Events from calls, chats and referrals (Kafka topics `calls`, `chats`, `referrals`,
/// or the embedded local event log) are validated, compacted exactly once into Parquet,
/// and answered with DataFusion: contact volumes, service levels, unmet needs and
/// isolation risk per neighbourhood, with disclosure control on everything published.
///
/// Start with `culla demo`: it simulates a year, ingests it and writes a report.
#[derive(Parser)]
#[command(name = "culla", version, about, long_about, propagate_version = true)]
struct Cli {
    /// Log filter (e.g. `info`, `culla_ingest=debug`); logs go to stderr.
    #[arg(long, global = true, env = "CULLA_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Demo(cmd::demo::Args),
    Simulate(cmd::simulate::Args),
    SimulateSurvey(cmd::simulate::SurveyArgs),
    Validate(cmd::validate::Args),
    Produce(cmd::ingest::ProduceArgs),
    Ingest(cmd::ingest::IngestArgs),
    Deadletters(cmd::ingest::DeadLettersArgs),
    Compact(cmd::ingest::CompactArgs),
    Warm(cmd::ingest::WarmArgs),
    Query(cmd::query::QueryArgs),
    Disclosure(cmd::query::DisclosureArgs),
    Sql(cmd::query::SqlArgs),
    Report(cmd::report::ReportArgs),
    Serve(cmd::report::ServeArgs),
    Survey(cmd::report::SurveyArgs),
}

fn main() -> std::process::ExitCode {
    cmd::private_by_default();
    let cli = Cli::parse();
    // Long runs that free a commit's worth of rows at a time (ingest, compaction, the
    // demo, the server) return freed memory promptly; a question or a report is short,
    // and faster with mimalloc's default delay (docs/bench-queries.md, session 9).
    if !matches!(
        cli.command,
        Command::Query(_)
            | Command::Disclosure(_)
            | Command::Sql(_)
            | Command::Report(_)
            | Command::Survey(_)
            | Command::Warm(_)
    ) {
        culla_ingest::memory::return_freed_memory_promptly();
    }
    init_logs(&cli.log);
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::SimulateSurvey(a) => cmd::simulate::run_survey(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Produce(a) => cmd::ingest::run_produce(a),
        Command::Ingest(a) => cmd::ingest::run_ingest(a),
        Command::Deadletters(a) => cmd::ingest::run_deadletters(a),
        Command::Compact(a) => cmd::ingest::run_compact(a),
        Command::Warm(a) => cmd::ingest::run_warm(a),
        Command::Query(a) => cmd::query::run_query(a),
        Command::Disclosure(a) => cmd::query::run_disclosure(a),
        Command::Sql(a) => cmd::query::run_sql(a),
        Command::Report(a) => cmd::report::run_report(a),
        Command::Serve(a) => cmd::report::run_serve(a),
        Command::Survey(a) => cmd::report::run_survey(a),
    };
    // Projections persisted for the next question are written in the background: let
    // them finish (the answer is already out).
    culla_transform::cache::wait_for_writes();
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes, joined.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !line.contains(&c) {
                    line.push_str(": ");
                    line.push_str(&c);
                }
            }
            eprintln!("culla: {line}");
            std::process::ExitCode::from(2)
        }
    }
}

fn init_logs(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
