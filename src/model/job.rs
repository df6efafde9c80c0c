//! A job: one CreateDownload request plus everything learned while following it.

use super::{DownloadRequest, ValidationError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Database id of a job.
pub type JobId = i64;

/// The job state machine (docs/state-machine.md). Only `submitting` and `running` are
/// "active": the database allows one active job per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Submitting,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Submitting,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Submitting => "submitting",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Holds the instance (the cloud's one running-or-failed task rule).
    pub fn is_active(&self) -> bool {
        matches!(self, JobState::Submitting | JobState::Running)
    }

    /// Nothing more will happen to the job unless an operator retries it.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "state",
                    format!(
                        "must be one of queued, submitting, running, succeeded, failed, cancelled, got {s:?}"
                    ),
                )
            })
    }
}

/// Where a job came from (a label on metrics and a column for operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobSource {
    Api,
    Cli,
    Sql,
    Schedule,
}

impl JobSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobSource::Api => "api",
            JobSource::Cli => "cli",
            JobSource::Sql => "sql",
            JobSource::Schedule => "schedule",
        }
    }
}

impl FromStr for JobSource {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "api" => Ok(JobSource::Api),
            "cli" => Ok(JobSource::Cli),
            "sql" => Ok(JobSource::Sql),
            "schedule" => Ok(JobSource::Schedule),
            _ => Err(ValidationError::new(
                "source",
                "must be one of api, cli, sql, schedule",
            )),
        }
    }
}

/// Region + instance id: the unit of the cloud's per-instance rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceKey {
    pub region: String,
    pub instance: String,
}

impl InstanceKey {
    pub fn new(region: impl Into<String>, instance: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            instance: instance.into(),
        }
    }

    /// The rules a download request's region and instance follow, so an instance
    /// registered by hand can be downloaded from.
    pub fn validate(&self) -> Result<(), ValidationError> {
        super::request::identifier("region", &self.region)?;
        super::request::identifier("instance", &self.instance)
    }
}

/// Most tags one instance carries (schedule targets of kind `tag` select by them).
pub const MAX_TAGS: usize = 32;

/// Tags as an operator sets them: each 1-64 characters of letters, digits, '-', '_', '.',
/// ':' or '=' (so `env=prod` works), at most [`MAX_TAGS`]. Returns them without
/// duplicates, in the order given.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, ValidationError> {
    if tags.len() > MAX_TAGS {
        return Err(ValidationError::new(
            "tags",
            format!("must hold at most {MAX_TAGS} tags"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let ok = (1..=64).contains(&tag.len())
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:=".contains(c));
        if !ok {
            return Err(ValidationError::new(
                format!("tags[{i}]"),
                "must be 1-64 characters of letters, digits, '-', '_', '.', ':' or '='",
            ));
        }
        if !out.contains(tag) {
            out.push(tag.clone());
        }
    }
    Ok(out)
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.region, self.instance)
    }
}

/// A DBS download task id, `dt-…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub String);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the cloud last said about the job's remote task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStatus {
    pub task_id: Option<String>,
    /// `DownloadStatus` as normalised lowercase (`queueing` for both spellings).
    pub status: Option<String>,
    /// `Progress`, "tables done/total".
    pub progress: Option<String>,
    pub export_data_size: Option<i64>,
    pub import_data_size: Option<i64>,
    /// `BackupSetTime`, UNIX ms.
    pub backup_set_time: Option<i64>,
    pub download_url: Option<String>,
    pub download_url_expires_at: Option<DateTime<Utc>>,
    /// When the tracker first saw this task running with a Progress, and how far along it
    /// was then (parts per million): the start of the baseline its rate is measured over
    /// (`worker::predict`). Cleared when the task restarts.
    pub progress_anchor_at: Option<DateTime<Utc>>,
    pub progress_anchor_ppm: Option<i32>,
}

/// An error the job last ran into, kept for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

/// A job row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub request: DownloadRequest,
    pub state: JobState,
    pub source: JobSource,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Set when the job may already exist remotely (rescued from `submitting`, or an
    /// ambiguous CreateDownload): the dispatcher reconciles before any resubmission.
    pub needs_reconcile: bool,
    pub remote: RemoteStatus,
    /// When the tracker should next poll this running job.
    pub next_poll_at: Option<DateTime<Utc>>,
    pub polls: i32,
    pub remote_retries: i32,
    pub last_error: Option<JobError>,
    pub schedule_id: Option<i64>,
    pub fire_time: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl Job {
    pub fn instance_key(&self) -> InstanceKey {
        self.request.instance_key()
    }
}

/// One row of the history: every transition appends one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub id: i64,
    pub job_id: JobId,
    pub from_state: Option<JobState>,
    pub to_state: JobState,
    pub at: DateTime<Utc>,
    pub reason: String,
    pub request_id: Option<String>,
}

/// Per-instance bookkeeping: blocked by a failed remote task, last success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub key: InstanceKey,
    pub blocked: bool,
    /// Re-probe no earlier than this; `None` while blocked means "until an operator clears it".
    pub blocked_until: Option<DateTime<Utc>>,
    pub blocked_reason: Option<String>,
    pub blocking_task_id: Option<String>,
    pub blocked_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_checked_and_deduplicated() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalize_tags(&t(&["prod", "env=eu", "prod"])).unwrap(),
            t(&["prod", "env=eu"])
        );
        assert_eq!(normalize_tags(&[]).unwrap(), Vec::<String>::new());
        let e = normalize_tags(&t(&["ok", "has space"])).unwrap_err();
        assert_eq!(e.field, "tags[1]");
        assert_eq!(normalize_tags(&t(&[""])).unwrap_err().field, "tags[0]");
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(normalize_tags(&many).unwrap_err().field, "tags");
        let bad = InstanceKey::new("cn-hangzhou", "rm/../x");
        assert_eq!(bad.validate().unwrap_err().field, "instance");
        assert!(InstanceKey::new("cn-hangzhou", "rm-bp1").validate().is_ok());
    }
}
