//! Schedule persistence: a separate trait so the scheduler work (issue #5) can grow it
//! without touching the job queue's code. Every [`super::Store`] also implements it.
//!
//! Exactly-once firing rests on three things here: a lease on the schedule row while a
//! scheduler works on it (claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL), the jobs
//! table's unique `(schedule_id, fire_time, region, instance)` index (re-enqueueing a fire
//! is a no-op), and a cursor that only moves forward through a fenced update.
//!
//! The SQL is written once, in [`schedule_store!`]; each backend's `schedules.rs` passes
//! only what really differs: how a time is bound and read (SQLite INTEGER unix ms,
//! PostgreSQL TIMESTAMPTZ), how `spec` is read and written (TEXT / JSONB) and the row
//! lock of the claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer).

use super::sql::Params;
use super::StoreError;
use crate::model::schedule::{
    RunOutcome, Schedule, ScheduleId, ScheduleOrigin, ScheduleRun, ScheduleSpec, SkipReason,
};
use crate::model::{InstanceKey, JobId};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A validated schedule to insert.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub spec: ScheduleSpec,
    pub enabled: bool,
    pub origin: ScheduleOrigin,
    /// The first fire after `now` (computed by the caller from the cron).
    pub next_fire_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Replace the spec of a schedule (version + 1).
