//! `dbs-archiver jobs` (STUB: filled in by issue #4).

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// List jobs.
    List,
}

pub async fn run(_args: JobsCommand, _settings: Settings) -> anyhow::Result<()> {
    anyhow::bail!("`jobs` is not implemented yet")
}
