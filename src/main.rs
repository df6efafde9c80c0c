//! The `dbs-archiver` binary: parse the command line and hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dbs_archiver::cli::run(dbs_archiver::cli::Cli::parse()).await
}