#[derive(Debug, Clone)]
pub struct ScheduleUpdate {
    pub id: ScheduleId,
    pub spec: ScheduleSpec,
    /// Recomputed from the cursor with the new cron.
    pub next_fire_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Pause or resume. Resuming a paused schedule moves its cursor to `now` (fires while
/// paused are deliberately not made up) and sets `next_fire_time`.
#[derive(Debug, Clone)]
pub struct ScheduleSetEnabled {
    pub id: ScheduleId,
    pub enabled: bool,
    /// First fire after `now`; used only when resuming.
    pub next_fire_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Lease enabled schedules whose next fire is due and which no live scheduler holds.
#[derive(Debug, Clone)]
pub struct ScheduleClaim {
    pub owner: String,
    pub limit: u32,
    pub lease: Duration,
    pub now: DateTime<Utc>,
}

/// Move the cursor, fenced on the cursor and version the claimer saw; drops the lease.
#[derive(Debug, Clone)]
pub struct ScheduleAdvance {
    pub id: ScheduleId,
    pub expected_last_fire_time: Option<DateTime<Utc>>,
    pub expected_version: i64,
    pub last_fire_time: DateTime<Utc>,
    pub next_fire_time: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// One history row; `(schedule, fire_time, instance)` is unique, a repeat is ignored.
#[derive(Debug, Clone)]
pub struct NewScheduleRun {
    pub schedule_id: ScheduleId,
    pub fire_time: DateTime<Utc>,
    pub instance: Option<InstanceKey>,
    pub outcome: RunOutcome,
    pub reason: Option<SkipReason>,
    pub detail: Option<String>,
    pub job_id: Option<JobId>,
    pub now: DateTime<Utc>,
}

/// An unfinished job of a schedule (see [`ScheduleStore::schedule_unfinished_jobs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedJob {
    pub schedule_id: ScheduleId,
    pub instance: InstanceKey,
    pub fire_time: Option<DateTime<Utc>>,
    pub job_id: JobId,
}

#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Insert; a taken name is `StoreError::Invalid` naming `name`.
    async fn schedule_create(&self, s: &NewSchedule) -> Result<Schedule, StoreError>;

    async fn schedule_get(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError>;

    async fn schedule_get_by_name(&self, name: &str) -> Result<Option<Schedule>, StoreError>;

    /// Every schedule, by name.
    async fn schedule_list(&self) -> Result<Vec<Schedule>, StoreError>;

    /// `Ok(None)` when there is no such schedule. A name taken by another schedule is
    /// `StoreError::Invalid` naming `name`.
    async fn schedule_update(&self, u: &ScheduleUpdate) -> Result<Option<Schedule>, StoreError>;

    async fn schedule_set_enabled(
        &self,
        p: &ScheduleSetEnabled,
    ) -> Result<Option<Schedule>, StoreError>;

    /// Delete the schedule and its history (its jobs stay). False when there was none.
    async fn schedule_delete(&self, id: ScheduleId) -> Result<bool, StoreError>;

    /// Lease up to `limit` due schedules, oldest next fire first.
    async fn schedule_claim_due(&self, p: &ScheduleClaim) -> Result<Vec<Schedule>, StoreError>;

    /// The fenced cursor advance; `Ok(false)` = someone else moved it (or changed the spec).
    async fn schedule_advance(&self, p: &ScheduleAdvance) -> Result<bool, StoreError>;

    /// Drop our lease without moving the cursor (the fires will be retried).
    async fn schedule_release(&self, id: ScheduleId, owner: &str) -> Result<(), StoreError>;

    /// Append to the fires history; `Ok(false)` when that row already existed.
    async fn schedule_run_record(&self, r: &NewScheduleRun) -> Result<bool, StoreError>;

    /// [`ScheduleStore::schedule_run_record`] for many rows in one statement per chunk;
    /// per row, in input order, whether it was new.
    async fn schedule_run_record_many(
        &self,
        runs: &[NewScheduleRun],
    ) -> Result<Vec<bool>, StoreError>;

    /// [`ScheduleStore::schedule_advance`] for many schedules in one statement per chunk;
    /// per advance, in input order, whether its fence held.
    async fn schedule_advance_many(&self, p: &[ScheduleAdvance]) -> Result<Vec<bool>, StoreError>;

    /// The end of a scheduler batch in one transaction (one commit instead of two):
    /// [`ScheduleStore::schedule_run_record_many`] of `runs`, then
    /// [`ScheduleStore::schedule_advance_many`] of `advances`; both answers in input order.
    async fn schedule_record_and_advance(
        &self,
        runs: &[NewScheduleRun],
        advances: &[ScheduleAdvance],
    ) -> Result<(Vec<bool>, Vec<bool>), StoreError>;

    /// Every unfinished (queued, submitting or running) job of these schedules, oldest
    /// first: the overlap check of a whole fire pass in one query.
    async fn schedule_unfinished_jobs(
        &self,
        schedule_ids: &[ScheduleId],
    ) -> Result<Vec<UnfinishedJob>, StoreError>;

    /// The newest `limit` history rows of a schedule, newest first.
    async fn schedule_run_list(
        &self,
        schedule_id: ScheduleId,
        limit: u32,
    ) -> Result<Vec<ScheduleRun>, StoreError>;

    /// An unfinished (queued, submitting or running) job of this schedule on this instance
    /// from a fire other than `fire_time`: the overlap check.
    async fn schedule_unfinished_job(
        &self,
        schedule_id: ScheduleId,
        key: &InstanceKey,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<JobId>, StoreError>;
}

/// Decode helpers shared by both backends.
pub(crate) mod decode {
    use super::*;
    use crate::model::ValidationError;

    pub fn spec(json: &str) -> Result<ScheduleSpec, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("schedules.spec: {e}")))
    }

    pub fn origin(s: &str) -> Result<ScheduleOrigin, StoreError> {
        s.parse()
            .map_err(|e: ValidationError| StoreError::Corrupt(format!("schedules.{e}")))
    }

    pub fn outcome(s: &str) -> Result<RunOutcome, StoreError> {
        s.parse()
            .map_err(|e: ValidationError| StoreError::Corrupt(format!("schedule_runs.{e}")))
    }

    pub fn reason(s: Option<String>) -> Result<Option<SkipReason>, StoreError> {
        s.map(|s| {
            s.parse()
                .map_err(|e: ValidationError| StoreError::Corrupt(format!("schedule_runs.{e}")))
        })
        .transpose()
    }

    pub fn instance(region: String, instance: String) -> Option<InstanceKey> {
        (!instance.is_empty()).then(|| InstanceKey::new(region, instance))
    }

    /// A unique violation on `schedules.name`.
    pub fn name_taken(e: &sqlx::Error, name: &str) -> Option<StoreError> {
        match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Some(StoreError::Invalid(
                ValidationError::new("name", format!("a schedule named {name:?} already exists")),
            )),
            _ => None,
        }
    }
}

