//! `dbs-archiver schedules add|list|show|pause|resume|delete|preview|run-now`.
//!
//! Thin: parse flags into a [`ScheduleSpec`], call `scheduler::ops`, print.

use super::request::{count, format_type, rfc3339, target_type};
use crate::api::schedules::{ScheduleDetail, ScheduleList};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::dbs::DbsClient;
use crate::model::{FormatType, InstanceKey, TargetType};
use crate::scheduler::fire::FireOutcome;
use crate::scheduler::model::{
    BackupSelection, MisfirePolicy, OverlapPolicy, Schedule, ScheduleOrigin, ScheduleSpec, Targets,
    Template,
};
use crate::scheduler::{ops, BackupFinder};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, clap::Subcommand)]
pub enum SchedulesCommand {
    /// Create a schedule (from flags, or from a JSON/TOML file with --file).
    #[command(after_help = "Examples:
  dbs-archiver schedules add --name nightly --cron '30 2 * * *' --timezone Asia/Shanghai \\
      --instance cn-hangzhou/rm-demo0001 --format parquet
  dbs-archiver schedules add --name prod-oss --cron '0 3 * * *' --prefix rm-prod- \\
      --region cn-hangzhou --target-type oss --bucket archive --bucket-region cn-hangzhou \\
      --path '{instance}/{date}/' --backup pitr_at_fire_time
  dbs-archiver schedules add --file nightly.toml")]
    Add(Box<AddArgs>),
    /// List schedules.
    #[command(after_help = "Examples:
  dbs-archiver schedules list
  dbs-archiver schedules list --json")]
    List {
        /// Print as JSON (the shape of GET /v1/schedules).
        #[arg(long)]
        json: bool,
    },
    /// Show one schedule, its next 10 fire times (in its zone) and recent fires.
    #[command(after_help = "Examples:
  dbs-archiver schedules show nightly
  dbs-archiver schedules show nightly --json")]
    Show {
        /// Schedule name, or numeric id.
        name: String,
        /// Print as JSON (the shape of GET /v1/schedules/{name}).
        #[arg(long)]
        json: bool,
    },
    /// Stop firing (the cursor stays).
    #[command(after_help = "Example:\n  dbs-archiver schedules pause nightly")]
    Pause {
        /// Schedule name, or numeric id.
        name: String,
    },
    /// Fire again from now on (fires during the pause are not made up).
    #[command(after_help = "Example:\n  dbs-archiver schedules resume nightly")]
    Resume {
        /// Schedule name, or numeric id.
        name: String,
    },
    /// Delete a schedule and its fire history (its jobs stay).
    #[command(after_help = "Example:\n  dbs-archiver schedules delete nightly")]
    Delete {
        /// Schedule name, or numeric id.
        name: String,
    },
    /// Dry run of the next fire (or of --at): instances, backup set, paths.
    #[command(after_help = "Examples:
  dbs-archiver schedules preview nightly
  dbs-archiver schedules preview nightly --at 2024-05-02T02:30:00+08:00")]
    Preview {
        /// Schedule name, or numeric id.
        name: String,
        /// Fire time to preview (RFC 3339); default: the next fire.
        #[arg(long, value_parser = rfc3339)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Fire now, outside the cron; the cursor does not move.
    #[command(after_help = "Example:\n  dbs-archiver schedules run-now nightly")]
    RunNow {
        /// Schedule name, or numeric id.
        name: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// A ScheduleSpec as JSON (`.json`) or TOML; the other flags are then ignored.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Unique name: letters, digits, '-', '_', '.'.
    #[arg(long, required_unless_present = "file")]
    name: Option<String>,
    /// 5-field crontab, or 6/7 fields with seconds.
    #[arg(long, required_unless_present = "file")]
    cron: Option<String>,
    /// IANA time zone the cron and {date} are read in.
    #[arg(long, default_value = "UTC")]
    timezone: String,
    /// Target one or more instances as REGION/INSTANCE (repeatable).
    #[arg(long = "instance")]
    instances: Vec<String>,
    /// Target every registered instance whose id starts with this.
    #[arg(long)]
    prefix: Option<String>,
    /// Target every registered instance carrying this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Region filter for --prefix / --tag.
    #[arg(long)]
    region: Option<String>,
    /// CSV, SQL or Parquet; any case.
    #[arg(long, default_value = "CSV", value_parser = format_type)]
    format: FormatType,
    /// OSS or URL; any case.
    #[arg(long, default_value = "URL", value_parser = target_type)]
    target_type: TargetType,
    /// OSS bucket (with --target-type OSS).
    #[arg(long)]
    bucket: Option<String>,
    /// Region of the bucket (with --target-type OSS).
    #[arg(long)]
    bucket_region: Option<String>,
    /// Path template: {instance} {region} {date} {fire_time} {schedule}.
    #[arg(long)]
    path: Option<String>,
    /// latest_full or pitr_at_fire_time.
    #[arg(long, default_value = "latest_full")]
    backup: String,
    /// skip, fire_once or fire_all.
    #[arg(long, default_value = "fire_once")]
    misfire: String,
    /// Bound of fire_all (default scheduler.max_misfire_fires).
    #[arg(long, allow_negative_numbers = true, value_parser = count)]
    misfire_max: Option<u32>,
    /// skip or queue.
    #[arg(long, default_value = "skip")]
    overlap: String,
    /// Spread one fire's jobs over up to this many seconds, 0-86400.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = count)]
    jitter_seconds: u32,
    /// Priority of the jobs, -1000..=1000; higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Attempts before a job fails, 1..=100.
    #[arg(long, default_value_t = 5, allow_negative_numbers = true)]
    max_attempts: i32,
}

impl AddArgs {
    fn spec(&self) -> anyhow::Result<ScheduleSpec> {
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--file {}", path.display()))?;
            let spec = if path.extension().is_some_and(|e| e == "json") {
                let value = serde_json::from_str(&text)
                    .with_context(|| format!("--file {}", path.display()))?;
                if let Some(key) = crate::api::extract::duplicate_key(text.as_bytes()) {
                    anyhow::bail!("--file {}: {key}: key given more than once", path.display());
                }
                ScheduleSpec::from_json(value)?
            } else {
                toml::from_str(&text)
                    .map_err(|e| crate::scheduler::model::serde_error(e.message()))?
            };
            return Ok(spec);
        }
        let kinds = [
            !self.instances.is_empty(),
            self.prefix.is_some(),
            self.tag.is_some(),
        ];
        let targets = match kinds {
            [true, false, false] => {
                let keys = self
                    .instances
                    .iter()
                    .map(|s| {
                        s.split_once('/')
                            .map(|(r, i)| InstanceKey::new(r, i))
                            .with_context(|| format!("--instance {s:?}: must be REGION/INSTANCE"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                if keys.len() == 1 {
                    Targets::instance(&keys[0].region, &keys[0].instance)
                } else {
                    Targets::list(&keys)
                }
            }
            [false, true, false] => {
                Targets::prefix(self.prefix.as_deref().unwrap_or(""), self.region.as_deref())
            }
            [false, false, true] => {
                Targets::tag(self.tag.as_deref().unwrap_or(""), self.region.as_deref())
            }
            _ => anyhow::bail!("targets: give exactly one of --instance, --prefix, --tag"),
        };
        Ok(ScheduleSpec {
            name: self.name.clone().unwrap_or_default(),
            cron: self.cron.clone().unwrap_or_default(),
            timezone: self.timezone.clone(),
            targets,
            template: Template {
                format: self.format,
                target_type: self.target_type,
                bucket: self.bucket.clone(),
                bucket_region: self.bucket_region.clone(),
                path: self.path.clone(),
                sink: None,
            },
            backup: self.backup.parse::<BackupSelection>()?,
            misfire: self.misfire.parse::<MisfirePolicy>()?,
            misfire_max: self.misfire_max,
            overlap: self.overlap.parse::<OverlapPolicy>()?,
            jitter_seconds: self.jitter_seconds,
            priority: self.priority,
            max_attempts: self.max_attempts,
        })
    }
}

/// A DBS client for `latest_full` look-ups when credentials can be found; `None` otherwise
/// (preview then reports the look-up as impossible).
fn backups(settings: &Settings, s: &Schedule) -> Option<Arc<dyn BackupFinder>> {
    if s.spec.backup != BackupSelection::LatestFull {
        return None;
    }
    match DbsClient::from_settings(&settings.dbs) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            eprintln!("note: no DBS client ({e}); latest_full cannot be resolved");
            None
        }
    }
}

fn window(settings: &Settings) -> chrono::Duration {
    chrono::Duration::hours(settings.scheduler.latest_full_window_hours as i64)
}

pub async fn run(args: SchedulesCommand, settings: Settings) -> anyhow::Result<()> {
    let store = crate::app::open_store(&settings).await?;
    let store = store.as_ref();
    let clock = SystemClock;
    match args {
        SchedulesCommand::Add(a) => {
            let s = ops::create(store, a.spec()?, ScheduleOrigin::Cli, clock.now()).await?;
            outln!("created schedule {} (id {})", s.spec.name, s.id);
            print_next(&s)?;
        }
        SchedulesCommand::List { json: true } => {
            let view = ScheduleList {
                schedules: ops::list(store).await?,
            };
            outln!("{}", serde_json::to_string_pretty(&view)?);
        }
        SchedulesCommand::List { json: false } => {
            outln!(
                "{:<6} {:<24} {:<8} {:<7} {:<20} {:<22} NEXT FIRE (UTC)",
                "ID",
                "NAME",
                "STATE",
                "ORIGIN",
                "CRON",
                "TIMEZONE"
            );
            for s in ops::list(store).await? {
                outln!(
                    "{:<6} {:<24} {:<8} {:<7} {:<20} {:<22} {}",
                    s.id,
                    s.spec.name,
                    if s.enabled { "enabled" } else { "paused" },
                    s.origin.as_str(),
                    s.spec.cron,
                    s.spec.timezone,
                    s.next_fire_time
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        SchedulesCommand::Show { name, json: true } => {
            let s = ops::get(store, &name).await?;
            let view = ScheduleDetail::load(store, s, clock.now()).await?;
            outln!("{}", serde_json::to_string_pretty(&view)?);
        }
        SchedulesCommand::Show { name, json: false } => {
            let s = ops::get(store, &name).await?;
            outln!("{}", serde_json::to_string_pretty(&s)?);
            print_next(&s)?;
            let runs = ops::history(store, &s, 20).await?;
            if !runs.is_empty() {
                outln!("recent fires:");
                for r in runs {
                    outln!(
                        "  {}  {:<28} {:<9} {}{}",
                        r.fire_time.to_rfc3339(),
                        r.instance
                            .map(|k| k.to_string())
                            .unwrap_or_else(|| "-".into()),
                        r.outcome,
                        r.reason.map(|x| x.to_string()).unwrap_or_default(),
                        r.job_id.map(|j| format!(" job {j}")).unwrap_or_default()
                    );
                }
            }
        }
        SchedulesCommand::Pause { name } => {
            let s = ops::pause(store, &name, clock.now()).await?;
            outln!("paused {}", s.spec.name);
        }
        SchedulesCommand::Resume { name } => {
            let s = ops::resume(store, &name, clock.now()).await?;
            outln!("resumed {}", s.spec.name);
            print_next(&s)?;
        }
        SchedulesCommand::Delete { name } => {
            let s = ops::delete(store, &name).await?;
            outln!("deleted {} (id {})", s.spec.name, s.id);
        }
        SchedulesCommand::Preview { name, at } => {
            let s = ops::get(store, &name).await?;
            let b = backups(&settings, &s);
            let out = ops::preview(store, b.as_deref(), &clock, &s, at, window(&settings)).await?;
            print_outcome("would enqueue", &out);
        }
        SchedulesCommand::RunNow { name } => {
            let s = ops::get(store, &name).await?;
            let b = backups(&settings, &s);
            let out = ops::run_now(store, b.as_deref(), &clock, &s, window(&settings)).await?;
            print_outcome("enqueued", &out);
        }
    }
    Ok(())
}

fn print_next(s: &Schedule) -> anyhow::Result<()> {
    let from = s.cursor().max(SystemClock.now());
    outln!("next 10 fires ({}):", s.spec.timezone);
    for t in ops::next_fires(&s.spec, from, 10)? {
        outln!("  {}", t.format("%Y-%m-%d %H:%M:%S %Z (%:z)"));
    }
    Ok(())
}

fn print_outcome(verb: &str, out: &FireOutcome) {
    outln!(
        "schedule {} fire {} ({} instance(s))",
        out.schedule,
        out.fire_time.to_rfc3339(),
        out.items.len()
    );
    if out.items.is_empty() {
        outln!("  no instance matches the targets");
    }
    for item in &out.items {
        match (&item.request, item.skipped) {
            (_, Some(reason)) => outln!(
                "  {:<32} skipped: {} ({})",
                item.instance.to_string(),
                reason,
                item.detail.as_deref().unwrap_or("")
            ),
            (Some(r), None) => outln!(
                "  {:<32} {verb}{}: {} {} -> {}{}",
                item.instance.to_string(),
                match (item.job_id, item.created) {
                    (Some(j), true) => format!(" job {j}"),
                    (Some(j), false) => format!(" (already existed: job {j})"),
                    _ => String::new(),
                },
                r.bak_set_type,
                r.bak_set_id
                    .clone()
                    .or(r.download_point_in_time.map(|ms| format!("at {ms} ms")))
                    .unwrap_or_default(),
                r.target_type,
                r.target_path
                    .as_ref()
                    .map(|p| format!(" oss://{}/{}", r.target_bucket.as_deref().unwrap_or(""), p))
                    .unwrap_or_default()
            ),
            (None, None) => outln!("  {:<32} (nothing)", item.instance.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: AddArgs,
    }

    fn spec(extra: &[&str]) -> Result<ScheduleSpec, String> {
        let mut v = vec![
            "t",
            "--name",
            "n",
            "--cron",
            "0 2 * * *",
            "--instance",
            "cn-hangzhou/rm-1",
        ];
        v.extend_from_slice(extra);
        let a = T::try_parse_from(v).map_err(|e| e.to_string())?.a;
        let s = a.spec().map_err(|e| e.to_string())?;
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }

    #[test]
    fn add_uses_the_shared_rules_and_any_case() {
        let s = spec(&["--format", "parquet", "--target-type", "url"]).unwrap();
        assert_eq!(s.template.format, FormatType::Parquet);
        assert_eq!(
            spec(&["--priority", "5000"]).unwrap_err(),
            "priority: must be between -1000 and 1000"
        );
        assert_eq!(
            spec(&["--max-attempts", "-1"]).unwrap_err(),
            "max_attempts: must be between 1 and 100"
        );
        assert_eq!(spec(&["--priority", "-7"]).unwrap().priority, -7);
        let e = spec(&["--jitter-seconds", "-1"]).unwrap_err();
        assert!(e.contains("must not be negative"), "{e}");
        let e = spec(&[
            "--target-type",
            "OSS",
            "--bucket",
            "Archive",
            "--bucket-region",
            "cn-hangzhou",
            "--path",
            "{instance}/",
        ])
        .unwrap_err();
        assert!(
            e.starts_with("template.bucket: must be an OSS bucket name"),
            "{e}"
        );
    }
}
