//! The command line: one subcommand per operation (design.md "Interfaces").
//!
//! Each group lives in its own file and exposes `run(args, settings)`; `main.rs` only
//! parses, loads settings, starts telemetry and dispatches here.

/// `println!` that never panics: when stdout is closed (`dbs-archiver jobs list | head`)
/// the command stops quietly with status 0, as a reader that has seen enough expects.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))
    };
}

pub mod dbs;
pub mod enqueue;
pub mod instances;
pub mod jobs;
pub mod request;
pub mod schedules;
pub mod serve;
pub mod sim;

use crate::config::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dbs-archiver",
    version,
    about = "Scheduled, dependable archival of Alibaba Cloud DBS backups"
)]
pub struct Cli {
    /// Settings file (TOML) layered over the embedded defaults.
    #[arg(long, global = true, env = "DBS_ARCHIVER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker, the scheduler and the admin API.
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective settings with secrets redacted.
    CheckConfig,
    /// Enqueue one download request.
    Enqueue(Box<enqueue::EnqueueArgs>),
    /// Inspect and steer jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Manage cron schedules.
    #[command(subcommand)]
    Schedules(schedules::SchedulesCommand),
    /// Inspect instances and clear blocks.
    #[command(subcommand)]
    Instances(instances::InstancesCommand),
    /// Run the built-in DBS simulator.
    Sim(sim::SimArgs),
    /// Debug: make one signed DBS call and print the reply.
    #[command(subcommand)]
    Dbs(dbs::DbsCommand),
}

/// One line to stdout; see `outln!`. Other write errors are ignored (where `println!`
/// would panic): the command's effect has already happened.
pub fn write_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written.and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Settings are needed by every command except `sim` (which has its own flags).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Sim(args) = cli.command {
        return sim::run(args).await;
    }
    let settings = Settings::load(cli.config.as_deref())?;
    crate::telemetry::init(&settings.telemetry);
    let result = dispatch(cli.command, settings).await;
    // Flush the last spans (no-op without OTLP) before the process exits.
    tokio::task::spawn_blocking(crate::telemetry::shutdown)
        .await
        .ok();
    result
}

async fn dispatch(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::run(args, settings).await,
        Command::Migrate => {
            let store =
                crate::store::connect(&settings.database.url, settings.database.max_connections)
                    .await?;
            store.migrate().await?;
            outln!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::CheckConfig => {
            outln!("{}", settings.redacted_toml().trim_end());
            Ok(())
        }
        Command::Enqueue(args) => enqueue::run(*args, settings).await,
        Command::Jobs(cmd) => jobs::run(cmd, settings).await,
        Command::Schedules(cmd) => schedules::run(cmd, settings).await,
        Command::Instances(cmd) => instances::run(cmd, settings).await,
        Command::Dbs(cmd) => dbs::run(cmd, settings).await,
        Command::Sim(_) => unreachable!("handled above"),
    }
}
