//! SQL text and small helpers shared by both backends: the column lists (so a `SELECT`
//! and a `RETURNING` always decode the same way) and error classification.

/// Every column of `jobs` that [`crate::model::Job`] is decoded from, in one place.
pub(crate) const JOB_COLUMNS: &str = "id, region, instance, bak_set_type, bak_set_id, \
    bak_set_size, download_point_in_time, format, target_type, target_bucket, \
    target_oss_region, target_path, cluster_name, is_cluster, admin_database, \
    primary_key_type_only, use_zstd, is_physical, state, source, priority, run_at, attempts, \
    max_attempts, lease_owner, lease_expires_at, needs_reconcile, remote_task_id, \
    remote_status, remote_progress, export_data_size, import_data_size, backup_set_time, \
    download_url, download_url_expires_at, progress_anchor_at, progress_anchor_ppm, next_poll_at, polls, remote_retries, \
    last_error_code, last_error_message, last_error_request_id, schedule_id, fire_time, \
    idempotency_key, created_at, started_at, finished_at, updated_at, sink";

/// Columns of `job_events`.
pub(crate) const EVENT_COLUMNS: &str = "id, job_id, from_state, to_state, at, reason, request_id";

/// The public columns of `instances` (the claim bookkeeping stays internal).
pub(crate) const INSTANCE_COLUMNS: &str = "region, instance, blocked, blocked_until, \
    blocked_reason, blocking_task_id, blocked_at, last_success_at, tags";

/// `job_delete`: the job's state, then the delete, which only a finished job allows.
pub(crate) const JOB_STATE_SQL: &str = "SELECT state FROM jobs WHERE id = $1";
pub(crate) const JOB_DELETE_SQL: &str =
    "DELETE FROM jobs WHERE id = $1 AND state IN ('succeeded', 'failed', 'cancelled')";

/// How a backend writes the bind parameters of the long multi-row statements built at run
/// time (batch enqueue, schedule history and advances). SQLite finds a *named* parameter
/// (`$n`, `?n`) by walking the list of all of them, so binding thousands costs quadratic
/// time (it was 45 % of a 10k-schedule fire pass at batch 1,000); anonymous `?` parameters
/// are bound by position for free. PostgreSQL only knows `$n`. Either way the parameters
/// are written and bound in order, each once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Params {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?, ?, …` (SQLite).
    Anonymous,
}

impl Params {
    /// Parameter `n` (1-based).
    pub(crate) fn nth(self, n: usize) -> String {
        match self {
            Params::Numbered => format!("${n}"),
            Params::Anonymous => "?".to_string(),
        }
    }

    /// `count` parameters from `first` on, comma-separated.
    pub(crate) fn list(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| self.nth(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Name of the partial unique index behind invariant 1.
pub(crate) const ONE_ACTIVE_INDEX: &str = "jobs_one_active_per_instance";

/// Page size when the filter asks for 0, and the most one page returns.
pub(crate) const DEFAULT_PAGE: u32 = 100;
pub(crate) const MAX_PAGE: u32 = 1000;

pub(crate) fn page_limit(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// When a lease taken at `now` for `lease` runs out (saturating).
pub(crate) fn lease_until(
    now: chrono::DateTime<chrono::Utc>,
    lease: std::time::Duration,
) -> chrono::DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

/// True for a unique violation: a lost race (same idempotency key, same instance
/// claimed twice), which callers turn into "someone else has it" rather than an error.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// True for a PostgreSQL deadlock or serialization failure: a lost race in a claim.
pub(crate) fn is_lost_race(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.kind() == sqlx::error::ErrorKind::UniqueViolation
                || matches!(db.code().as_deref(), Some("40P01") | Some("40001"))
        }
        _ => false,
    }
}

/// The tags column holds a JSON array of strings.
pub(crate) fn tags_to_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_string())
}

pub(crate) fn tags_from_json(text: &str) -> Result<Vec<String>, super::StoreError> {
    serde_json::from_str(text)
        .map_err(|e| super::StoreError::Corrupt(format!("instances.tags: {e}")))
}

/// `(text, count)` rows of a `GROUP BY` into typed pairs; `column` names the bad value.
pub(crate) fn parse_counts<T: std::str::FromStr>(
    rows: Vec<(String, i64)>,
    column: &str,
) -> Result<Vec<(T, i64)>, super::StoreError>
where
    T::Err: std::fmt::Display,
{
    rows.into_iter()
        .map(|(s, n)| {
            s.parse::<T>()
                .map(|v| (v, n))
                .map_err(|e| super::StoreError::Corrupt(format!("{column}: {e}")))
        })
        .collect()
}

