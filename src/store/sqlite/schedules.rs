//! Schedules on this backend (issue #5). One process per database file, so a claim is a
//! single `UPDATE … RETURNING`; the lease and the fenced advance are kept anyway so the
//! code path is the same as on PostgreSQL.

use super::SqliteStore;
use crate::model::{InstanceKey, JobId};
use crate::model::schedule::{Schedule, ScheduleId, ScheduleRun};
use crate::store::schedules::{
    decode, NewSchedule, NewScheduleRun, ScheduleAdvance, ScheduleClaim, ScheduleSetEnabled,
    ScheduleStore, ScheduleUpdate,
};
use crate::store::StoreError;
use async_trait::async_trait;
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

// Times are INTEGER UNIX milliseconds, as in the jobs table.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn opt_ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(ms)
}

fn opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|v| {
            Utc.timestamp_millis_opt(v)
                .single()
                .ok_or_else(|| StoreError::Corrupt(format!("{column}: {v} is not a time")))
        })
        .transpose()
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    opt_time(row, column)?.ok_or_else(|| StoreError::Corrupt(format!("{column} is NULL")))
}

const COLS: &str = "id, name, spec, enabled, origin, last_fire_time, next_fire_time, version, \
                    created_at, updated_at";

fn schedule(row: &SqliteRow) -> Result<Schedule, StoreError> {
    let spec: String = row.try_get("spec")?;
    let origin: String = row.try_get("origin")?;
    let mut spec = decode::spec(&spec)?;
    spec.name = row.try_get("name")?;
    Ok(Schedule {
        id: row.try_get("id")?,
        spec,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        origin: decode::origin(&origin)?,
        last_fire_time: opt_time(row, "last_fire_time")?,
        next_fire_time: opt_time(row, "next_fire_time")?,
        version: row.try_get("version")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn run(row: &SqliteRow) -> Result<ScheduleRun, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(ScheduleRun {
        id: row.try_get("id")?,
        schedule_id: row.try_get("schedule_id")?,
        fire_time: time(row, "fire_time")?,
        instance: decode::instance(row.try_get("region")?, row.try_get("instance")?),
        outcome: decode::outcome(&outcome)?,
        reason: decode::reason(row.try_get("reason")?)?,
        detail: row.try_get("detail")?,
        job_id: row.try_get("job_id")?,
        recorded_at: time(row, "recorded_at")?,
    })
}

fn spec_json(spec: &crate::model::schedule::ScheduleSpec) -> String {
    serde_json::to_string(spec).expect("a spec always serialises")
}

fn lease_until(now: DateTime<Utc>, lease: std::time::Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60))
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn schedule_create(&self, s: &NewSchedule) -> Result<Schedule, StoreError> {
        let sql = format!(
            "INSERT INTO schedules (name, spec, enabled, origin, next_fire_time, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING {COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(&s.spec.name)
            .bind(spec_json(&s.spec))
            .bind(s.enabled as i64)
            .bind(s.origin.as_str())
            .bind(opt_ms(s.next_fire_time))
            .bind(ms(s.now))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| decode::name_taken(&e, &s.spec.name).unwrap_or(e.into()))?;
        schedule(&row)
    }

    async fn schedule_get(&self, id: ScheduleId) -> Result<Option<Schedule>, StoreError> {
        let sql = format!("SELECT {COLS} FROM schedules WHERE id = ?1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(schedule).transpose()
    }

    async fn schedule_get_by_name(&self, name: &str) -> Result<Option<Schedule>, StoreError> {
        let sql = format!("SELECT {COLS} FROM schedules WHERE name = ?1");
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

    async fn schedule_update(&self, u: &ScheduleUpdate) -> Result<Option<Schedule>, StoreError> {
        let sql = format!(
            "UPDATE schedules SET name = ?2, spec = ?3, next_fire_time = ?4, updated_at = ?5,
                    version = version + 1
             WHERE id = ?1 RETURNING {COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(u.id)
            .bind(&u.spec.name)
            .bind(spec_json(&u.spec))
            .bind(opt_ms(u.next_fire_time))
            .bind(ms(u.now))
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| decode::name_taken(&e, &u.spec.name).unwrap_or(e.into()))?;
        row.as_ref().map(schedule).transpose()
    }

    async fn schedule_set_enabled(
        &self,
        p: &ScheduleSetEnabled,
    ) -> Result<Option<Schedule>, StoreError> {
        let sql = if p.enabled {
            format!(
                "UPDATE schedules SET
                    last_fire_time = CASE WHEN enabled = 0 THEN ?2 ELSE last_fire_time END,
                    next_fire_time = CASE WHEN enabled = 0 THEN ?3 ELSE next_fire_time END,
                    enabled = 1, updated_at = ?2
                 WHERE id = ?1 RETURNING {COLS}"
            )
        } else {
            format!(
                "UPDATE schedules SET enabled = 0, updated_at = ?2 WHERE id = ?1 RETURNING {COLS}"
            )
        };
        let mut q = sqlx::query(&sql).bind(p.id).bind(ms(p.now));
        if p.enabled {
            q = q.bind(opt_ms(p.next_fire_time));
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(schedule).transpose()
    }

    async fn schedule_delete(&self, id: ScheduleId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM schedule_runs WHERE schedule_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM schedules WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(done > 0)
    }

    async fn schedule_claim_due(&self, p: &ScheduleClaim) -> Result<Vec<Schedule>, StoreError> {
        let sql = format!(
            "UPDATE schedules SET lease_owner = ?1, lease_expires_at = ?2
             WHERE id IN (
                SELECT id FROM schedules
                WHERE enabled = 1 AND next_fire_time IS NOT NULL AND next_fire_time <= ?3
                  AND (lease_expires_at IS NULL OR lease_expires_at <= ?3)
                ORDER BY next_fire_time LIMIT ?4)
             RETURNING {COLS}"
        );
        let rows = sqlx::query(&sql)
            .bind(&p.owner)
            .bind(ms(lease_until(p.now, p.lease)))
            .bind(ms(p.now))
            .bind(p.limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(schedule).collect()
    }

    async fn schedule_advance(&self, p: &ScheduleAdvance) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE schedules SET last_fire_time = ?4, next_fire_time = ?5, updated_at = ?6,
                    lease_owner = NULL, lease_expires_at = NULL
             WHERE id = ?1 AND last_fire_time IS ?2 AND version = ?3",
        )
        .bind(p.id)
        .bind(opt_ms(p.expected_last_fire_time))
        .bind(p.expected_version)
        .bind(ms(p.last_fire_time))
        .bind(opt_ms(p.next_fire_time))
        .bind(ms(p.now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn schedule_release(&self, id: ScheduleId, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE schedules SET lease_owner = NULL, lease_expires_at = NULL
             WHERE id = ?1 AND lease_owner = ?2",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn schedule_run_record(&self, r: &NewScheduleRun) -> Result<bool, StoreError> {
        let (region, instance) = r
            .instance
            .as_ref()
            .map(|k| (k.region.as_str(), k.instance.as_str()))
            .unwrap_or(("", ""));
        let done = sqlx::query(
            "INSERT INTO schedule_runs
                (schedule_id, fire_time, region, instance, outcome, reason, detail, job_id, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (schedule_id, fire_time, region, instance) DO NOTHING",
        )
        .bind(r.schedule_id)
        .bind(ms(r.fire_time))
        .bind(region)
        .bind(instance)
        .bind(r.outcome.as_str())
        .bind(r.reason.map(|x| x.as_str()))
        .bind(&r.detail)
        .bind(r.job_id)
        .bind(ms(r.now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn schedule_run_list(
        &self,
        schedule_id: ScheduleId,
        limit: u32,
    ) -> Result<Vec<ScheduleRun>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, schedule_id, fire_time, region, instance, outcome, reason, detail, job_id,
                    recorded_at
             FROM schedule_runs WHERE schedule_id = ?1 ORDER BY id DESC LIMIT ?2",
        )
        .bind(schedule_id)
        .bind(limit as i64)
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
            "SELECT id FROM jobs
             WHERE schedule_id = ?1 AND region = ?2 AND instance = ?3
               AND state IN ('queued', 'submitting', 'running')
               AND fire_time IS NOT ?4
             ORDER BY id LIMIT 1",
        )
        .bind(schedule_id)
        .bind(&key.region)
        .bind(&key.instance)
        .bind(ms(fire_time))
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }
}
