//! Find-and-adopt: which remote task (if any) is this job's.
//!
//! The cloud has no idempotency token and no TaskId filter, so after anything that leaves
//! "did my CreateDownload happen?" open — a crash while `submitting`, a timeout after the
//! request was sent, `JobAlreadyExist`, `OnlyOneRunningOrFailedTask` — we list the
//! instance's tasks over a recent window and look for one with the same parameters
//! (design.md invariant 4).
//!
//! Matching is on what the task list really reports. A full download matches on backup
//! set id, format, target type and, for OSS, target path. A point-in-time download
//! matches exactly when the cloud echoes `DownloadPointInTime` back as `BackupSetTime`;
//! the docs do not promise that (the field is "the point in time for pitr tasks", and a
//! service may as well report the backup the restore started from), so without an echo a
//! task still counts when the listing filtered by `TaskType=pitr` returns it, its format
//! and target agree, it was created after the job was first claimed (less clock slack),
//! and its `BackupSetTime`, if any, is not later than the requested point. One such task
//! is adopted; two or more are [`Match::Ambiguous`] and the caller blocks the instance
//! instead of guessing.

use crate::dbs::types::{DescribeTasksQuery, DownloadTask, RemoteTaskStatus};
use crate::dbs::{DbsClient, DbsError};
use crate::model::{BakSetType, DownloadRequest, InstanceKey, Job, RemoteStatus};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Page size for DescribeDownloadTask (the API's documented example value).
pub const PAGE_SIZE: u32 = 50;

/// Allowance for clock skew between us and the cloud when narrowing by creation time.
pub const CLOCK_SLACK: Duration = Duration::from_secs(600);

/// What the task list says about one job's remote task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match<'a> {
    /// No listed task can be the job's.
    Missing,
    /// This one is (the newest of identical requests, or the only plausible one).
    Found(&'a DownloadTask),
    /// Several tasks could be the job's and the listing cannot tell them apart.
    Ambiguous(Vec<&'a DownloadTask>),
}

impl<'a> Match<'a> {
    /// The adoptable task, if exactly one was identified.
    pub fn found(&self) -> Option<&'a DownloadTask> {
        match self {
            Match::Found(t) => Some(t),
            _ => None,
        }
    }

    /// For the instance's block reason: which tasks compete, and why we will not guess.
    pub fn ambiguity_reason(&self, job: &Job) -> Option<String> {
        let Match::Ambiguous(tasks) = self else {
            return None;
        };
        let ids: Vec<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
        Some(format!(
            "cannot tell which remote task is job {}'s: {} all match a {} {} download to {} \
             created since the job was claimed, and the cloud does not report the requested \
             point in time; check them, then cancel the job or unblock the instance",
            job.id,
            ids.join(", "),
            job.request.bak_set_type.as_str(),
            job.request.format.as_str(),
            job.request.target_type.as_str(),
        ))
    }
}

/// Same output: format, target type and, for OSS, target path, as far as the cloud reports
/// them (the task list is loosely specified; a missing field does not veto a match).
fn same_output(req: &DownloadRequest, task: &DownloadTask) -> bool {
    if let Some(f) = &task.format {
        if !f.trim().eq_ignore_ascii_case(req.format.as_str()) {
            return false;
        }
    }
    if let Some(t) = &task.target_type {
        if !t.trim().eq_ignore_ascii_case(req.target_type.as_str()) {
            return false;
        }
    }
    if let (Some(want), Some(got)) = (&req.target_path, &task.target_path) {
        let want = want.trim().trim_matches('/');
        let got = got.trim().trim_matches('/');
        if !got.is_empty() && got != want && !got.ends_with(&format!("/{want}")) {
            return false;
        }
    }
    true
}

/// Does this remote task carry exactly the request's parameters (backup set id, or the
/// point in time echoed as `BackupSetTime`)?
pub fn task_matches(req: &DownloadRequest, task: &DownloadTask) -> bool {
    let same_source = match req.bak_set_type {
        BakSetType::Full => match (&req.bak_set_id, &task.bak_set_id) {
            (Some(want), Some(got)) => want.trim() == got.trim(),
            _ => false,
        },
        BakSetType::Pitr => match (req.download_point_in_time, task.backup_set_time) {
            (Some(want), Some(got)) => want == got,
            _ => false,
        },
    };
    same_source && same_output(req, task)
}

/// A point-in-time task without the echo that could still be the job's (module docs).
fn could_be_pitr(req: &DownloadRequest, task: &DownloadTask, since_ms: i64) -> bool {
    let Some(point) = req.download_point_in_time else {
        return false;
    };
    req.bak_set_type == BakSetType::Pitr
        && task.task_type.as_deref() == Some(BakSetType::Pitr.as_str())
        && task.gmt_create.is_some_and(|c| c >= since_ms)
        && task.backup_set_time.is_none_or(|t| t <= point)
        && same_output(req, task)
}

fn newest<'a>(tasks: impl Iterator<Item = &'a DownloadTask>) -> Option<&'a DownloadTask> {
    tasks.max_by_key(|t| (t.gmt_create.unwrap_or(0), t.task_id.clone()))
}

