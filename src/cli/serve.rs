//! `dbs-archiver serve`.

use crate::config::Settings;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub async fn run(_args: ServeArgs, settings: Settings) -> anyhow::Result<()> {
    let shutdown = crate::app::shutdown_on_signals();
    crate::app::run(settings, shutdown).await
}