/// Both backends' spec column holds the JSON of a [`ScheduleSpec`].
pub(crate) fn spec_json(spec: &ScheduleSpec) -> String {
    serde_json::to_string(spec).expect("a spec always serialises")
}

/// Rows per multi-row statement (at most 9 parameters a row: well under both backends'
/// bind-parameter limits).
const CHUNK: usize = 1000;

/// `($1, $2, …), (…)`: `rows` tuples of `width` parameters in the backend's style.
pub(crate) fn values_list(rows: usize, width: usize, params: Params) -> String {
    (0..rows)
        .map(|r| format!("({})", params.list(r * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `chunks` of at most [`CHUNK`] items.
pub(crate) fn chunks<T>(items: &[T]) -> std::slice::Chunks<'_, T> {
    items.chunks(CHUNK)
}

/// A history row's identity: (schedule, fire time in ms, region, instance).
pub(crate) type RunKey = (ScheduleId, i64, String, String);

pub(crate) fn run_key(r: &NewScheduleRun) -> RunKey {
    let (region, instance) = r
        .instance
        .as_ref()
        .map(|k| (k.region.clone(), k.instance.clone()))
        .unwrap_or_default();
    (
        r.schedule_id,
        r.fire_time.timestamp_millis(),
        region,
        instance,
    )
}

pub(crate) fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

/// The [`ScheduleStore`] of one backend. `$store` has a `pool`; `$row` is its row type;
/// `$time` binds a time; `$opt_time` reads a nullable time column; `$spec_out` selects
/// `spec` as text; `$spec_in` follows the bound spec parameter (a cast, or nothing);
/// `$lock` ends the claim's sub-select; `$params` is the backend's parameter style for the
/// multi-row statements ([`Params`]).
macro_rules! schedule_store {
    (
        store: $store:ty,
        row: $row:ty,
        time: $time:path,
        opt_time: $opt_time:path,
        spec_out: $spec_out:literal,
        spec_in: $spec_in:literal,
        lock: $lock:literal,
        params: $params:expr $(,)?
    ) => {
        use crate::model::schedule::{Schedule, ScheduleId, ScheduleRun};
        use crate::model::{InstanceKey, JobId};
        use crate::store::schedules::{
            chunks, decode, lease_until, run_key, spec_json, values_list, NewSchedule,
            NewScheduleRun, ScheduleAdvance, ScheduleClaim, ScheduleSetEnabled, ScheduleStore,
            ScheduleUpdate, UnfinishedJob,
        };
        use crate::store::StoreError;
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::Row;

        const COLS: &str = concat!(
            "id, name, ",
            $spec_out,
            ", enabled, origin, last_fire_time, next_fire_time, version, created_at, updated_at"
        );

        fn time_col(row: &$row, column: &str) -> Result<DateTime<Utc>, StoreError> {
            $opt_time(row, column)?.ok_or_else(|| StoreError::Corrupt(format!("{column} is NULL")))
        }

        fn schedule(row: &$row) -> Result<Schedule, StoreError> {
            let spec: String = row.try_get("spec")?;
            let origin: String = row.try_get("origin")?;
            let mut spec = decode::spec(&spec)?;
            spec.name = row.try_get("name")?;
            Ok(Schedule {
                id: row.try_get("id")?,
                spec,
                enabled: row.try_get("enabled")?,
                origin: decode::origin(&origin)?,
                last_fire_time: $opt_time(row, "last_fire_time")?,
                next_fire_time: $opt_time(row, "next_fire_time")?,
                version: row.try_get("version")?,
                created_at: time_col(row, "created_at")?,
                updated_at: time_col(row, "updated_at")?,
            })
        }

        fn run(row: &$row) -> Result<ScheduleRun, StoreError> {
            let outcome: String = row.try_get("outcome")?;
            Ok(ScheduleRun {
                id: row.try_get("id")?,
                schedule_id: row.try_get("schedule_id")?,
                fire_time: time_col(row, "fire_time")?,
                instance: decode::instance(row.try_get("region")?, row.try_get("instance")?),
                outcome: decode::outcome(&outcome)?,
                reason: decode::reason(row.try_get("reason")?)?,
                detail: row.try_get("detail")?,
                job_id: row.try_get("job_id")?,
                recorded_at: time_col(row, "recorded_at")?,
            })
        }

        #[async_trait]
        impl ScheduleStore for $store {
            async fn schedule_create(&self, s: &NewSchedule) -> Result<Schedule, StoreError> {
                let sql = format!(
                    "INSERT INTO schedules \
                        (name, spec, enabled, origin, next_fire_time, created_at, updated_at) \
                     VALUES ($1, $2{}, $3, $4, $5, $6, $6) RETURNING {COLS}",
                    $spec_in
                );
                let row = sqlx::query(&sql)
                    .bind(&s.spec.name)
                    .bind(spec_json(&s.spec))
                    .bind(s.enabled)
                    .bind(s.origin.as_str())
                    .bind(s.next_fire_time.map($time))
                    .bind($time(s.now))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| decode::name_taken(&e, &s.spec.name).unwrap_or(e.into()))?;
                schedule(&row)
            }

            async fn schedule_get(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
                let sql = format!("SELECT {COLS} FROM schedules WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(schedule).transpose()
            }

            async fn schedule_get_by_name(
                &self,
                name: &str,
            ) -> Result<Option<Schedule>, StoreError> {
                let sql = format!("SELECT {COLS} FROM schedules WHERE name = $1");
                let row = sqlx::query(&sql)
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(schedule).transpose()
            }

            async fn schedule_list(&self) -> Result<Vec<Schedule>, StoreError> {
                let sql = format!("SELECT {COLS} FROM schedules ORDER BY name");
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                rows.iter().map(schedule).collect()
            }

            async fn schedule_update(
                &self,
                u: &ScheduleUpdate,
            ) -> Result<Option<Schedule>, StoreError> {
                let sql = format!(
                    "UPDATE schedules SET name = $2, spec = $3{}, next_fire_time = $4, \
                        updated_at = $5, version = version + 1 \
                     WHERE id = $1 RETURNING {COLS}",
                    $spec_in
                );
                let row = sqlx::query(&sql)
                    .bind(u.id)
                    .bind(&u.spec.name)
                    .bind(spec_json(&u.spec))
                    .bind(u.next_fire_time.map($time))
                    .bind($time(u.now))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| decode::name_taken(&e, &u.spec.name).unwrap_or(e.into()))?;
                row.as_ref().map(schedule).transpose()
            }

            async fn schedule_set_enabled(
                &self,
                p: &ScheduleSetEnabled,
            ) -> Result<Option<Schedule>, StoreError> {
                // Resuming a paused schedule moves its cursor to now; other calls keep it.
                let sql = format!(
                    "UPDATE schedules SET \
                        last_fire_time = CASE WHEN $3 AND NOT enabled THEN $2 \
                            ELSE last_fire_time END, \
                        next_fire_time = CASE WHEN $3 AND NOT enabled THEN $4 \
                            ELSE next_fire_time END, \
                        enabled = $3, updated_at = $2 \
                     WHERE id = $1 RETURNING {COLS}"
                );
                let row = sqlx::query(&sql)
                    .bind(p.id)
                    .bind($time(p.now))
                    .bind(p.enabled)
                    .bind(p.next_fire_time.map($time))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(schedule).transpose()
            }

            async fn schedule_delete(&self, id: ScheduleId) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM schedule_runs WHERE schedule_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM schedules WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(done > 0)
            }

            async fn schedule_claim_due(
                &self,
                p: &ScheduleClaim,
            ) -> Result<Vec<Schedule>, StoreError> {
                // The outer lease test is re-checked on a row another claimer took
                // meanwhile (PostgreSQL re-evaluates it after the lock), so one claim wins.
                let sql = format!(
                    "UPDATE schedules SET lease_owner = $1, lease_expires_at = $2 \
                     WHERE (lease_expires_at IS NULL OR lease_expires_at <= $3) \
                       AND id IN (SELECT id FROM schedules \
                         WHERE enabled AND next_fire_time IS NOT NULL \
                           AND next_fire_time <= $3 \
                           AND (lease_expires_at IS NULL OR lease_expires_at <= $3) \
                         ORDER BY next_fire_time LIMIT $4{}) \
                     RETURNING {COLS}",
                    $lock
                );
                let rows = sqlx::query(&sql)
                    .bind(&p.owner)
                    .bind($time(lease_until(p.now, p.lease)))
                    .bind($time(p.now))
                    .bind(i64::from(p.limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(schedule).collect()
            }

            async fn schedule_advance(&self, p: &ScheduleAdvance) -> Result<bool, StoreError> {
                let done = self.schedule_advance_many(std::slice::from_ref(p)).await?;
                Ok(done.first().copied().unwrap_or(false))
            }

            async fn schedule_advance_many(
                &self,
                advances: &[ScheduleAdvance],
            ) -> Result<Vec<bool>, StoreError> {
                Ok(self.schedule_record_and_advance(&[], advances).await?.1)
            }

            async fn schedule_release(
                &self,
                id: ScheduleId,
                owner: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE schedules SET lease_owner = NULL, lease_expires_at = NULL \
                     WHERE id = $1 AND lease_owner = $2",
                )
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn schedule_run_record(&self, r: &NewScheduleRun) -> Result<bool, StoreError> {
                let new = self.schedule_run_record_many(std::slice::from_ref(r)).await?;
                Ok(new.first().copied().unwrap_or(false))
            }

            async fn schedule_run_record_many(
                &self,
                runs: &[NewScheduleRun],
            ) -> Result<Vec<bool>, StoreError> {
                Ok(self.schedule_record_and_advance(runs, &[]).await?.0)
            }

            async fn schedule_record_and_advance(
                &self,
                runs: &[NewScheduleRun],
                advances: &[ScheduleAdvance],
            ) -> Result<(Vec<bool>, Vec<bool>), StoreError> {
                if runs.is_empty() && advances.is_empty() {
                    return Ok((Vec::new(), Vec::new()));
                }
                let mut tx = self.begin().await?;
                let mut inserted = std::collections::HashSet::new();
                for chunk in chunks(runs) {
                    let sql = format!(
                        "INSERT INTO schedule_runs (schedule_id, fire_time, region, instance, \
                            outcome, reason, detail, job_id, recorded_at) \
                         VALUES {} \
                         ON CONFLICT (schedule_id, fire_time, region, instance) DO NOTHING \
                         RETURNING schedule_id, fire_time, region, instance",
                        values_list(chunk.len(), 9, $params)
                    );
                    let mut q = sqlx::query(&sql);
                    for r in chunk {
                        let (region, instance) = r
                            .instance
                            .as_ref()
                            .map(|k| (k.region.as_str(), k.instance.as_str()))
                            .unwrap_or(("", ""));
                        q = q
                            .bind(r.schedule_id)
                            .bind($time(r.fire_time))
                            .bind(region)
                            .bind(instance)
                            .bind(r.outcome.as_str())
                            .bind(r.reason.map(|x| x.as_str()))
                            .bind(&r.detail)
                            .bind(r.job_id)
                            .bind($time(r.now));
                    }
                    for row in q.fetch_all(&mut *tx).await? {
                        inserted.insert((
                            row.try_get::<i64, _>("schedule_id")?,
                            time_col(&row, "fire_time")?.timestamp_millis(),
                            row.try_get::<String, _>("region")?,
                            row.try_get::<String, _>("instance")?,
                        ));
                    }
                }
                let mut moved = std::collections::HashSet::new();
                for chunk in chunks(advances) {
                    let sql = format!(
                        "UPDATE schedules SET last_fire_time = v.new_last, \
                            next_fire_time = v.new_next, updated_at = v.at, \
                            lease_owner = NULL, lease_expires_at = NULL \
                         FROM (SELECT column1 AS sid, column2 AS expected_last, \
                                 column3 AS expected_version, column4 AS new_last, \
                                 column5 AS new_next, column6 AS at \
                               FROM (VALUES {}) AS x) AS v \
                         WHERE id = v.sid AND last_fire_time IS NOT DISTINCT FROM v.expected_last \
                           AND version = v.expected_version \
                         RETURNING id",
                        values_list(chunk.len(), 6, $params)
                    );
                    let mut q = sqlx::query_scalar::<_, i64>(&sql);
                    for p in chunk {
                        q = q
                            .bind(p.id)
                            .bind(p.expected_last_fire_time.map($time))
                            .bind(p.expected_version)
                            .bind($time(p.last_fire_time))
                            .bind(p.next_fire_time.map($time))
                            .bind($time(p.now));
                    }
                    moved.extend(q.fetch_all(&mut *tx).await?);
                }
                tx.commit().await?;
                // A repeat within `runs` is new once, like two single inserts.
                Ok((
                    runs.iter().map(|r| inserted.remove(&run_key(r))).collect(),
                    advances.iter().map(|p| moved.contains(&p.id)).collect(),
                ))
            }

            async fn schedule_run_list(
                &self,
                schedule_id: ScheduleId,
                limit: u32,
            ) -> Result<Vec<ScheduleRun>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, schedule_id, fire_time, region, instance, outcome, reason, \
                        detail, job_id, recorded_at \
                     FROM schedule_runs WHERE schedule_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(schedule_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(run).collect()
            }

            async fn schedule_unfinished_job(
                &self,
                schedule_id: ScheduleId,
                key: &InstanceKey,
                fire_time: DateTime<Utc>,
            ) -> Result<Option<JobId>, StoreError> {
                let id = sqlx::query_scalar(
                    "SELECT id FROM jobs \
                     WHERE schedule_id = $1 AND region = $2 AND instance = $3 \
                       AND state IN ('queued', 'submitting', 'running') \
                       AND fire_time IS DISTINCT FROM $4 \
                     ORDER BY id LIMIT 1",
                )
                .bind(schedule_id)
                .bind(&key.region)
                .bind(&key.instance)
                .bind($time(fire_time))
                .fetch_optional(&self.pool)
                .await?;
                Ok(id)
            }

            async fn schedule_unfinished_jobs(
                &self,
                schedule_ids: &[ScheduleId],
            ) -> Result<Vec<UnfinishedJob>, StoreError> {
                let mut out = Vec::new();
                for chunk in chunks(schedule_ids) {
                    let params = $params.list(1, chunk.len());
                    let sql = format!(
                        "SELECT schedule_id, region, instance, fire_time, id FROM jobs \
                         WHERE schedule_id IS NOT NULL AND schedule_id IN ({}) \
                           AND state IN ('queued', 'submitting', 'running') \
                         ORDER BY id",
                        params
                    );
                    let mut q = sqlx::query(&sql);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for row in q.fetch_all(&self.pool).await? {
                        out.push(UnfinishedJob {
                            schedule_id: row.try_get("schedule_id")?,
                            instance: InstanceKey::new(
                                row.try_get::<String, _>("region")?,
                                row.try_get::<String, _>("instance")?,
                            ),
                            fire_time: $opt_time(&row, "fire_time")?,
                            job_id: row.try_get("id")?,
                        });
                    }
                }
                out.sort_by_key(|u| u.job_id);
                Ok(out)
            }
        }
    };
}
pub(crate) use schedule_store;
