//! `dbs-archiver dbs` (STUB: filled in by issue #3).

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum DbsCommand {
    /// Call CreateDownload.
    CreateDownload,
}

pub async fn run(_args: DbsCommand, _settings: Settings) -> anyhow::Result<()> {
    anyhow::bail!("`dbs` is not implemented yet")
}