/// Which listed task is the job's: an exact match (the newest, if the same request ran
/// more than once), else for point-in-time jobs the single plausible one (module docs).
pub fn find_match<'a>(job: &Job, tasks: &'a [DownloadTask]) -> Match<'a> {
    if let Some(t) = newest(tasks.iter().filter(|t| task_matches(&job.request, t))) {
        return Match::Found(t);
    }
    let since = job.started_at.unwrap_or(job.created_at) - super::chrono_dur(CLOCK_SLACK);
    let mut plausible: Vec<&DownloadTask> = tasks
        .iter()
        .filter(|t| could_be_pitr(&job.request, t, since.timestamp_millis()))
        .collect();
    match plausible.len() {
        0 => Match::Missing,
        1 => Match::Found(plausible[0]),
        _ => {
            plausible.sort_by(|a, b| a.task_id.cmp(&b.task_id));
            Match::Ambiguous(plausible)
        }
    }
}

/// The task that holds the instance (the cloud's one running-or-failed rule): the newest
/// in-progress task, else the newest failed one.
pub fn find_blocker(tasks: &[DownloadTask]) -> Option<&DownloadTask> {
    let newest = |pred: fn(&RemoteTaskStatus) -> bool| {
        tasks
            .iter()
            .filter(move |t| pred(&t.status))
            .max_by_key(|t| (t.gmt_create.unwrap_or(0), t.task_id.clone()))
    };
    newest(RemoteTaskStatus::is_in_progress).or_else(|| newest(|s| *s == RemoteTaskStatus::Failed))
}

/// DescribeDownloadTask for one instance (and MongoDB cluster), created within `window`
/// before `now`.
pub fn recent_query(
    key: &InstanceKey,
    cluster_name: Option<&str>,
    now: DateTime<Utc>,
    window: Duration,
) -> DescribeTasksQuery {
    let start = now - super::chrono_dur(window + CLOCK_SLACK);
    DescribeTasksQuery {
        region: key.region.clone(),
        instance: key.instance.clone(),
        cluster_name: cluster_name.map(str::to_string),
        start_time_ms: Some(start.timestamp_millis()),
        page_size: PAGE_SIZE,
        page: 1,
        ..Default::default()
    }
}

