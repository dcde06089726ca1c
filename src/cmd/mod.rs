//! One module per group of subcommands; each holds clap `Args` and a `run` function
//! returning the process exit code.

pub mod demo;
pub mod ingest;
pub mod query;
pub mod report;
pub mod simulate;
pub mod validate;
