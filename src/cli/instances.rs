//! `dbs-archiver instances list|add|unblock`.
//!
//! An instance is blocked when a failed remote task holds it (the cloud allows one running
//! or failed task per instance): its jobs wait, other instances keep flowing. The worker
//! re-probes blocked instances on a slow timer; `unblock` clears the block by hand (after
//! fixing or retrying the failed task in the DBS console). Talks to the database directly.

use super::jobs::{parse_instance, print_table};
use crate::api::views::InstanceList;
use crate::config::Settings;
use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum InstancesCommand {
    /// List known instances, blocked ones first.
    #[command(after_help = "Examples:
  dbs-archiver instances list
  dbs-archiver instances list --blocked --json")]
    List {
        /// Only blocked instances.
        #[arg(long)]
        blocked: bool,
        /// Print as JSON (the shape of GET /v1/instances).
        #[arg(long)]
        json: bool,
    },
    /// Register an instance, or replace its tags (schedules with a `tag` or `prefix`
    /// target select among known instances). Idempotent.
    #[command(after_help = "Examples:
  dbs-archiver instances add cn-hangzhou/rm-demo0001 --tag prod --tag team=orders
  dbs-archiver instances add rm-demo0002 --region cn-hangzhou")]
    Add {
        /// REGION/INSTANCE, or INSTANCE with --region.
        instance: String,
        /// Region of the instance when it is given without one.
        #[arg(long)]
        region: Option<String>,
        /// A tag (repeat for several); replaces the instance's tags. None clears them.
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Clear the block of an instance so its jobs are claimed again.
    #[command(after_help = "Example:\n  dbs-archiver instances unblock cn-hangzhou/rm-demo0001")]
    Unblock {
        /// REGION/INSTANCE, or INSTANCE with --region.
        instance: String,
        /// Region of the instance when it is given without one.
        #[arg(long)]
        region: Option<String>,
    },
}

pub async fn run(cmd: InstancesCommand, settings: Settings) -> anyhow::Result<()> {
    let store = crate::app::open_store(&settings)
        .await
        .context("opening the database (database.url)")?;
    match cmd {
        InstancesCommand::List { blocked, json } => {
            let mut list = store.instance_list().await?;
            if blocked {
                list.retain(|i| i.blocked);
            }
            list.sort_by(|a, b| b.blocked.cmp(&a.blocked).then(a.key.cmp(&b.key)));
            if json {
                let active = crate::api::instances::active_jobs(&store).await?;
                let view = InstanceList::new(list, &active);
                outln!("{}", serde_json::to_string_pretty(&view)?);
                return Ok(());
            }
            let t = |v: Option<chrono::DateTime<chrono::Utc>>| {
                v.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".into())
            };
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    vec![
                        i.key.to_string(),
                        if i.blocked { "blocked" } else { "ok" }.to_string(),
                        i.blocking_task_id.clone().unwrap_or_else(|| "-".into()),
                        if i.blocked {
                            t(i.blocked_until)
                        } else {
                            "-".into()
                        },
                        t(i.last_success_at),
                        if i.tags.is_empty() {
                            "-".into()
                        } else {
                            i.tags.join(",")
                        },
                        i.blocked_reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "INSTANCE",
                    "STATE",
                    "BLOCKING TASK",
                    "REPROBE AT",
                    "LAST SUCCESS",
                    "TAGS",
                    "REASON",
                ],
                &rows,
            );
            Ok(())
        }
        InstancesCommand::Add {
            instance,
            region,
            tags,
        } => {
            let key = parse_instance(&instance, region.as_deref())?;
            key.validate()?;
            let tags =
                crate::model::normalize_tags(&tags).map_err(|e| anyhow::anyhow!("--tag: {e}"))?;
            store.instance_upsert(&key, Some(&tags)).await?;
            outln!("{key} registered; tags: [{}]", tags.join(", "));
            Ok(())
        }
        InstancesCommand::Unblock { instance, region } => {
            let key = parse_instance(&instance, region.as_deref())?;
            if store.instance_unblock(&key).await? {
                outln!("{key} unblocked; its queued jobs will be claimed again");
                Ok(())
            } else {
                anyhow::bail!("{key} is not blocked (or unknown)")
            }
        }
    }
}