/// The row decoders (`parse`, `job`, `event`, `instance`) for one backend's row type.
/// Both backends share the column names and the model mapping; only how a time column is
/// read differs, so each backend's `rows.rs` defines `get_time`/`get_opt_time` and then
/// invokes this once.
macro_rules! row_decoders {
    ($row:ty) => {
        fn parse<T: std::str::FromStr<Err = crate::model::ValidationError>>(
            row: &$row,
            column: &str,
        ) -> Result<T, StoreError> {
            let text: String = row.try_get(column)?;
            text.parse()
                .map_err(|e| StoreError::Corrupt(format!("jobs.{column}: {e}")))
        }

        /// The id of a jobs row, which is all a quarantine needs.
        pub(crate) fn job_id(row: &$row) -> Result<crate::model::JobId, sqlx::Error> {
            row.try_get("id")
        }

        pub(crate) fn job(row: &$row) -> Result<Job, StoreError> {
            let request = DownloadRequest {
                region: row.try_get("region")?,
                instance: row.try_get("instance")?,
                bak_set_type: parse(row, "bak_set_type")?,
                bak_set_id: row.try_get("bak_set_id")?,
                bak_set_size: row.try_get("bak_set_size")?,
                download_point_in_time: row.try_get("download_point_in_time")?,
                format: parse(row, "format")?,
                target_type: parse(row, "target_type")?,
                target_bucket: row.try_get("target_bucket")?,
                target_oss_region: row.try_get("target_oss_region")?,
                target_path: row.try_get("target_path")?,
                cluster_name: row.try_get("cluster_name")?,
                is_cluster: row.try_get("is_cluster")?,
                admin_database: row.try_get("admin_database")?,
                primary_key_type_only: row.try_get("primary_key_type_only")?,
                use_zstd: row.try_get("use_zstd")?,
                is_physical: row.try_get("is_physical")?,
                sink: row.try_get("sink")?,
            };
            let last_error = match row.try_get::<Option<String>, _>("last_error_code")? {
                Some(code) => Some(JobError {
                    code,
                    message: row
                        .try_get::<Option<String>, _>("last_error_message")?
                        .unwrap_or_default(),
                    request_id: row.try_get("last_error_request_id")?,
                }),
                None => None,
            };
            Ok(Job {
                id: row.try_get("id")?,
                request,
                state: parse(row, "state")?,
                source: parse(row, "source")?,
                priority: row.try_get("priority")?,
                run_at: get_time(row, "run_at")?,
                attempts: row.try_get("attempts")?,
                max_attempts: row.try_get("max_attempts")?,
                lease_owner: row.try_get("lease_owner")?,
                lease_expires_at: get_opt_time(row, "lease_expires_at")?,
                needs_reconcile: row.try_get("needs_reconcile")?,
                remote: RemoteStatus {
                    task_id: row.try_get("remote_task_id")?,
                    status: row.try_get("remote_status")?,
                    progress: row.try_get("remote_progress")?,
                    export_data_size: row.try_get("export_data_size")?,
                    import_data_size: row.try_get("import_data_size")?,
                    backup_set_time: row.try_get("backup_set_time")?,
                    download_url: row.try_get("download_url")?,
                    download_url_expires_at: get_opt_time(row, "download_url_expires_at")?,
                    progress_anchor_at: get_opt_time(row, "progress_anchor_at")?,
                    progress_anchor_ppm: row.try_get("progress_anchor_ppm")?,
                },
                next_poll_at: get_opt_time(row, "next_poll_at")?,
                polls: row.try_get("polls")?,
                remote_retries: row.try_get("remote_retries")?,
                last_error,
                schedule_id: row.try_get("schedule_id")?,
                fire_time: get_opt_time(row, "fire_time")?,
                idempotency_key: row.try_get("idempotency_key")?,
                created_at: get_time(row, "created_at")?,
                started_at: get_opt_time(row, "started_at")?,
                finished_at: get_opt_time(row, "finished_at")?,
                updated_at: get_time(row, "updated_at")?,
            })
        }

        pub(crate) fn event(row: &$row) -> Result<JobEvent, StoreError> {
            let from: Option<String> = row.try_get("from_state")?;
            Ok(JobEvent {
                id: row.try_get("id")?,
                job_id: row.try_get("job_id")?,
                from_state: from
                    .map(|s| s.parse::<JobState>())
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("job_events.from_state: {e}")))?,
                to_state: parse(row, "to_state")?,
                at: get_time(row, "at")?,
                reason: row.try_get("reason")?,
                request_id: row.try_get("request_id")?,
            })
        }

        pub(crate) fn instance(row: &$row) -> Result<Instance, StoreError> {
            let tags: String = row.try_get("tags")?;
            Ok(Instance {
                key: InstanceKey::new(
                    row.try_get::<String, _>("region")?,
                    row.try_get::<String, _>("instance")?,
                ),
                blocked: row.try_get("blocked")?,
                blocked_until: get_opt_time(row, "blocked_until")?,
                blocked_reason: row.try_get("blocked_reason")?,
                blocking_task_id: row.try_get("blocking_task_id")?,
                blocked_at: get_opt_time(row, "blocked_at")?,
                last_success_at: get_opt_time(row, "last_success_at")?,
                tags: tags_from_json(&tags)?,
            })
        }
    };
}
pub(crate) use row_decoders;

