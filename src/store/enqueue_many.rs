//! Set-based enqueue: the jobs of many schedules in one multi-row `INSERT` per chunk, so a
//! scheduler pass costs a few statements instead of one transaction per job (issue 11).
//!
//! A separate trait (a supertrait of [`super::Store`]) so the job queue's own code need not
//! change. The SQL is written once in [`job_enqueue_many!`]; each backend passes how a time
//! is bound, its job row decoder, how it opens a write transaction and how it wakes its
//! workers after a commit. The exactly-once keys hold as in `job_enqueue`: a row that
//! conflicts with `jobs_schedule_fire_unique` or the idempotency key is absorbed
//! (`ON CONFLICT DO NOTHING`) and read back as `created = false`.

use super::sql::Params;
use super::{Enqueued, NewJob, StoreError};
use async_trait::async_trait;

/// Rows per `INSERT`: 27 parameters each stays under SQLite's 32,766 and PostgreSQL's
/// 65,535 bind parameters.
pub(crate) const CHUNK: usize = 500;

/// Parameters of one job row in [`insert_sql`]'s `VALUES`.
const PARAMS_PER_ROW: usize = 27;

#[async_trait]
pub trait JobBatchStore: Send + Sync {
    /// Validate and insert many jobs (state `queued`) in one transaction, each with its
    /// first event; results in input order. A job whose exactly-once key (idempotency key,
    /// or schedule + fire time + instance) is taken comes back as the existing job with
    /// `created = false`. One invalid job fails the call with [`StoreError::Invalid`] and
    /// nothing is written; a caller wanting per-job verdicts then uses `job_enqueue`.
    async fn job_enqueue_many(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, StoreError>;
}

/// The multi-row `INSERT` for `rows` jobs (same columns and order as `job_enqueue`), with
/// the backend's parameter style.
pub(crate) fn insert_sql(rows: usize, params: Params) -> String {
    let mut sql = String::from(
        "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, bak_set_size, \
         download_point_in_time, format, target_type, target_bucket, target_oss_region, \
         target_path, cluster_name, is_cluster, admin_database, primary_key_type_only, \
         use_zstd, is_physical, source, priority, run_at, max_attempts, idempotency_key, \
         schedule_id, fire_time, created_at, updated_at, sink) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&params.list(r * PARAMS_PER_ROW + 1, PARAMS_PER_ROW));
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING ");
    sql.push_str(super::sql::JOB_COLUMNS);
    sql
}

/// The existing job a conflicting row was absorbed by ($1 key).
pub(crate) const BY_IDEMPOTENCY_KEY: &str = "WHERE idempotency_key = $1";
/// ($1 schedule, $2 fire time, $3 region, $4 instance).
pub(crate) const BY_FIRE_KEY: &str = "WHERE schedule_id = $1 \
    AND fire_time IS NOT DISTINCT FROM $2 AND region = $3 AND instance = $4";

/// What identifies a job among the inputs: its exactly-once key, or (without one) its
/// position among the key-less inputs, which are all inserted, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum MatchKey {
    Idempotency(String),
    Fire(i64, Option<i64>, String, String),
}

impl MatchKey {
    pub(crate) fn of(
        idempotency_key: &Option<String>,
        schedule_id: Option<i64>,
        fire_time: Option<chrono::DateTime<chrono::Utc>>,
        region: &str,
        instance: &str,
    ) -> Option<Self> {
        if let Some(k) = idempotency_key {
            return Some(Self::Idempotency(k.clone()));
        }
        schedule_id.map(|s| {
            Self::Fire(
                s,
                fire_time.map(|t| t.timestamp_millis()),
                region.into(),
                instance.into(),
            )
        })
    }

    pub(crate) fn of_new(job: &NewJob) -> Option<Self> {
        Self::of(
            &job.idempotency_key,
            job.schedule_id,
            job.fire_time,
            &job.request.region,
            &job.request.instance,
        )
    }

