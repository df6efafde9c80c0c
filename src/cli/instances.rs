//! `dbs-archiver instances` (STUB: filled in by issue #4).

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum InstancesCommand {
    /// List instances.
    List,
}

pub async fn run(_args: InstancesCommand, _settings: Settings) -> anyhow::Result<()> {
    anyhow::bail!("`instances` is not implemented yet")
}