/// The error code of a job the store quarantined: a row it could not read (a value that
/// slipped past the CHECK constraints), marked `failed` so nothing else stops on it.
pub const QUARANTINED: &str = "Store.Quarantined";

/// Every rule the database enforces on the SQL interface: constraint (or trigger) name,
/// the field it holds, and the rule in words. docs/sql-interface.md lists the same names
/// (a test holds the two together, and holds every constraint of the migrations here).
pub const RULES: &[(&str, &str, &str)] = &[
    ("jobs_region_required", "region", "is required"),
    ("jobs_instance_required", "instance", "is required"),
    ("jobs_bak_set_type_valid", "bak_set_type", "must be full or pitr"),
    ("jobs_full_requires_bak_set_id", "bak_set_id", "is required when bak_set_type is full"),
    ("jobs_pitr_requires_point_in_time", "download_point_in_time", "is required when bak_set_type is pitr"),
    ("jobs_format_valid", "format", "must be CSV, SQL or Parquet"),
    ("jobs_target_type_valid", "target_type", "must be OSS or URL"),
    ("jobs_oss_requires_bucket", "target_bucket", "is required when target_type is OSS"),
    ("jobs_oss_requires_path", "target_path", "is required when target_type is OSS"),
    ("jobs_oss_requires_bucket_region", "target_oss_region", "is required when target_type is OSS"),
    ("jobs_state_valid", "state", "must be queued, submitting, running, succeeded, failed or cancelled"),
    ("jobs_source_valid", "source", "must be api, cli, sql or schedule"),
    ("jobs_is_physical_boolean", "is_physical", "must be a boolean (SQLite: 0 or 1)"),
    ("jobs_needs_reconcile_boolean", "needs_reconcile", "must be a boolean (SQLite: 0 or 1)"),
    ("jobs_fire_time_with_schedule", "fire_time", "needs a schedule_id"),
    ("jobs_idempotency_key_unique", "idempotency_key", "must be unique"),
    ("jobs_text_columns_text", "jobs", "text columns must hold text (SQLite)"),
    ("jobs_run_at_time", "run_at", TIME_RULE),
    ("jobs_created_at_time", "created_at", TIME_RULE),
    ("jobs_updated_at_time", "updated_at", TIME_RULE),
    ("jobs_lease_expires_at_time", "lease_expires_at", TIME_RULE),
    ("jobs_download_url_expires_at_time", "download_url_expires_at", TIME_RULE),
    ("jobs_next_poll_at_time", "next_poll_at", TIME_RULE),
    ("jobs_fire_time_time", "fire_time", TIME_RULE),
    ("jobs_started_at_time", "started_at", TIME_RULE),
    ("jobs_finished_at_time", "finished_at", TIME_RULE),
    ("jobs_priority_range", "priority", "must be an integer between -1000 and 1000"),
    ("jobs_max_attempts_range", "max_attempts", "must be an integer between 1 and 100"),
    ("jobs_attempts_counter", "attempts", "must be an integer, at least 0"),
    ("jobs_polls_counter", "polls", "must be an integer, at least 0"),
    ("jobs_remote_retries_counter", "remote_retries", "must be an integer, at least 0"),
    ("jobs_progress_anchor_at_time", "progress_anchor_at", TIME_RULE),
    ("jobs_progress_anchor_ppm_range", "progress_anchor_ppm", "must be an integer between 0 and 1000000 (parts per million of the task done)"),
    ("jobs_bak_set_size_bytes", "bak_set_size", "must be an integer number of bytes, at least 0"),
    ("jobs_export_data_size_bytes", "export_data_size", "must be an integer number of bytes, at least 0"),
    ("jobs_import_data_size_bytes", "import_data_size", "must be an integer number of bytes, at least 0"),
    ("jobs_download_point_in_time_integer", "download_point_in_time", "must be an integer (UNIX milliseconds)"),
    ("jobs_backup_set_time_integer", "backup_set_time", "must be an integer (UNIX milliseconds)"),
    ("jobs_schedule_id_integer", "schedule_id", "must be an integer"),
    ("jobs_submitting_has_lease", "state", "a submitting job must hold a lease (lease_owner and lease_expires_at)"),
    ("jobs_running_has_task", "state", "a running job must have a remote_task_id"),
    ("jobs_point_in_time_ms", "download_point_in_time", "must be UNIX milliseconds between 1000000000000 (2001-09-09) and 253402300799999 (9999-12-31); a smaller value can only be seconds"),
    ("jobs_region_valid_id", "region", IDENTIFIER_RULE),
    ("jobs_instance_valid_id", "instance", IDENTIFIER_RULE),
    ("jobs_bak_set_id_valid_id", "bak_set_id", IDENTIFIER_RULE),
    ("jobs_target_oss_region_valid_id", "target_oss_region", IDENTIFIER_RULE),
    ("jobs_cluster_name_valid_id", "cluster_name", IDENTIFIER_RULE),
    ("jobs_target_bucket_name", "target_bucket", "must be an OSS bucket name: 3-63 lowercase letters, digits or '-', starting and ending with a letter or digit"),
    ("jobs_target_path_safe", "target_path", "must be at most 1024 characters, with no control characters and no '..' segment"),
    ("jobs_admin_database_name", "admin_database", "must be 1-64 characters, none of / \\ . space \" $ and no control characters"),
    ("jobs_is_cluster_flag", "is_cluster", "must be true or false"),
    ("jobs_primary_key_type_only_flag", "primary_key_type_only", "must be true or false"),
    ("jobs_use_zstd_flag", "use_zstd", "must be true or false"),
    ("jobs_idempotency_key_valid", "idempotency_key", "must be 1-255 visible ASCII characters"),
    ("jobs_sink_url_only", "sink", "only with target_type URL, and not empty (docs/archives.md)"),
    ("jobs_insert_queued_only", "state", "a new job must be queued, with no lease, attempts, polls or remote task: leave state, lease_*, attempts, polls, remote_*, next_poll_at, started_at and finished_at to the service"),
    ("instances_tags_json_array", "tags", "must be a JSON array of strings"),
    ("instances_blocked_boolean", "blocked", "must be a boolean (SQLite: 0 or 1)"),
];