    pub(crate) fn of_job(job: &crate::model::Job) -> Option<Self> {
        Self::of(
            &job.idempotency_key,
            job.schedule_id,
            job.fire_time,
            &job.request.region,
            &job.request.instance,
        )
    }
}

/// The [`JobBatchStore`] of one backend, expanded inside the backend's module (it uses the
/// store's private write transaction and wake-up). `$params` is its parameter style
/// ([`Params`]); `$begin(&store)` opens the write
/// transaction; `$time` binds a time; `$job` decodes a job row; `$enqueued(&store, &jobs)`
/// runs after the commit with the created jobs.
macro_rules! job_enqueue_many {
    (
        store: $store:ty,
        begin: $begin:path,
        time: $time:path,
        job: $job:path,
        enqueued: $enqueued:path,
        params: $params:expr $(,)?
    ) => {
        #[async_trait::async_trait]
        impl crate::store::enqueue_many::JobBatchStore for $store {
            async fn job_enqueue_many(
                &self,
                jobs: &[crate::store::NewJob],
            ) -> Result<Vec<crate::store::Enqueued>, crate::store::StoreError> {
                use crate::store::enqueue_many::{
                    insert_sql, MatchKey, BY_FIRE_KEY, BY_IDEMPOTENCY_KEY, CHUNK,
                };
                use crate::store::{Enqueued, StoreError};
                use std::collections::HashMap;
                for job in jobs {
                    job.validate()?;
                }
                if jobs.is_empty() {
                    return Ok(Vec::new());
                }
                let now = self.now();
                let mut out: Vec<Option<Enqueued>> = vec![None; jobs.len()];
                let mut tx = $begin(self).await?;
                for (c, chunk) in jobs.chunks(CHUNK).enumerate() {
                    let base = c * CHUNK;
                    let sql = insert_sql(chunk.len(), $params);
                    let mut q = sqlx::query(&sql);
                    for job in chunk {
                        q = crate::store::jobs::bind_new_job!(q, job, now, $time);
                    }
                    let rows = q.fetch_all(&mut *tx).await?;
                    let mut created = rows.iter().map($job).collect::<Result<Vec<_>, _>>()?;
                    created.sort_by_key(|j| j.id);
                    // Keyed inputs are matched by key; key-less ones are all inserted, in
                    // input order (ids are assigned in VALUES order).
                    let mut by_key: HashMap<MatchKey, usize> = HashMap::new();
                    let mut keyless = Vec::new();
                    for (i, job) in chunk.iter().enumerate() {
                        match MatchKey::of_new(job) {
                            Some(k) => {
                                by_key.entry(k).or_insert(base + i);
                            }
                            None => keyless.push(base + i),
                        }
                    }
                    let mut keyless = keyless.into_iter();
                    for job in created {
                        let slot = match MatchKey::of_job(&job) {
                            Some(k) => by_key.get(&k).copied(),
                            None => keyless.next(),
                        };
                        let slot = slot.ok_or_else(|| {
                            StoreError::Corrupt("a batch insert returned an unknown job".into())
                        })?;
                        out[slot] = Some(Enqueued { job, created: true });
                    }
                }
                // Conflicts (another scheduler, an earlier attempt, or a repeat within the
                // call): read back the job that holds the key. Rare, so one by one.
                for (i, job) in jobs.iter().enumerate() {
                    if out[i].is_some() {
                        continue;
                    }
                    let cols = crate::store::sql::JOB_COLUMNS;
                    let row = if let Some(key) = &job.idempotency_key {
                        sqlx::query(&format!("SELECT {cols} FROM jobs {BY_IDEMPOTENCY_KEY}"))
                            .bind(key)
                            .fetch_optional(&mut *tx)
                            .await?
                    } else {
                        sqlx::query(&format!("SELECT {cols} FROM jobs {BY_FIRE_KEY}"))
                            .bind(job.schedule_id)
                            .bind(job.fire_time.map($time))
                            .bind(&job.request.region)
                            .bind(&job.request.instance)
                            .fetch_optional(&mut *tx)
                            .await?
                    };
                    let row = row.ok_or_else(|| {
                        StoreError::Corrupt("enqueue conflicted but no duplicate job found".into())
                    })?;
                    out[i] = Some(Enqueued {
                        job: $job(&row)?,
                        created: false,
                    });
                }
                tx.commit().await?;
                let out: Vec<Enqueued> = out.into_iter().flatten().collect();
                let created: Vec<&crate::model::Job> =
                    out.iter().filter(|e| e.created).map(|e| &e.job).collect();
                for e in out.iter().filter(|e| e.created) {
                    crate::telemetry::metrics::job_enqueued(e.job.source);
                }
                if !created.is_empty() {
                    $enqueued(self, &created);
                }
                Ok(out)
            }
        }
    };
}
pub(crate) use job_enqueue_many;
