//! Find-and-adopt: which remote task (if any) is this job's.
//!
//! The cloud has no idempotency token and no TaskId filter, so after anything that leaves
//! "did my CreateDownload happen?" open — a crash while `submitting`, a timeout after the
//! request was sent, `JobAlreadyExist`, `OnlyOneRunningOrFailedTask` — we list the
//! instance's tasks over a recent window and look for one with the same parameters
//! (design.md invariant 4). Matching is on what the task list reports: backup set id (full)
//! or point in time (pitr), format, target type and, for OSS, target path.

use crate::dbs::types::{DescribeTasksQuery, DownloadTask, RemoteTaskStatus};
use crate::dbs::{DbsClient, DbsError};
use crate::model::{BakSetType, DownloadRequest, InstanceKey, RemoteStatus};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Page size for DescribeDownloadTask (the API's documented example value).
pub const PAGE_SIZE: u32 = 50;

/// Allowance for clock skew between us and the cloud when narrowing by creation time.
pub const CLOCK_SLACK: Duration = Duration::from_secs(600);

/// Does this remote task carry the same download parameters as the request?
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
    if !same_source {
        return false;
    }
    // Format and target are compared when the cloud reports them (it usually does, but
    // the task list is loosely specified; a missing field does not veto a match).
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

/// The newest task matching the request, if any.
pub fn find_match<'a>(
    req: &DownloadRequest,
    tasks: &'a [DownloadTask],
) -> Option<&'a DownloadTask> {
    tasks
        .iter()
        .filter(|t| task_matches(req, t))
        .max_by_key(|t| (t.gmt_create.unwrap_or(0), t.task_id.clone()))
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

/// DescribeDownloadTask for one instance, created within `window` before `now`.
pub fn recent_query(key: &InstanceKey, now: DateTime<Utc>, window: Duration) -> DescribeTasksQuery {
    let start = now - super::chrono_dur(window + CLOCK_SLACK);
    DescribeTasksQuery {
        region: key.region.clone(),
        instance: key.instance.clone(),
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
    now: DateTime<Utc>,
    window: Duration,
) -> Result<Vec<DownloadTask>, DbsError> {
    client
        .list_download_tasks(&recent_query(key, now, window))
        .await
}

/// The job's remote columns after observing `task`, keeping what the task list does not
/// carry (download URL and its expiry).
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
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{FormatType, TargetType};

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
        assert_eq!(find_match(&req(), &tasks).unwrap().task_id, "dt-new");
        assert!(find_match(&req(), &tasks[1..2]).is_none());
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
            now,
            Duration::from_secs(86_400),
        );
        assert_eq!(q.start_time_ms, Some((1_700_000_000 - 86_400 - 600) * 1000));
        assert_eq!(q.instance, "rm-1");
        assert_eq!(q.page, 1);
    }
}
