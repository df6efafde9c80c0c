//! Read models for the operator console (`crate::console`): the filtered, sorted,
//! keyset-paginated job list, throughput over time and the instances that keep failing.
//!
//! A separate trait so the console can grow without touching the queue's code; every
//! [`super::Store`] also implements it. The SQL text is written once here, generic over the
//! backend; only how a time is bound and read differs (UNIX ms on SQLite, `timestamptz`
//! on PostgreSQL), which each backend's `console.rs` supplies.

use super::StoreError;
use crate::model::{InstanceKey, Job, JobId, JobSource, JobState};
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{Database, QueryBuilder};

/// Most jobs one console page shows.
pub const MAX_CONSOLE_PAGE: u32 = 200;

/// Column a job list is ordered by; every order ends with `id` so the keyset is unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobSort {
    /// Creation order (ids grow over time).
    #[default]
    Id,
    /// Instance id, then id. Served by `jobs_console_instance` (migration 0008).
    Instance,
    /// Finish time, then id; lists only finished jobs. Served by `jobs_console_finished`.
    Finished,
}

impl JobSort {
    pub const ALL: [JobSort; 3] = [JobSort::Id, JobSort::Instance, JobSort::Finished];

    pub fn as_str(&self) -> &'static str {
        match self {
            JobSort::Id => "id",
            JobSort::Instance => "instance",
            JobSort::Finished => "finished",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where the next page starts: the sort value and id of the last row shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobCursor {
    Id(JobId),
    Instance(String, JobId),
    Finished(DateTime<Utc>, JobId),
}

impl JobCursor {
    /// The cursor as it travels in a URL (`after=`): `<id>`, `<instance>~<id>` or
    /// `<finished ms>~<id>`. Opaque to the operator, stable across releases.
    pub fn encode(&self) -> String {
        match self {
            JobCursor::Id(id) => id.to_string(),
            JobCursor::Instance(i, id) => format!("{i}~{id}"),
            JobCursor::Finished(t, id) => format!("{}~{id}", t.timestamp_millis()),
        }
    }

    /// Parse a cursor for `sort`; `None` when it does not fit (the caller names the field).
    pub fn decode(sort: JobSort, s: &str) -> Option<Self> {
        let id_of = |s: &str| s.parse::<JobId>().ok().filter(|id| *id > 0);
        match sort {
            JobSort::Id => id_of(s).map(JobCursor::Id),
            JobSort::Instance => {
                let (i, id) = s.rsplit_once('~')?;
                Some(JobCursor::Instance(i.to_string(), id_of(id)?))
            }
            JobSort::Finished => {
                let (t, id) = s.rsplit_once('~')?;
                let t = Utc.timestamp_millis_opt(t.parse().ok()?).single()?;
                Some(JobCursor::Finished(t, id_of(id)?))
            }
        }
    }

    fn of(sort: JobSort, job: &Job) -> Self {
        match sort {
            JobSort::Id => JobCursor::Id(job.id),
            JobSort::Instance => JobCursor::Instance(job.request.instance.clone(), job.id),
            JobSort::Finished => {
                JobCursor::Finished(job.finished_at.unwrap_or(job.created_at), job.id)
            }
        }
    }
}

/// The console's job list query: every filter of `/ui/jobs`, one sort, one cursor.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub state: Option<JobState>,
    pub region: Option<String>,
    pub instance: Option<String>,
    pub schedule_id: Option<i64>,
    pub source: Option<JobSource>,
    /// `last_error_code`, exactly.
    pub error_code: Option<String>,
    /// Instance id prefix, or a remote task id exactly.
    pub search: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub finished_from: Option<DateTime<Utc>>,
    pub finished_to: Option<DateTime<Utc>>,
    pub sort: JobSort,
    /// Ascending instead of the default descending order.
    pub ascending: bool,
    pub after: Option<JobCursor>,
    /// 1..=[`MAX_CONSOLE_PAGE`]; 0 means 50.
    pub limit: u32,
}

impl JobQuery {
    pub fn page_size(&self) -> u32 {
        match self.limit {
            0 => 50,
            n => n.min(MAX_CONSOLE_PAGE),
        }
    }
}

/// One page of the console's job list.
#[derive(Debug, Clone)]
pub struct JobQueryPage {
    pub jobs: Vec<Job>,
    /// The next page's `after`, when there is one.
    pub next: Option<JobCursor>,
}

/// Jobs that finished in one time bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThroughputBucket {
    pub start: DateTime<Utc>,
    pub succeeded: i64,
    pub failed: i64,
    /// Sum of `export_data_size` of the succeeded jobs.
    pub bytes: i64,
}

/// An instance with failed jobs in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingInstance {
    pub key: InstanceKey,
    pub failures: i64,
    pub last_failed_at: DateTime<Utc>,
}

