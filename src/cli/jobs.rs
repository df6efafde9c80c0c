//! `dbs-archiver jobs list|show|cancel|retry|watch`.
//!
//! These commands read and write the database directly (`database.url`), not through the
//! admin API, so they work on the machine of a `serve` process or anywhere that can reach
//! its PostgreSQL. On SQLite they share the file with a running `serve` (reads and the
//! fenced cancel/retry updates are short transactions).

use super::request::rfc3339;
use crate::api::views::{EventView, JobDetail, JobPageView, JobView};
use crate::config::Settings;
use crate::model::{InstanceKey, Job, JobId, JobState};
use crate::store::{DynStore, JobFilter};
use anyhow::Context;
use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    #[command(after_help = "Examples:
  dbs-archiver jobs list
  dbs-archiver jobs list --state failed --instance cn-hangzhou/rm-demo0001
  dbs-archiver jobs list --since 2024-05-01T00:00:00Z --limit 20 --json")]
    List(ListArgs),
    /// Show one job and its history.
    #[command(after_help = "Examples:
  dbs-archiver jobs show 42
  dbs-archiver jobs show 42 --json")]
    Show {
        /// The job id.
        id: JobId,
        /// Print as JSON (the shape of GET /v1/downloads/{id}).
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued job (a job already submitted to the cloud cannot be cancelled:
    /// DBS has no cancel API).
    #[command(after_help = "Examples:
  dbs-archiver jobs cancel 42
  dbs-archiver jobs cancel 42 --reason \"duplicate request\"")]
    Cancel {
        /// The job id.
        id: JobId,
        /// Why, recorded in the job's history.
        #[arg(long, default_value = "cancelled from the CLI")]
        reason: String,
    },
    /// Put a failed or cancelled job back in the queue, attempts reset.
    #[command(after_help = "Examples:
  dbs-archiver jobs retry 42
  dbs-archiver jobs retry 42 --reason \"bucket permissions fixed\"")]
    Retry {
        /// The job id.
        id: JobId,
        /// Why, recorded in the job's history.
        #[arg(long, default_value = "retried from the CLI")]
        reason: String,
    },
    /// Delete a finished job (succeeded, failed or cancelled) and its history, e.g. a row
    /// quarantined with error Store.Quarantined.
    #[command(after_help = "Examples:
  dbs-archiver jobs delete 42")]
    Delete {
        /// The job id.
        id: JobId,
    },
    /// Live progress of running downloads until the queue is idle, then a summary table.
    #[command(after_help = "Examples:
  dbs-archiver jobs watch
  dbs-archiver jobs watch --instance cn-hangzhou/rm-demo0001 --follow")]
    Watch(WatchArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// queued, submitting, running, succeeded, failed or cancelled.
    #[arg(long)]
    pub state: Option<JobState>,
    /// REGION/INSTANCE, or INSTANCE with --region.
    #[arg(long)]
    pub instance: Option<String>,
    /// Region of --instance when it is given without one.
    #[arg(long)]
    pub region: Option<String>,
    /// Only jobs enqueued by this schedule (its numeric id).
    #[arg(long)]
    pub schedule_id: Option<i64>,
    /// Only jobs created after this time (RFC 3339, e.g. 2024-05-01T00:00:00Z).
    #[arg(long, value_parser = rfc3339)]
    pub since: Option<DateTime<Utc>>,
    /// Jobs per page, 1-1000.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue after this job id (the "next" cursor printed by the previous page).
    #[arg(long)]
    pub cursor: Option<JobId>,
    /// Print as JSON (the shape of GET /v1/downloads).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Keep watching when the queue is idle (stop with Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Only this instance (REGION/INSTANCE, or INSTANCE with --region).
    #[arg(long)]
    pub instance: Option<String>,
    /// Region of --instance when it is given without one.
    #[arg(long)]
    pub region: Option<String>,
}

/// `REGION/INSTANCE`, or `INSTANCE` with `--region`.
pub fn parse_instance(instance: &str, region: Option<&str>) -> anyhow::Result<InstanceKey> {
    match (instance.split_once('/'), region) {
        (Some((r, i)), _) if !r.is_empty() && !i.is_empty() => Ok(InstanceKey::new(r, i)),
        (None, Some(r)) => Ok(InstanceKey::new(r, instance)),
        _ => anyhow::bail!("--instance: give REGION/INSTANCE, or INSTANCE with --region"),
    }
}

