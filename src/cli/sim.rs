//! `dbs-archiver sim` (STUB: filled in by issue #3).

#[derive(Debug, clap::Args)]
pub struct SimArgs {}

pub async fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("`sim` is not implemented yet")
}