/// Console read models; implemented by every store.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// One page of jobs matching `q`, in `q.sort` order, starting after `q.after`.
    async fn console_jobs(&self, q: &JobQuery) -> Result<JobQueryPage, StoreError>;

    /// Finished jobs per `bucket` from `since` on (oldest first, empty buckets included).
    async fn console_throughput(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
        buckets: u32,
    ) -> Result<Vec<ThroughputBucket>, StoreError>;

    /// Instances with the most failed jobs since `since`.
    async fn console_failing_instances(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<FailingInstance>, StoreError>;
}

/// Build the job list query (both dialects agree on everything but how a time binds).
pub(crate) fn push_job_query<'a, DB, T>(
    q: &mut QueryBuilder<'a, DB>,
    f: &JobQuery,
    time: fn(DateTime<Utc>) -> T,
) where
    DB: Database,
    T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    String: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push(format!(
        "SELECT {} FROM jobs WHERE 1 = 1",
        super::sql::JOB_COLUMNS
    ));
    if let Some(s) = f.state {
        q.push(" AND state = ").push_bind(s.as_str().to_string());
    }
    if let Some(r) = &f.region {
        q.push(" AND region = ").push_bind(r.clone());
    }
    if let Some(i) = &f.instance {
        q.push(" AND instance = ").push_bind(i.clone());
    }
    if let Some(s) = f.schedule_id {
        q.push(" AND schedule_id = ").push_bind(s);
    }
    if let Some(s) = f.source {
        q.push(" AND source = ").push_bind(s.as_str().to_string());
    }
    if let Some(c) = &f.error_code {
        q.push(" AND last_error_code = ").push_bind(c.clone());
    }
    if let Some(s) = &f.search {
        // A prefix as a range, so the (instance, id) index serves it on both backends.
        q.push(" AND ((instance >= ")
            .push_bind(s.clone())
            .push(" AND instance < ")
            .push_bind(format!("{s}\u{10FFFF}"))
            .push(") OR remote_task_id = ")
            .push_bind(s.clone())
            .push(")");
    }
    for (col, op, t) in [
        ("created_at", ">=", f.created_from),
        ("created_at", "<", f.created_to),
        ("finished_at", ">=", f.finished_from),
        ("finished_at", "<", f.finished_to),
    ] {
        if let Some(t) = t {
            q.push(format!(" AND {col} {op} ")).push_bind(time(t));
        }
    }
    let (cmp, dir) = if f.ascending {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if f.sort == JobSort::Finished {
        q.push(" AND finished_at IS NOT NULL");
    }
    match &f.after {
        Some(JobCursor::Id(id)) => {
            q.push(format!(" AND id {cmp} ")).push_bind(*id);
        }
        Some(JobCursor::Instance(i, id)) => {
            q.push(format!(" AND (instance {cmp} "))
                .push_bind(i.clone())
                .push(" OR (instance = ")
                .push_bind(i.clone())
                .push(format!(" AND id {cmp} "))
                .push_bind(*id)
                .push("))");
        }
        Some(JobCursor::Finished(t, id)) => {
            q.push(format!(" AND (finished_at {cmp} "))
                .push_bind(time(*t))
                .push(" OR (finished_at = ")
                .push_bind(time(*t))
                .push(format!(" AND id {cmp} "))
                .push_bind(*id)
                .push("))");
        }
        None => {}
    }
    let order = match f.sort {
        JobSort::Id => format!("id {dir}"),
        JobSort::Instance => format!("instance {dir}, id {dir}"),
        JobSort::Finished => format!("finished_at {dir}, id {dir}"),
    };
    q.push(format!(" ORDER BY {order} LIMIT "))
        .push_bind(i64::from(f.page_size()) + 1);
}

/// Cut the one extra row fetched into the next page's cursor.
pub(crate) fn into_page(q: &JobQuery, mut jobs: Vec<Job>) -> JobQueryPage {
    let size = q.page_size() as usize;
    let next = if jobs.len() > size {
        jobs.truncate(size);
        jobs.last().map(|j| JobCursor::of(q.sort, j))
    } else {
        None
    };
    JobQueryPage { jobs, next }
}

/// Finished jobs per bucket of the throughput window, aggregated in the database. `{bucket}`
/// is the backend's expression for "bucket index of `finished_at`" ($1 = window start,
/// $2 = bucket width in ms): the one place the dialects differ.
pub(crate) fn throughput_sql(bucket: &str) -> String {
    format!(
        "SELECT {bucket} AS b, \
         CAST(sum(CASE WHEN state = 'succeeded' THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(sum(CASE WHEN state = 'failed' THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(sum(CASE WHEN state = 'succeeded' THEN coalesce(export_data_size, 0) ELSE 0 END) \
         AS BIGINT) \
         FROM jobs WHERE finished_at >= $1 AND state IN ('succeeded', 'failed') GROUP BY b"
    )
}

