//! [`ConsoleStore`] on PostgreSQL: the shared SQL of `store::console` with `timestamptz`.

use super::rows;
use super::PgStore;
use crate::model::InstanceKey;
use crate::store::console::{
    bucketize, into_page, push_job_query, throughput_sql, ConsoleStore, FailingInstance, JobQuery,
    JobQueryPage, ThroughputBucket, FAILING_SQL,
};
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

#[async_trait]
impl ConsoleStore for PgStore {
    async fn console_jobs(&self, q: &JobQuery) -> Result<JobQueryPage, StoreError> {
        let mut b = QueryBuilder::<Postgres>::new("");
        push_job_query(&mut b, q, |t| t);
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
        let found: Vec<(i64, i64, i64, i64)> = sqlx::query_as(&throughput_sql(
            "CAST(floor(extract(epoch FROM finished_at - $1) * 1000 / $2) AS BIGINT)",
        ))
        .bind(since)
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
        let found: Vec<(String, String, i64, DateTime<Utc>)> = sqlx::query_as(FAILING_SQL)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(found
            .into_iter()
            .map(|(region, instance, failures, at)| FailingInstance {
                key: InstanceKey::new(region, instance),
                failures,
                last_failed_at: at,
            })
            .collect())
    }
}
