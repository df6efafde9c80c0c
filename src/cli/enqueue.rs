//! `dbs-archiver enqueue` (STUB: filled in by issue #4).

use crate::config::Settings;

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {}

pub async fn run(_args: EnqueueArgs, _settings: Settings) -> anyhow::Result<()> {
    anyhow::bail!("`enqueue` is not implemented yet")
}