const TIME_RULE: &str =
    "must be a time between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z (SQLite: an INTEGER of UNIX milliseconds)";
const IDENTIFIER_RULE: &str = "must be 1-128 characters of letters, digits, '-', '_' or '.'";

/// The rule a refused write broke, when the database refused it by one of [`RULES`]: a
/// CHECK violation (PostgreSQL 23514, SQLite `CHECK constraint failed: NAME`) or the
/// insert rule's trigger (`NAME: …`).
pub(crate) fn refused_by_rule(e: &sqlx::Error) -> Option<crate::model::ValidationError> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let name = db.constraint().map(str::to_string).or_else(|| {
        let m = db.message();
        m.strip_prefix("CHECK constraint failed: ")
            .map(|n| n.trim().to_string())
            .or_else(|| m.split_once(':').map(|(n, _)| n.trim().to_string()))
    })?;
    let (_, field, rule) = RULES.iter().find(|(n, _, _)| *n == name)?;
    if db.kind() == sqlx::error::ErrorKind::UniqueViolation {
        return None; // a lost race, handled by the callers
    }
    Some(crate::model::ValidationError::new(
        *field,
        format!("{rule} (database rule {name})"),
    ))
}

/// `readable` (decode rows, quarantining each that cannot be read) and `fetch_job` (one
/// job by id, quarantined and read again once if it cannot be read) for one backend's
/// connection and row types; each backend's `quarantine` module supplies the repair.
macro_rules! quarantine_readers {
    ($conn:ty, $row:ty) => {
        /// Decode `found`; each row that cannot be read is quarantined and left out.
        async fn readable(
            conn: &mut $conn,
            found: &[$row],
            now: DateTime<Utc>,
        ) -> Result<(Vec<Job>, usize), StoreError> {
            let (jobs, bad) = super::sql::split_readable(found, rows::job, rows::job_id)?;
            for (id, why) in &bad {
                super::sql::report_quarantine(
                    quarantine::quarantine(conn, *id, why, now).await,
                    *id,
                    why,
                );
            }
            Ok((jobs, bad.len()))
        }

        async fn fetch_job(
            conn: &mut $conn,
            id: JobId,
            now: DateTime<Utc>,
        ) -> Result<Option<Job>, StoreError> {
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
            // A row that cannot be read is quarantined (repaired) and read again once.
            for _ in 0..2 {
                let found = sqlx::query(&sql).bind(id).fetch_all(&mut *conn).await?;
                let (mut jobs, bad) = readable(conn, &found, now).await?;
                if bad == 0 {
                    return Ok(jobs.pop());
                }
            }
            Err(StoreError::Corrupt(format!(
                "job {id}: unreadable even after quarantine"
            )))
        }
    };
}
pub(crate) use quarantine_readers;

