//! `dbs-archiver schedules add|list|show|pause|resume|delete|preview|run-now`.
//!
//! Thin: parse flags into a [`ScheduleSpec`], call `scheduler::ops`, print.

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
    Add(Box<AddArgs>),
    /// List schedules.
    List,
    /// Show one schedule, its next 10 fire times (in its zone) and recent fires.
    Show { name: String },
    /// Stop firing (the cursor stays).
    Pause { name: String },
    /// Fire again from now on (fires during the pause are not made up).
    Resume { name: String },
    /// Delete a schedule and its fire history (its jobs stay).
    Delete { name: String },
    /// Dry run of the next fire (or of --at): instances, backup set, paths.
    Preview {
        name: String,
        /// Fire time to preview (RFC 3339); default: the next fire.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Fire now, outside the cron; the cursor does not move.
    RunNow { name: String },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// A ScheduleSpec as JSON (`.json`) or TOML; the other flags are then ignored.
    #[arg(long)]
    file: Option<PathBuf>,
    #[arg(long, required_unless_present = "file")]
    name: Option<String>,
    /// 5-field crontab, or 6/7 fields with seconds.
    #[arg(long, required_unless_present = "file")]
    cron: Option<String>,
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
    /// CSV, SQL or Parquet.
    #[arg(long, default_value = "CSV")]
    format: String,
    /// OSS or URL.
    #[arg(long, default_value = "URL")]
    target_type: String,
    #[arg(long)]
    bucket: Option<String>,
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
    #[arg(long)]
    misfire_max: Option<u32>,
    /// skip or queue.
    #[arg(long, default_value = "skip")]
    overlap: String,
    #[arg(long, default_value_t = 0)]
    jitter_seconds: u32,
    #[arg(long, default_value_t = 0)]
    priority: i32,
    #[arg(long, default_value_t = 5)]
    max_attempts: i32,
}

impl AddArgs {
    fn spec(&self) -> anyhow::Result<ScheduleSpec> {
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--file {}", path.display()))?;
            let spec = if path.extension().is_some_and(|e| e == "json") {
                ScheduleSpec::from_json(serde_json::from_str(&text)?)?
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
                format: self
                    .format
                    .parse::<FormatType>()
                    .map_err(|e| anyhow::anyhow!("--{e}"))?,
                target_type: self
                    .target_type
                    .parse::<TargetType>()
                    .map_err(|e| anyhow::anyhow!("--{e}"))?,
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
            println!("created schedule {} (id {})", s.spec.name, s.id);
            print_next(&s)?;
        }
        SchedulesCommand::List => {
            println!(
                "{:<6} {:<24} {:<8} {:<7} {:<20} {:<22} NEXT FIRE (UTC)",
                "ID", "NAME", "STATE", "ORIGIN", "CRON", "TIMEZONE"
            );
            for s in ops::list(store).await? {
                println!(
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
        SchedulesCommand::Show { name } => {
            let s = ops::get(store, &name).await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
            print_next(&s)?;
            let runs = ops::history(store, &s, 20).await?;
            if !runs.is_empty() {
                println!("recent fires:");
                for r in runs {
                    println!(
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
            println!("paused {}", s.spec.name);
        }
        SchedulesCommand::Resume { name } => {
            let s = ops::resume(store, &name, clock.now()).await?;
            println!("resumed {}", s.spec.name);
            print_next(&s)?;
        }
        SchedulesCommand::Delete { name } => {
            let s = ops::delete(store, &name).await?;
            println!("deleted {} (id {})", s.spec.name, s.id);
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
    println!("next 10 fires ({}):", s.spec.timezone);
    for t in ops::next_fires(&s.spec, from, 10)? {
        println!("  {}", t.format("%Y-%m-%d %H:%M:%S %Z (%:z)"));
    }
    Ok(())
}

fn print_outcome(verb: &str, out: &FireOutcome) {
    println!(
        "schedule {} fire {} ({} instance(s))",
        out.schedule,
        out.fire_time.to_rfc3339(),
        out.items.len()
    );
    if out.items.is_empty() {
        println!("  no instance matches the targets");
    }
    for item in &out.items {
        match (&item.request, item.skipped) {
            (_, Some(reason)) => println!(
                "  {:<32} skipped: {} ({})",
                item.instance.to_string(),
                reason,
                item.detail.as_deref().unwrap_or("")
            ),
            (Some(r), None) => println!(
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
            (None, None) => println!("  {:<32} (nothing)", item.instance.to_string()),
        }
    }
}