/// Print rows as aligned columns under a header. Output errors (a closed pipe, as in
/// `jobs list | head`) end the printing quietly instead of panicking.
pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < width.len() {
                width[i] = width[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string()
    };
    outln!("{}", line(header.to_vec()));
    for r in rows {
        outln!("{}", line(r.iter().map(String::as_str).collect()));
    }
}

fn or_dash(s: Option<impl ToString>) -> String {
    s.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn short_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Human bytes (1.5 MiB).
pub fn human_bytes(n: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// `Progress` "done/total" as numbers.
pub fn parse_progress(p: Option<&str>) -> Option<(u64, u64)> {
    let (a, b) = p?.split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Attempts spent of the allowed ones. An attempt is spent only by a failed try; waiting
/// on a busy instance or on throttling spends none (docs/worker.md).
fn attempts(j: &Job) -> String {
    format!("{} of {}", j.attempts, j.max_attempts)
}

fn job_row(j: &Job) -> Vec<String> {
    let r = &j.request;
    let backup = match r.bak_set_type {
        crate::model::BakSetType::Full => format!("full {}", or_dash(r.bak_set_id.as_ref())),
        crate::model::BakSetType::Pitr => format!(
            "pitr {}",
            or_dash(
                r.download_point_in_time
                    .and_then(DateTime::from_timestamp_millis)
                    .map(short_time)
            )
        ),
    };
    vec![
        j.id.to_string(),
        j.state.to_string(),
        j.instance_key().to_string(),
        j.source.as_str().to_string(),
        backup,
        format!("{}→{}", r.format, r.target_type),
        attempts(j),
        or_dash(j.remote.task_id.as_ref()),
        or_dash(j.remote.status.as_ref()),
        or_dash(j.remote.progress.as_ref()),
        short_time(j.updated_at),
    ]
}

/// SOURCE is where the job came from (api, cli, sql, schedule); BACKUP what it downloads;
/// ATTEMPTS the attempts spent of those allowed.
const HEADER: [&str; 11] = [
    "ID", "STATE", "INSTANCE", "SOURCE", "BACKUP", "FORMAT", "ATTEMPTS", "TASK", "REMOTE",
    "PROGRESS", "UPDATED",
];

async fn open(settings: &Settings) -> anyhow::Result<DynStore> {
    crate::app::open_store(settings)
        .await
        .context("opening the database (database.url)")
}

pub async fn run(cmd: JobsCommand, settings: Settings) -> anyhow::Result<()> {
    let store = open(&settings).await?;
    match cmd {
        JobsCommand::List(a) => list(&store, a).await,
        JobsCommand::Show { id, json } => show(&store, id, json).await,
        JobsCommand::Cancel { id, reason } => {
            let job = store
                .job_cancel(id, &reason)
                .await?
                .with_context(|| format!("no job {id}"))?;
            if job.state == JobState::Cancelled {
                outln!("job {id} cancelled");
                Ok(())
            } else {
                anyhow::bail!(
                    "job {id} is {} and cannot be cancelled (only queued jobs can; a submitted \
                     download cannot be cancelled in DBS)",
                    job.state
                )
            }
        }
        JobsCommand::Retry { id, reason } => {
            let job = store
                .job_retry(id, &reason)
                .await?
                .with_context(|| format!("no job {id}"))?;
            if job.state == JobState::Queued {
                outln!("job {id} queued again");
                Ok(())
            } else {
                anyhow::bail!(
                    "job {id} is {} and cannot be retried (only failed or cancelled jobs can)",
                    job.state
                )
            }
        }
        JobsCommand::Delete { id } => match store.job_delete(id).await? {
            None => anyhow::bail!("no job {id}"),
            Some(state) if state.is_terminal() => {
                outln!("job {id} deleted");
                Ok(())
            }
            Some(state) => anyhow::bail!(
                "job {id} is {state} and cannot be deleted (only succeeded, failed or cancelled \
                 jobs can; cancel a queued job first)"
            ),
        },
        JobsCommand::Watch(a) => watch(&store, a).await,
    }
}

async fn list(store: &DynStore, a: ListArgs) -> anyhow::Result<()> {
    let instance = a
        .instance
        .as_deref()
        .map(|i| parse_instance(i, a.region.as_deref()))
        .transpose()?;
    if a.limit == 0 || a.limit > 1000 {
        anyhow::bail!("--limit: must be between 1 and 1000");
    }
    let page = store
        .job_list(&JobFilter {
            state: a.state,
            instance,
            schedule_id: a.schedule_id,
            created_after: a.since,
            created_before: None,
            cursor: a.cursor,
            limit: a.limit,
        })
        .await?;
    if a.json {
        let view = JobPageView {
            next_cursor: page.next_cursor.map(|c| c.to_string()),
            jobs: page.jobs.into_iter().map(JobView::from).collect(),
        };
        outln!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    let rows: Vec<_> = page.jobs.iter().map(job_row).collect();
    print_table(&HEADER, &rows);
    if let Some(c) = page.next_cursor {
        outln!("(more: --cursor {c})");
    }
    Ok(())
}

async fn show(store: &DynStore, id: JobId, json: bool) -> anyhow::Result<()> {
    let job = store
        .job_get(id)
        .await?
        .with_context(|| format!("no job {id}"))?;
    let events = store.event_list(id).await?;
    let archive = store.archive_get_by_job(id).await?;
    if json {
        let view = JobDetail {
            job: JobView::from(job),
            events: events.into_iter().map(EventView::from).collect(),
            archive: archive.map(Into::into),
        };
        outln!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    let r = &job.request;
    let mut kv: Vec<(&str, String)> = vec![
        ("job", job.id.to_string()),
        ("state", job.state.to_string()),
        ("instance", job.instance_key().to_string()),
        ("source", job.source.as_str().to_string()),
        ("bak_set_type", r.bak_set_type.to_string()),
        ("bak_set_id", or_dash(r.bak_set_id.as_ref())),
        ("download_point_in_time", or_dash(r.download_point_in_time)),
        ("format", r.format.to_string()),
        (
            "target",
            match r.target_type {
                crate::model::TargetType::Oss => format!(
                    "OSS {}:{}/{}",
                    or_dash(r.target_oss_region.as_ref()),
                    or_dash(r.target_bucket.as_ref()),
                    or_dash(r.target_path.as_ref())
                ),
                crate::model::TargetType::Url => "URL".into(),
            },
        ),
        ("priority", job.priority.to_string()),
        ("run_at", job.run_at.to_rfc3339()),
        ("attempts", attempts(&job)),
        (
            "lease",
            format!(
                "{} until {}",
                or_dash(job.lease_owner.as_ref()),
                or_dash(job.lease_expires_at.map(|t| t.to_rfc3339()))
            ),
        ),
        ("needs_reconcile", job.needs_reconcile.to_string()),
        ("task", or_dash(job.remote.task_id.as_ref())),
        ("remote_status", or_dash(job.remote.status.as_ref())),
        ("progress", or_dash(job.remote.progress.as_ref())),
        (
            "exported",
            or_dash(job.remote.export_data_size.map(human_bytes)),
        ),
        ("polls", job.polls.to_string()),
        ("remote_retries", job.remote_retries.to_string()),
    ];
    if let Some(u) = &job.remote.download_url {
        kv.push(("download_url", u.clone()));
        kv.push((
            "url_expires_at",
            or_dash(job.remote.download_url_expires_at.map(|t| t.to_rfc3339())),
        ));
    }
    if let Some(e) = &job.last_error {
        kv.push((
            "last_error",
            format!(
                "{}: {} (RequestId {})",
                e.code,
                e.message,
                or_dash(e.request_id.as_ref())
            ),
        ));
    }
    if let Some(a) = &archive {
        kv.extend(crate::archive::model::summary(a));
    }
    kv.push(("created", job.created_at.to_rfc3339()));
    kv.push(("started", or_dash(job.started_at.map(|t| t.to_rfc3339()))));
    kv.push(("finished", or_dash(job.finished_at.map(|t| t.to_rfc3339()))));
    let w = kv.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &kv {
        outln!("{k:<w$}  {v}");
    }
    outln!("");
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                short_time(e.at),
                or_dash(e.from_state),
                e.to_state.to_string(),
                e.reason.clone(),
                or_dash(e.request_id.as_ref()),
            ]
        })
        .collect();
    print_table(&["AT", "FROM", "TO", "WHY", "REQUEST ID"], &rows);
    Ok(())
}

/// Every job in `state` (all pages), optionally for one instance.
async fn all_in(
    store: &DynStore,
    state: JobState,
    instance: &Option<InstanceKey>,
) -> anyhow::Result<Vec<Job>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .job_list(&JobFilter {
                state: Some(state),
                instance: instance.clone(),
                cursor,
                limit: 500,
                ..Default::default()
            })
            .await?;
        out.extend(page.jobs);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
}

async fn watch(store: &DynStore, a: WatchArgs) -> anyhow::Result<()> {
    let instance = a
        .instance
        .as_deref()
        .map(|i| parse_instance(i, a.region.as_deref()))
        .transpose()?;
    let multi = MultiProgress::new();
    let header = multi.add(ProgressBar::new_spinner());
    header.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
    let style = ProgressStyle::with_template(
        "{prefix:>6} {msg:<34} [{bar:30.cyan/blue}] {pos}/{len} tables",
    )
    .expect("template")
    .progress_chars("=> ");
    let mut bars: BTreeMap<JobId, ProgressBar> = BTreeMap::new();
    let mut seen: BTreeMap<JobId, Job> = BTreeMap::new();
    let started = Utc::now();
    let mut tick = tokio::time::interval(Duration::from_millis(a.interval_ms.max(100)));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tick.tick() => {}
        }
        let queued = all_in(store, JobState::Queued, &instance).await?;
        let submitting = all_in(store, JobState::Submitting, &instance).await?;
        let running = all_in(store, JobState::Running, &instance).await?;
        header.set_message(format!(
            "{} queued, {} submitting, {} running",
            queued.len(),
            submitting.len(),
            running.len()
        ));
        header.tick();
        for j in queued.iter().chain(&submitting).chain(&running) {
            seen.insert(j.id, j.clone());
        }
        for j in &running {
            let bar = bars.entry(j.id).or_insert_with(|| {
                let b = multi.add(ProgressBar::new(0));
                b.set_style(style.clone());
                b.set_prefix(format!("#{}", j.id));
                b
            });
            let (done, total) = parse_progress(j.remote.progress.as_deref()).unwrap_or((0, 0));
            bar.set_length(total.max(1));
            bar.set_position(done.min(total.max(1)));
            bar.set_message(format!(
                "{} {} {}",
                j.request.instance,
                or_dash(j.remote.status.as_ref()),
                j.remote
                    .export_data_size
                    .map(human_bytes)
                    .unwrap_or_default()
            ));
        }
        // Bars of jobs that left `running`: finish them with their outcome.
        let still: std::collections::HashSet<JobId> = running.iter().map(|j| j.id).collect();
        let gone: Vec<JobId> = bars
            .keys()
            .copied()
            .filter(|id| !still.contains(id))
            .collect();
        for id in gone {
            let bar = bars.remove(&id).expect("present");
            let state = store.job_get(id).await?.map(|j| {
                let s = j.state;
                seen.insert(j.id, j);
                s
            });
            bar.finish_with_message(or_dash(state));
            multi.remove(&bar);
            if let Some(s) = state {
                let _ = multi.println(format!("job {id}: {s}"));
            }
        }
        let idle = queued.is_empty() && submitting.is_empty() && running.is_empty();
        if idle && !a.follow {
            break;
        }
    }
    header.finish_and_clear();
    for b in bars.values() {
        b.finish_and_clear();
    }
    // Refresh what we saw, then summarise.
    for (id, j) in seen.iter_mut() {
        if let Some(now) = store.job_get(*id).await? {
            *j = now;
        }
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for j in seen.values() {
        *counts.entry(j.state.as_str()).or_default() += 1;
    }
    let rows: Vec<Vec<String>> = seen
        .values()
        .map(|j| {
            let took = match (j.started_at, j.finished_at) {
                (Some(s), Some(f)) => format!("{}s", (f - s).num_seconds()),
                _ => "-".into(),
            };
            vec![
                j.id.to_string(),
                j.instance_key().to_string(),
                j.state.to_string(),
                or_dash(j.remote.task_id.as_ref()),
                or_dash(j.remote.export_data_size.map(human_bytes)),
                took,
                j.last_error
                    .as_ref()
                    .map(|e| e.code.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    outln!("");
    outln!(
        "watched {}s; {} job(s): {}",
        (Utc::now() - started).num_seconds(),
        seen.len(),
        counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !rows.is_empty() {
        print_table(
            &[
                "ID", "INSTANCE", "STATE", "TASK", "EXPORTED", "TOOK", "ERROR",
            ],
            &rows,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_argument_forms() {
        assert_eq!(
            parse_instance("cn-hangzhou/rm-1", None).unwrap(),
            InstanceKey::new("cn-hangzhou", "rm-1")
        );
        assert_eq!(
            parse_instance("rm-1", Some("cn-beijing")).unwrap(),
            InstanceKey::new("cn-beijing", "rm-1")
        );
        assert!(parse_instance("rm-1", None)
            .unwrap_err()
            .to_string()
            .contains("--instance"));
    }

    #[test]
    fn progress_and_bytes() {
        assert_eq!(parse_progress(Some("3/10")), Some((3, 10)));
        assert_eq!(parse_progress(Some("0/0")), Some((0, 0)));
        assert_eq!(parse_progress(Some("x")), None);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
