//! `dbs-archiver schedules` (STUB: filled in by issue #5).

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum SchedulesCommand {
    /// List schedules.
    List,
}

pub async fn run(_args: SchedulesCommand, _settings: Settings) -> anyhow::Result<()> {
    anyhow::bail!("`schedules` is not implemented yet")
}
