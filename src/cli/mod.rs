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
    about = "Scheduled, dependable archival of Alibaba Cloud DBS backups",
    after_help = "Examples:
  dbs-archiver serve
  dbs-archiver --config prod.toml check-config
  dbs-archiver enqueue --region cn-hangzhou --instance rm-demo0001 --bak-set-id 1001 --format CSV
  dbs-archiver jobs list --state failed

Settings: config/default.toml, then --config FILE, then DBS_ARCHIVER__SECTION__KEY variables."
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
    #[command(after_help = "Examples:
  dbs-archiver serve
  DBS_ARCHIVER__DATABASE__URL=postgres://postgres@127.0.0.1:5432/postgres dbs-archiver serve")]
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit.
    #[command(after_help = "Example:\n  dbs-archiver --config prod.toml migrate")]
    Migrate,
    /// Check the settings (every rule, every key named) and print them with secrets
    /// redacted; exits non-zero on the first broken rule.
    #[command(after_help = "Examples:
  dbs-archiver check-config
  dbs-archiver --config prod.toml check-config")]
    CheckConfig,
    /// Enqueue one download request.
    #[command(after_help = "Examples:
  dbs-archiver enqueue --region cn-hangzhou --instance rm-demo0001 --bak-set-id 1001 --format CSV
  dbs-archiver enqueue --region cn-hangzhou --instance rm-demo0001 --bak-set-type pitr \\
      --download-point-in-time 2024-05-01T00:00:00Z --format parquet --target-type oss \\
      --target-bucket archive --target-oss-region cn-hangzhou --target-path rm-demo0001/ \\
      --priority -5 --idempotency-key rm-demo0001-2024-05-01")]
    Enqueue(Box<enqueue::EnqueueArgs>),
    /// Inspect and steer jobs.
    #[command(subcommand)]
    #[command(after_help = "Examples:\n  dbs-archiver jobs list\n  dbs-archiver jobs show 42")]
    Jobs(jobs::JobsCommand),
    /// Manage cron schedules.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  dbs-archiver schedules list\n  dbs-archiver schedules preview nightly"
    )]
    Schedules(schedules::SchedulesCommand),
    /// Inspect instances and clear blocks.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  dbs-archiver instances list --blocked\n  dbs-archiver instances unblock cn-hangzhou/rm-demo0001"
    )]
    Instances(instances::InstancesCommand),
    /// Run the built-in DBS simulator.
    #[command(after_help = "Examples:
  dbs-archiver sim
  dbs-archiver sim --listen 127.0.0.1:8089 --time-scale 60")]
    Sim(sim::SimArgs),
    /// Debug: make one signed DBS call and print the reply.
    #[command(subcommand)]
    #[command(
        after_help = "Example:\n  dbs-archiver dbs support --region cn-hangzhou --instance rm-demo0001"
    )]
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command shows examples and every flag says what it is for.
    fn check(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name());
        let examples = cmd
            .get_after_help()
            .is_some_and(|h| h.to_string().contains("dbs-archiver "));
        if !examples {
            missing.push(format!("{path}: no examples in --help"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}: no help text"));
            }
        }
        for sub in cmd.get_subcommands() {
            check(sub, &path, missing);
        }
    }

    #[test]
    fn every_command_has_examples_and_every_flag_help() {
        let mut missing = Vec::new();
        check(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
