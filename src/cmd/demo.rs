//! Placeholder until this group of commands lands.

use std::process::ExitCode;

/// Not available yet.
#[derive(clap::Args)]
pub struct Args {}

/// Not available yet.
pub fn run(_: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this command is not available in this build")
}