/// Decoded jobs, and the rows that could not be decoded (id and why) for quarantine.
pub(crate) type Split = (Vec<crate::model::Job>, Vec<(crate::model::JobId, String)>);

/// Decode every row; one that fails does not fail the others.
pub(crate) fn split_readable<R>(
    rows: &[R],
    decode: fn(&R) -> Result<crate::model::Job, super::StoreError>,
    id: fn(&R) -> Result<crate::model::JobId, sqlx::Error>,
) -> Result<Split, super::StoreError> {
    let mut jobs = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for row in rows {
        match decode(row) {
            Ok(job) => jobs.push(job),
            Err(e) => bad.push((id(row)?, e.to_string())),
        }
    }
    Ok((jobs, bad))
}

/// Log and count a quarantine; a quarantine that itself failed is logged, not raised, so
/// one bad row never stops a claim or a listing of the others.
pub(crate) fn report_quarantine(
    result: Result<(), super::StoreError>,
    id: crate::model::JobId,
    why: &str,
) {
    match result {
        Ok(()) => {
            crate::telemetry::metrics::job_quarantined();
            tracing::error!(
                job.id = id,
                reason = why,
                "unreadable job row quarantined as failed ({QUARANTINED})"
            );
        }
        Err(e) => {
            tracing::error!(job.id = id, reason = why, error = %e, "unreadable job row could not be quarantined; skipping it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RULES;

    const MIGRATIONS: &[&str] = &[
        include_str!("../../migrations/sqlite/0001_queue.sql"),
        include_str!("../../migrations/sqlite/0005_hardening.sql"),
        include_str!("../../migrations/postgres/0001_queue.sql"),
        include_str!("../../migrations/postgres/0005_hardening.sql"),
        include_str!("../../migrations/sqlite/0007_archives.sql"),
        include_str!("../../migrations/postgres/0007_archives.sql"),
        include_str!("../../migrations/postgres/0009_statement_bookkeeping.sql"),
        include_str!("../../migrations/sqlite/0010_progress_anchor.sql"),
        include_str!("../../migrations/postgres/0010_progress_anchor.sql"),
    ];

    /// Names after `marker` in `sql`, up to the first character that cannot be in one.
    fn names_after<'a>(sql: &'a str, marker: &str) -> Vec<&'a str> {
        sql.match_indices(marker)
            .map(|(i, _)| {
                let rest = &sql[i + marker.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect()
    }

    #[test]
    fn every_rule_of_the_database_is_named_here_and_documented() {
        let doc = include_str!("../../docs/sql-interface.md");
        let dropped = [
            "jobs_max_attempts_positive",
            "jobs_attempts_not_negative",
            "jobs_bak_set_size_not_negative",
        ];
        for sql in MIGRATIONS {
            for marker in ["CONSTRAINT ", "RAISE(ABORT, '", "CONSTRAINT = '"] {
                for name in names_after(sql, marker) {
                    // The archives table is the fetcher's, not the SQL interface.
                    if name.is_empty() || dropped.contains(&name) || name.starts_with("archives_") {
                        continue;
                    }
                    assert!(
                        RULES.iter().any(|(n, _, _)| *n == name),
                        "{name} is enforced by a migration but missing from sql::RULES"
                    );
                }
            }
        }
        for (name, field, _) in RULES {
            assert!(
                MIGRATIONS.iter().any(|m| m.contains(name)),
                "{name} is in sql::RULES but no migration enforces it"
            );
            assert!(
                doc.contains(name),
                "docs/sql-interface.md does not list {name} ({field})"
            );
        }
    }
}
