//! [`ConsoleStore`] on SQLite: the shared SQL of `store::console` with times as UNIX ms.

use super::rows::{self, ms};
use super::SqliteStore;
use crate::model::InstanceKey;
use crate::store::console::{
    bucketize, into_page, push_job_query, throughput_sql, ConsoleStore, FailingInstance, JobQuery,
    JobQueryPage, ThroughputBucket, FAILING_SQL,
};
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::{QueryBuilder, Sqlite};

fn time(v: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("jobs.finished_at: {v} is not a time")))
}

#[async_trait]
impl ConsoleStore for SqliteStore {
    async fn console_jobs(&self, q: &JobQuery) -> Result<JobQueryPage, StoreError> {
        let mut b = QueryBuilder::<Sqlite>::new("");
        push_job_query(&mut b, q, ms);
        let found = b.build().fetch_all(&self.pool).await?;
        let jobs = found.iter().map(rows::job).collect::<Result<Vec<_>, _>>()?;
        Ok(into_page(q, jobs))
    }

    async fn console_throughput(
        &self,
        since: DateTime<Utc>,
        bucket: chrono::Duration,
        buckets: u32,
    ) -> Result<Vec<ThroughputBucket>, StoreError> {
        let found: Vec<(i64, i64, i64, i64)> =
            sqlx::query_as(&throughput_sql("(finished_at - $1) / $2"))
                .bind(ms(since))
                .bind(bucket.num_milliseconds().max(1))
                .fetch_all(&self.pool)
                .await?;
        Ok(bucketize(found, since, bucket, buckets))
    }

    async fn console_failing_instances(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<FailingInstance>, StoreError> {
        let found: Vec<(String, String, i64, i64)> = sqlx::query_as(FAILING_SQL)
            .bind(ms(since))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        found
            .into_iter()
            .map(|(region, instance, failures, at)| {
                Ok(FailingInstance {
                    key: InstanceKey::new(region, instance),
                    failures,
                    last_failed_at: time(at)?,
                })
            })
            .collect()
    }
}