/// Every task of the instance over the recent window (all pages).
pub async fn list_recent(
    client: &DbsClient,
    key: &InstanceKey,
    cluster_name: Option<&str>,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<Vec<DownloadTask>, DbsError> {
    client
        .list_download_tasks(&recent_query(key, cluster_name, now, window))
        .await
}

/// The instance's recent tasks as the job's reconciliation needs them: one listing, plus,
/// for a point-in-time job the cloud did not echo, a second one filtered by
/// `TaskType=pitr` that tells which tasks are point-in-time ones.
pub async fn list_for_job(
    client: &DbsClient,
    job: &Job,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<Vec<DownloadTask>, DbsError> {
    let key = job.instance_key();
    let cluster = job.request.cluster_name.as_deref();
    let mut tasks = list_recent(client, &key, cluster, now, window).await?;
    let needs_type = job.request.bak_set_type == BakSetType::Pitr
        && !tasks.iter().any(|t| task_matches(&job.request, t));
    if needs_type && !tasks.is_empty() {
        let mut q = recent_query(&key, cluster, now, window);
        q.task_type = Some(BakSetType::Pitr.as_str().to_string());
        let pitr = client.list_download_tasks(&q).await?;
        for t in &mut tasks {
            if pitr.iter().any(|p| p.task_id == t.task_id) {
                t.task_type = Some(BakSetType::Pitr.as_str().to_string());
            }
        }
    }
    Ok(tasks)
}

/// The job's remote columns after observing `task`, keeping what the task list does not
/// carry (download URL and its expiry, the tracker's progress anchor).
pub fn remote_from_task(task: &DownloadTask, prev: &RemoteStatus) -> RemoteStatus {
    RemoteStatus {
        task_id: Some(task.task_id.clone()),
        status: Some(task.status.as_str().to_string()),
        progress: task.progress.clone().or_else(|| prev.progress.clone()),
        export_data_size: task.export_data_size.or(prev.export_data_size),
        import_data_size: task.import_data_size.or(prev.import_data_size),
        backup_set_time: task.backup_set_time.or(prev.backup_set_time),
        download_url: prev.download_url.clone(),
        download_url_expires_at: prev.download_url_expires_at,
        progress_anchor_at: prev.progress_anchor_at,
        progress_anchor_ppm: prev.progress_anchor_ppm,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{FormatType, TargetType};
    use crate::worker::test_support::job;

    pub(crate) fn task(id: &str, bak: &str, status: &str, created: i64) -> DownloadTask {
        DownloadTask {
            task_id: id.into(),
            region_code: Some("cn-hangzhou".into()),
            format: Some("csv".into()),
            db_list: None,
            bak_set_id: Some(bak.into()),
            status: RemoteTaskStatus::parse(status),
            export_data_size: None,
            import_data_size: None,
            backup_set_time: None,
            target_type: Some("URL".into()),
            target_path: None,
            progress: Some("0/0".into()),
            gmt_create: Some(created),
            task_type: None,
        }
    }

    fn req() -> DownloadRequest {
        DownloadRequest::example_full("cn-hangzhou", "rm-1", "b1")
    }

    #[test]
    fn full_matches_on_backup_set_format_and_target() {
        let r = req();
        assert!(task_matches(&r, &task("dt-1", "b1", "running", 1)));
        assert!(!task_matches(&r, &task("dt-1", "b2", "running", 1)));
        let mut t = task("dt-1", "b1", "running", 1);
        t.format = Some("Parquet".into());
        assert!(!task_matches(&r, &t));
        t.format = Some("CSV".into());
        t.target_type = Some("OSS".into());
        assert!(!task_matches(&r, &t));
        t.target_type = None;
        t.format = None;
        assert!(task_matches(&r, &t), "missing fields do not veto");
    }

    #[test]
    fn pitr_matches_on_point_in_time() {
        let mut r = req();
        r.bak_set_type = BakSetType::Pitr;
        r.bak_set_id = None;
        r.download_point_in_time = Some(1_700_000_000_000);
        let mut t = task("dt-1", "", "running", 1);
        assert!(!task_matches(&r, &t));
        t.backup_set_time = Some(1_700_000_000_000);
        assert!(task_matches(&r, &t));
        t.backup_set_time = Some(1_700_000_000_001);
        assert!(!task_matches(&r, &t));
    }

    #[test]
    fn oss_matches_on_target_path() {
        let mut r = req();
        r.format = FormatType::Parquet;
        r.target_type = TargetType::Oss;
        r.target_bucket = Some("bkt".into());
        r.target_oss_region = Some("cn-hangzhou".into());
        r.target_path = Some("archive/rm-1/".into());
        let mut t = task("dt-1", "b1", "running", 1);
        t.format = Some("parquet".into());
        t.target_type = Some("OSS".into());
        t.target_path = Some("/archive/rm-1".into());
        assert!(task_matches(&r, &t));
        t.target_path = Some("bkt/archive/rm-1".into());
        assert!(task_matches(&r, &t));
        t.target_path = Some("archive/rm-2".into());
        assert!(!task_matches(&r, &t));
    }

    #[test]
    fn newest_match_wins() {
        let tasks = vec![
            task("dt-old", "b1", "finished", 100),
            task("dt-other", "b2", "running", 300),
            task("dt-new", "b1", "running", 200),
        ];
        let j = job(0, 5);
        assert_eq!(find_match(&j, &tasks).found().unwrap().task_id, "dt-new");
        assert_eq!(find_match(&j, &tasks[1..2]), Match::Missing);
    }

    const POINT: i64 = 1_700_000_000_000;
    /// Job claimed at 1_700_000_000 s; tasks created a minute later.
    const AFTER_CLAIM: i64 = 1_700_000_060_000;

    fn pitr_job() -> Job {
        let mut j = job(0, 5);
        j.request.bak_set_type = BakSetType::Pitr;
        j.request.bak_set_id = None;
        j.request.download_point_in_time = Some(POINT);
        j.started_at = Some(j.created_at);
        j
    }

    /// A point-in-time task as a `TaskType=pitr` listing returns it.
    fn pitr_task(id: &str, reported: Option<i64>, created: i64) -> DownloadTask {
        let mut t = task(id, "", "running", created);
        t.bak_set_id = None;
        t.backup_set_time = reported;
        t.task_type = Some("pitr".into());
        t
    }

    #[test]
    fn pitr_adopts_the_echo_first() {
        let j = pitr_job();
        let tasks = vec![
            pitr_task("dt-echo", Some(POINT), AFTER_CLAIM),
            pitr_task("dt-other", Some(POINT - 3_600_000), AFTER_CLAIM + 1),
        ];
        assert_eq!(find_match(&j, &tasks).found().unwrap().task_id, "dt-echo");
    }

    #[test]
    fn pitr_without_echo_adopts_the_only_plausible_task() {
        let j = pitr_job();
        // The cloud reports the base backup's time, not the requested point.
        let base = pitr_task("dt-base", Some(POINT - 7_200_000), AFTER_CLAIM);
        assert_eq!(
            find_match(&j, std::slice::from_ref(&base))
                .found()
                .unwrap()
                .task_id,
            "dt-base"
        );
        let mut untyped = base.clone();
        untyped.task_type = None;
        assert_eq!(find_match(&j, &[untyped]), Match::Missing, "type unknown");
        let later = pitr_task("dt-later", Some(POINT + 1), AFTER_CLAIM);
        assert_eq!(find_match(&j, &[later]), Match::Missing, "after the point");
        let before = pitr_task("dt-before", None, POINT - 3_600_000);
        assert_eq!(
            find_match(&j, &[before]),
            Match::Missing,
            "before the claim"
        );
        let mut other_format = base.clone();
        other_format.format = Some("Parquet".into());
        assert_eq!(find_match(&j, &[other_format]), Match::Missing);
    }

    #[test]
    fn pitr_without_echo_refuses_to_guess_between_two() {
        let j = pitr_job();
        let tasks = vec![
            pitr_task("dt-b", None, AFTER_CLAIM + 5),
            pitr_task("dt-a", Some(POINT - 60_000), AFTER_CLAIM),
        ];
        let m = find_match(&j, &tasks);
        let Match::Ambiguous(both) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(both.len(), 2);
        let reason = m.ambiguity_reason(&j).unwrap();
        assert!(reason.contains("dt-a, dt-b"), "{reason}");
        assert!(reason.contains("job 7"), "{reason}");
        assert!(m.found().is_none());
    }

    #[test]
    fn blocker_prefers_in_progress_then_failed() {
        let tasks = vec![
            task("dt-f", "b1", "failed", 300),
            task("dt-done", "b2", "finished", 400),
            task("dt-q", "b3", "queuing", 100),
        ];
        assert_eq!(find_blocker(&tasks).unwrap().task_id, "dt-q");
        assert_eq!(find_blocker(&tasks[..2]).unwrap().task_id, "dt-f");
        assert!(find_blocker(&tasks[1..2]).is_none());
    }

    #[test]
    fn remote_status_keeps_the_url() {
        let prev = RemoteStatus {
            download_url: Some("http://x".into()),
            ..Default::default()
        };
        let r = remote_from_task(&task("dt-1", "b1", "Running", 1), &prev);
        assert_eq!(r.status.as_deref(), Some("running"));
        assert_eq!(r.task_id.as_deref(), Some("dt-1"));
        assert_eq!(r.download_url.as_deref(), Some("http://x"));
    }

    #[test]
    fn query_window_includes_slack() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let q = recent_query(
            &InstanceKey::new("cn-hangzhou", "rm-1"),
            Some("dds-c1"),
            now,
            Duration::from_secs(86_400),
        );
        assert_eq!(q.start_time_ms, Some((1_700_000_000 - 86_400 - 600) * 1000));
        assert_eq!(q.instance, "rm-1");
        assert_eq!(q.cluster_name.as_deref(), Some("dds-c1"));
        assert_eq!(q.page, 1);
    }
}