/// Failed jobs per instance in a window, most failures first.
pub(crate) const FAILING_SQL: &str = "SELECT region, instance, count(*) AS failures, \
     max(finished_at) AS last_failed_at FROM jobs \
     WHERE finished_at >= $1 AND state = 'failed' \
     GROUP BY region, instance ORDER BY failures DESC, last_failed_at DESC LIMIT $2";

/// Lay `(bucket index, succeeded, failed, bytes)` rows out as `buckets` consecutive
/// buckets from `since`, empty ones included.
pub(crate) fn bucketize(
    rows: impl IntoIterator<Item = (i64, i64, i64, i64)>,
    since: DateTime<Utc>,
    bucket: chrono::Duration,
    buckets: u32,
) -> Vec<ThroughputBucket> {
    let mut out: Vec<ThroughputBucket> = (0..buckets)
        .map(|i| ThroughputBucket {
            start: since + bucket * i as i32,
            ..ThroughputBucket::default()
        })
        .collect();
    for (i, succeeded, failed, bytes) in rows {
        if let Some(b) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            b.succeeded += succeeded;
            b.failed += failed;
            b.bytes += bytes.max(0);
        }
    }
    out
}

/// The [`ConsoleStore`] implementation for one backend, expanded in its `console` module:
/// the SQL above is shared; a backend names its store, sqlx database, how a time binds
/// (`$t`) and is read back (`$stored` → `$read`), and its throughput bucket expression.
macro_rules! console_store {
    (
        store: $store:ty,
        db: $db:ty,
        bind_time: $t:path,
        stored_time: $stored:ty,
        read_time: $read:path,
        bucket: $bucket:expr $(,)?
    ) => {
        #[async_trait::async_trait]
        impl crate::store::console::ConsoleStore for $store {
            async fn console_jobs(
                &self,
                q: &crate::store::console::JobQuery,
            ) -> Result<crate::store::console::JobQueryPage, crate::store::StoreError> {
                let mut b = sqlx::QueryBuilder::<$db>::new("");
                crate::store::console::push_job_query(&mut b, q, $t);
                let found = b.build().fetch_all(&self.pool).await?;
                let jobs = found.iter().map(rows::job).collect::<Result<Vec<_>, _>>()?;
                Ok(crate::store::console::into_page(q, jobs))
            }

            async fn console_throughput(
                &self,
                since: chrono::DateTime<chrono::Utc>,
                bucket: chrono::Duration,
                buckets: u32,
            ) -> Result<Vec<crate::store::console::ThroughputBucket>, crate::store::StoreError>
            {
                let sql = crate::store::console::throughput_sql($bucket);
                let found: Vec<(i64, i64, i64, i64)> = sqlx::query_as(&sql)
                    .bind($t(since))
                    .bind(bucket.num_milliseconds().max(1))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(crate::store::console::bucketize(
                    found, since, bucket, buckets,
                ))
            }

            async fn console_failing_instances(
                &self,
                since: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<crate::store::console::FailingInstance>, crate::store::StoreError> {
                let found: Vec<(String, String, i64, $stored)> =
                    sqlx::query_as(crate::store::console::FAILING_SQL)
                        .bind($t(since))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                found
                    .into_iter()
                    .map(|(region, instance, failures, at)| {
                        let last_failed_at = $read(at).ok_or_else(|| {
                            crate::store::StoreError::Corrupt("jobs.finished_at: not a time".into())
                        })?;
                        Ok(crate::store::console::FailingInstance {
                            key: crate::model::InstanceKey::new(region, instance),
                            failures,
                            last_failed_at,
                        })
                    })
                    .collect()
            }
        }
    };
}
pub(crate) use console_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let t = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        for (sort, c) in [
            (JobSort::Id, JobCursor::Id(42)),
            (JobSort::Instance, JobCursor::Instance("rm-a~b".into(), 7)),
            (JobSort::Finished, JobCursor::Finished(t, 9)),
        ] {
            assert_eq!(JobCursor::decode(sort, &c.encode()), Some(c));
        }
        assert_eq!(JobCursor::decode(JobSort::Id, "x"), None);
        assert_eq!(JobCursor::decode(JobSort::Id, "-1"), None);
        assert_eq!(JobCursor::decode(JobSort::Instance, "rm-1"), None);
        assert_eq!(JobCursor::decode(JobSort::Finished, "soon~1"), None);
    }

    #[test]
    fn buckets_are_laid_out_with_gaps() {
        let since = Utc.timestamp_millis_opt(0).unwrap();
        let h = chrono::Duration::hours(1);
        let b = bucketize(vec![(0, 1, 0, 10), (1, 1, 1, 5), (9, 0, 1, 0)], since, h, 3);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].succeeded, b[0].failed, b[0].bytes), (1, 0, 10));
        assert_eq!((b[1].succeeded, b[1].failed, b[1].bytes), (1, 1, 5));
        assert_eq!((b[2].succeeded, b[2].failed), (0, 0));
        assert_eq!(b[2].start, since + h * 2);
    }
}
