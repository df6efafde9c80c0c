-- Hardening (docs/sql-interface.md, "What the database refuses"): the database refuses
-- every row the service could not read, and a SQL INSERT may only create a fresh queued
-- job. The bounds are those of src/model/bounds.rs; the integration test `store::bounds`
-- inserts each boundary and one past it on both backends.
--
-- Two kinds of rule:
-- * readability, on every row: column types (SQLite stores whatever it is given, so each
--   INTEGER column is held to typeof() = 'integer'), times in 1970..9999 as UNIX ms,
--   counters and priorities in range, and the state invariants (a `submitting` job holds
--   a lease, a `running` job has a task id);
-- * the request rules of DownloadRequest::validate, on every job that can still be sent
--   to the cloud (not succeeded, failed or cancelled): history is not rewritten.
--
-- SQLite cannot add a CHECK to an existing table, so `jobs` is rebuilt. Rows stored
-- before this migration that break a rule are quarantined: marked `failed` with
-- the error code Store.Quarantined, their unreadable values replaced (times by now,
-- counters by 0, out-of-range numbers clamped) and the original values kept in the error
-- message and an event. `job_events` is copied aside and back, because dropping `jobs`
-- with foreign keys on would cascade into it.

-- 1. The new table, with every rule.
CREATE TABLE jobs_new (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    region                   TEXT,
    instance                 TEXT,
    bak_set_type             TEXT,
    bak_set_id               TEXT,
    bak_set_size             INTEGER,
    download_point_in_time   INTEGER,
    format                   TEXT,
    target_type              TEXT,
    target_bucket            TEXT,
    target_oss_region        TEXT,
    target_path              TEXT,
    cluster_name             TEXT,
    is_cluster               TEXT,
    admin_database           TEXT,
    primary_key_type_only    TEXT,
    use_zstd                 TEXT,
    is_physical              INTEGER,
    state                    TEXT    NOT NULL DEFAULT 'queued',
    source                   TEXT    NOT NULL DEFAULT 'sql',
    priority                 INTEGER NOT NULL DEFAULT 0,
    run_at                   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    attempts                 INTEGER NOT NULL DEFAULT 0,
    max_attempts             INTEGER NOT NULL DEFAULT 5,
    lease_owner              TEXT,
    lease_expires_at         INTEGER,
    needs_reconcile          INTEGER NOT NULL DEFAULT 0,
    remote_task_id           TEXT,
    remote_status            TEXT,
    remote_progress          TEXT,
    export_data_size         INTEGER,
    import_data_size         INTEGER,
    backup_set_time          INTEGER,
    download_url             TEXT,
    download_url_expires_at  INTEGER,
    next_poll_at             INTEGER,
    polls                    INTEGER NOT NULL DEFAULT 0,
    remote_retries           INTEGER NOT NULL DEFAULT 0,
    last_error_code          TEXT,
    last_error_message       TEXT,
    last_error_request_id    TEXT,
    schedule_id              INTEGER,
    fire_time                INTEGER,
    idempotency_key          TEXT,
    created_at               INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    started_at               INTEGER,
    finished_at              INTEGER,
    updated_at               INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),

    -- The CreateDownload rules of migration 0001.
    CONSTRAINT jobs_region_required CHECK (length(trim(coalesce(region, ''))) > 0),
    CONSTRAINT jobs_instance_required CHECK (length(trim(coalesce(instance, ''))) > 0),
    CONSTRAINT jobs_bak_set_type_valid CHECK (bak_set_type IS NOT NULL AND bak_set_type IN ('full', 'pitr')),
    CONSTRAINT jobs_full_requires_bak_set_id
        CHECK (bak_set_type <> 'full' OR length(trim(coalesce(bak_set_id, ''))) > 0),
    CONSTRAINT jobs_pitr_requires_point_in_time
        CHECK (bak_set_type <> 'pitr' OR coalesce(download_point_in_time, 0) > 0),
    CONSTRAINT jobs_format_valid CHECK (format IS NOT NULL AND format IN ('CSV', 'SQL', 'Parquet')),
    CONSTRAINT jobs_target_type_valid CHECK (target_type IS NOT NULL AND target_type IN ('OSS', 'URL')),
    CONSTRAINT jobs_oss_requires_bucket
        CHECK (target_type <> 'OSS' OR length(trim(coalesce(target_bucket, ''))) > 0),
    CONSTRAINT jobs_oss_requires_path
        CHECK (target_type <> 'OSS' OR length(trim(coalesce(target_path, ''))) > 0),
    CONSTRAINT jobs_oss_requires_bucket_region
        CHECK (target_type <> 'OSS' OR length(trim(coalesce(target_oss_region, ''))) > 0),
    CONSTRAINT jobs_state_valid
        CHECK (state IN ('queued', 'submitting', 'running', 'succeeded', 'failed', 'cancelled')),
    CONSTRAINT jobs_source_valid CHECK (source IN ('api', 'cli', 'sql', 'schedule')),
    CONSTRAINT jobs_is_physical_boolean CHECK (is_physical IS NULL OR is_physical IN (0, 1)),
    CONSTRAINT jobs_needs_reconcile_boolean CHECK (needs_reconcile IN (0, 1)),
    CONSTRAINT jobs_fire_time_with_schedule CHECK (fire_time IS NULL OR schedule_id IS NOT NULL),
    CONSTRAINT jobs_idempotency_key_unique UNIQUE (idempotency_key),

    -- Readability: types (every INTEGER column holds an integer), text columns hold text.
    CONSTRAINT jobs_text_columns_text CHECK (
        typeof(region) = 'text' AND typeof(instance) = 'text'
        AND typeof(bak_set_id) IN ('null', 'text') AND typeof(target_bucket) IN ('null', 'text')
        AND typeof(target_oss_region) IN ('null', 'text') AND typeof(target_path) IN ('null', 'text')
        AND typeof(cluster_name) IN ('null', 'text') AND typeof(is_cluster) IN ('null', 'text')
        AND typeof(admin_database) IN ('null', 'text')
        AND typeof(primary_key_type_only) IN ('null', 'text') AND typeof(use_zstd) IN ('null', 'text')
        AND typeof(lease_owner) IN ('null', 'text') AND typeof(remote_task_id) IN ('null', 'text')
        AND typeof(remote_status) IN ('null', 'text') AND typeof(remote_progress) IN ('null', 'text')
        AND typeof(download_url) IN ('null', 'text') AND typeof(last_error_code) IN ('null', 'text')
        AND typeof(last_error_message) IN ('null', 'text')
        AND typeof(last_error_request_id) IN ('null', 'text')
        AND typeof(idempotency_key) IN ('null', 'text')),
    -- Readability: times are integer UNIX ms in 1970-01-01 .. 9999-12-31 (bounds::TIME_MS).
    CONSTRAINT jobs_run_at_time CHECK (typeof(run_at) = 'integer' AND run_at BETWEEN 0 AND 253402300799999),
    CONSTRAINT jobs_created_at_time CHECK (typeof(created_at) = 'integer' AND created_at BETWEEN 0 AND 253402300799999),
    CONSTRAINT jobs_updated_at_time CHECK (typeof(updated_at) = 'integer' AND updated_at BETWEEN 0 AND 253402300799999),
    CONSTRAINT jobs_lease_expires_at_time CHECK (lease_expires_at IS NULL OR (typeof(lease_expires_at) = 'integer' AND lease_expires_at BETWEEN 0 AND 253402300799999)),
    CONSTRAINT jobs_download_url_expires_at_time CHECK (download_url_expires_at IS NULL OR (typeof(download_url_expires_at) = 'integer' AND download_url_expires_at BETWEEN 0 AND 253402300799999)),
    CONSTRAINT jobs_next_poll_at_time CHECK (next_poll_at IS NULL OR (typeof(next_poll_at) = 'integer' AND next_poll_at BETWEEN 0 AND 253402300799999)),
    CONSTRAINT jobs_fire_time_time CHECK (fire_time IS NULL OR (typeof(fire_time) = 'integer' AND fire_time BETWEEN 0 AND 253402300799999)),
    CONSTRAINT jobs_started_at_time CHECK (started_at IS NULL OR (typeof(started_at) = 'integer' AND started_at BETWEEN 0 AND 253402300799999)),
    CONSTRAINT jobs_finished_at_time CHECK (finished_at IS NULL OR (typeof(finished_at) = 'integer' AND finished_at BETWEEN 0 AND 253402300799999)),
    -- Readability: numbers in the ranges the model and the API use (bounds::PRIORITY, …).
    CONSTRAINT jobs_priority_range CHECK (typeof(priority) = 'integer' AND priority BETWEEN -1000 AND 1000),
    CONSTRAINT jobs_max_attempts_range CHECK (typeof(max_attempts) = 'integer' AND max_attempts BETWEEN 1 AND 100),
    CONSTRAINT jobs_attempts_counter CHECK (typeof(attempts) = 'integer' AND attempts BETWEEN 0 AND 2147483647),
    CONSTRAINT jobs_polls_counter CHECK (typeof(polls) = 'integer' AND polls BETWEEN 0 AND 2147483647),
    CONSTRAINT jobs_remote_retries_counter CHECK (typeof(remote_retries) = 'integer' AND remote_retries BETWEEN 0 AND 2147483647),
    CONSTRAINT jobs_bak_set_size_bytes CHECK (bak_set_size IS NULL OR (typeof(bak_set_size) = 'integer' AND bak_set_size >= 0)),
    CONSTRAINT jobs_export_data_size_bytes CHECK (export_data_size IS NULL OR (typeof(export_data_size) = 'integer' AND export_data_size >= 0)),
    CONSTRAINT jobs_import_data_size_bytes CHECK (import_data_size IS NULL OR (typeof(import_data_size) = 'integer' AND import_data_size >= 0)),
    CONSTRAINT jobs_download_point_in_time_integer CHECK (download_point_in_time IS NULL OR typeof(download_point_in_time) = 'integer'),
    CONSTRAINT jobs_backup_set_time_integer CHECK (backup_set_time IS NULL OR typeof(backup_set_time) = 'integer'),
    CONSTRAINT jobs_schedule_id_integer CHECK (schedule_id IS NULL OR typeof(schedule_id) = 'integer'),
    -- Readability: the state invariants the worker relies on.
    CONSTRAINT jobs_submitting_has_lease
        CHECK (state <> 'submitting' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_running_has_task CHECK (state <> 'running' OR remote_task_id IS NOT NULL),

    -- The request rules (DownloadRequest::validate) for every job that can still be sent.
    CONSTRAINT jobs_point_in_time_ms CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR download_point_in_time IS NULL
        OR download_point_in_time BETWEEN 1000000000000 AND 253402300799999),
    CONSTRAINT jobs_region_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR (length(region) <= 128 AND NOT region GLOB '*[^A-Za-z0-9._-]*')),
    CONSTRAINT jobs_instance_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR (length(instance) <= 128 AND NOT instance GLOB '*[^A-Za-z0-9._-]*')),
    CONSTRAINT jobs_bak_set_id_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR bak_set_id IS NULL
        OR (length(bak_set_id) BETWEEN 1 AND 128 AND NOT bak_set_id GLOB '*[^A-Za-z0-9._-]*')),
    CONSTRAINT jobs_target_oss_region_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR target_oss_region IS NULL
        OR (length(target_oss_region) BETWEEN 1 AND 128 AND NOT target_oss_region GLOB '*[^A-Za-z0-9._-]*')),
    CONSTRAINT jobs_cluster_name_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR cluster_name IS NULL
        OR (length(cluster_name) BETWEEN 1 AND 128 AND NOT cluster_name GLOB '*[^A-Za-z0-9._-]*')),
    CONSTRAINT jobs_target_bucket_name CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR target_bucket IS NULL
        OR (length(target_bucket) BETWEEN 3 AND 63 AND NOT target_bucket GLOB '*[^a-z0-9-]*'
            AND target_bucket GLOB '[a-z0-9]*[a-z0-9]')),
    CONSTRAINT jobs_target_path_safe CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR target_path IS NULL
        OR (length(target_path) <= 1024
            AND NOT (target_path = '..' OR target_path LIKE '../%' OR target_path LIKE '%/../%'
                     OR target_path LIKE '%/..')
            AND NOT target_path GLOB ('*[' || char(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127,
                128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159) || ']*'))),
    CONSTRAINT jobs_admin_database_name CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR admin_database IS NULL
        OR (length(admin_database) BETWEEN 1 AND 64
            AND NOT admin_database GLOB ('*[/\. "$' || char(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127,
                128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159)
                || ']*'))),
    CONSTRAINT jobs_is_cluster_flag CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR is_cluster IS NULL OR is_cluster IN ('true', 'false')),
    CONSTRAINT jobs_primary_key_type_only_flag CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR primary_key_type_only IS NULL OR primary_key_type_only IN ('true', 'false')),
    CONSTRAINT jobs_use_zstd_flag CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR use_zstd IS NULL OR use_zstd IN ('true', 'false')),
    CONSTRAINT jobs_idempotency_key_valid CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR idempotency_key IS NULL
        OR (length(idempotency_key) BETWEEN 1 AND 255
            AND NOT idempotency_key GLOB ('*[^!-~]*')))
);

-- 2. Copy every row that keeps the rules (OR IGNORE skips a row that breaks a CHECK).
INSERT OR IGNORE INTO jobs_new (id, region, instance, bak_set_type, bak_set_id, bak_set_size,
    download_point_in_time, format, target_type, target_bucket, target_oss_region, target_path,
    cluster_name, is_cluster, admin_database, primary_key_type_only, use_zstd, is_physical,
    state, source, priority, run_at, attempts, max_attempts, lease_owner, lease_expires_at,
    needs_reconcile, remote_task_id, remote_status, remote_progress, export_data_size,
    import_data_size, backup_set_time, download_url, download_url_expires_at, next_poll_at,
    polls, remote_retries, last_error_code, last_error_message, last_error_request_id,
    schedule_id, fire_time, idempotency_key, created_at, started_at, finished_at, updated_at)
SELECT id, region, instance, bak_set_type, bak_set_id, bak_set_size,
    download_point_in_time, format, target_type, target_bucket, target_oss_region, target_path,
    cluster_name, is_cluster, admin_database, primary_key_type_only, use_zstd, is_physical,
    state, source, priority, run_at, attempts, max_attempts, lease_owner, lease_expires_at,
    needs_reconcile, remote_task_id, remote_status, remote_progress, export_data_size,
    import_data_size, backup_set_time, download_url, download_url_expires_at, next_poll_at,
    polls, remote_retries, last_error_code, last_error_message, last_error_request_id,
    schedule_id, fire_time, idempotency_key, created_at, started_at, finished_at, updated_at
FROM jobs ORDER BY id;

-- 3. Quarantine the rest: failed, Store.Quarantined, unreadable values replaced (times by
-- now, numbers clamped or cleared, non-text text columns cast to text), the original
-- values in the message and an event. Failed jobs are exempt from the request rules, so
-- the repaired row fits; a row that still does not stops this migration with the rule's
-- name (the INSERT below has no OR IGNORE): nothing is dropped silently.
CREATE TEMP TABLE quarantine AS
SELECT id, CASE WHEN state IN ('queued', 'submitting', 'running', 'succeeded', 'failed', 'cancelled')
                THEN state END AS from_state,
       'quarantined by migration 0005 (a value the service cannot read or send): '
       || 'state=' || quote(state) || ', run_at=' || quote(run_at)
       || ', created_at=' || quote(created_at) || ', updated_at=' || quote(updated_at)
       || ', priority=' || quote(priority) || ', max_attempts=' || quote(max_attempts)
       || ', attempts=' || quote(attempts) || ', lease_owner=' || quote(lease_owner)
       || ', remote_task_id=' || quote(remote_task_id)
       || ', download_point_in_time=' || quote(download_point_in_time)
       || ', bak_set_size=' || quote(bak_set_size) AS detail
FROM jobs WHERE id NOT IN (SELECT id FROM jobs_new);

UPDATE jobs SET
    state = 'failed',
    lease_owner = NULL,
    lease_expires_at = NULL,
    needs_reconcile = 0,
    run_at = CASE WHEN typeof(run_at) = 'integer' AND run_at BETWEEN 0 AND 253402300799999 THEN run_at
                  ELSE CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END,
    created_at = CASE WHEN typeof(created_at) = 'integer' AND created_at BETWEEN 0 AND 253402300799999 THEN created_at
                      ELSE CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) END,
    updated_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
    finished_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
    download_url_expires_at = CASE WHEN typeof(download_url_expires_at) = 'integer' AND download_url_expires_at BETWEEN 0 AND 253402300799999 THEN download_url_expires_at END,
    next_poll_at = CASE WHEN typeof(next_poll_at) = 'integer' AND next_poll_at BETWEEN 0 AND 253402300799999 THEN next_poll_at END,
    fire_time = CASE WHEN schedule_id IS NOT NULL AND typeof(fire_time) = 'integer' AND fire_time BETWEEN 0 AND 253402300799999 THEN fire_time END,
    started_at = CASE WHEN typeof(started_at) = 'integer' AND started_at BETWEEN 0 AND 253402300799999 THEN started_at END,
    priority = CASE WHEN typeof(priority) = 'integer' THEN max(-1000, min(1000, priority)) ELSE 0 END,
    max_attempts = CASE WHEN typeof(max_attempts) = 'integer' THEN max(1, min(100, max_attempts)) ELSE 5 END,
    attempts = CASE WHEN typeof(attempts) = 'integer' THEN max(0, min(2147483647, attempts)) ELSE 0 END,
    polls = CASE WHEN typeof(polls) = 'integer' THEN max(0, min(2147483647, polls)) ELSE 0 END,
    remote_retries = CASE WHEN typeof(remote_retries) = 'integer' THEN max(0, min(2147483647, remote_retries)) ELSE 0 END,
    bak_set_size = CASE WHEN typeof(bak_set_size) = 'integer' AND bak_set_size >= 0 THEN bak_set_size END,
    download_point_in_time = CASE WHEN typeof(download_point_in_time) = 'integer' THEN download_point_in_time END,
    export_data_size = CASE WHEN typeof(export_data_size) = 'integer' AND export_data_size >= 0 THEN export_data_size END,
    import_data_size = CASE WHEN typeof(import_data_size) = 'integer' AND import_data_size >= 0 THEN import_data_size END,
    backup_set_time = CASE WHEN typeof(backup_set_time) = 'integer' THEN backup_set_time END,
    schedule_id = CASE WHEN typeof(schedule_id) = 'integer' THEN schedule_id END,
    region = CAST(region AS TEXT),
    instance = CAST(instance AS TEXT),
    bak_set_id = CAST(bak_set_id AS TEXT),
    target_bucket = CAST(target_bucket AS TEXT),
    target_oss_region = CAST(target_oss_region AS TEXT),
    target_path = CAST(target_path AS TEXT),
    cluster_name = CAST(cluster_name AS TEXT),
    is_cluster = CAST(is_cluster AS TEXT),
    admin_database = CAST(admin_database AS TEXT),
    primary_key_type_only = CAST(primary_key_type_only AS TEXT),
    use_zstd = CAST(use_zstd AS TEXT),
    remote_task_id = CAST(remote_task_id AS TEXT),
    remote_status = CAST(remote_status AS TEXT),
    remote_progress = CAST(remote_progress AS TEXT),
    download_url = CAST(download_url AS TEXT),
    idempotency_key = CAST(idempotency_key AS TEXT),
    last_error_code = 'Store.Quarantined',
    last_error_message = (SELECT detail FROM quarantine q WHERE q.id = jobs.id),
    last_error_request_id = NULL
WHERE id IN (SELECT id FROM quarantine);

INSERT INTO jobs_new (id, region, instance, bak_set_type, bak_set_id, bak_set_size,
    download_point_in_time, format, target_type, target_bucket, target_oss_region, target_path,
    cluster_name, is_cluster, admin_database, primary_key_type_only, use_zstd, is_physical,
    state, source, priority, run_at, attempts, max_attempts, lease_owner, lease_expires_at,
    needs_reconcile, remote_task_id, remote_status, remote_progress, export_data_size,
    import_data_size, backup_set_time, download_url, download_url_expires_at, next_poll_at,
    polls, remote_retries, last_error_code, last_error_message, last_error_request_id,
    schedule_id, fire_time, idempotency_key, created_at, started_at, finished_at, updated_at)
SELECT id, region, instance, bak_set_type, bak_set_id, bak_set_size,
    download_point_in_time, format, target_type, target_bucket, target_oss_region, target_path,
    cluster_name, is_cluster, admin_database, primary_key_type_only, use_zstd, is_physical,
    state, source, priority, run_at, attempts, max_attempts, lease_owner, lease_expires_at,
    needs_reconcile, remote_task_id, remote_status, remote_progress, export_data_size,
    import_data_size, backup_set_time, download_url, download_url_expires_at, next_poll_at,
    polls, remote_retries, last_error_code, last_error_message, last_error_request_id,
    schedule_id, fire_time, idempotency_key, created_at, started_at, finished_at, updated_at
FROM jobs WHERE id IN (SELECT id FROM quarantine) ORDER BY id;

INSERT INTO job_events (job_id, from_state, to_state, at, reason)
SELECT id, from_state, 'failed', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), detail
FROM quarantine ORDER BY id;
DROP TABLE quarantine;

-- Keep the id sequences where they were (ids are never reused).
CREATE TEMP TABLE kept_sequence AS SELECT name, seq FROM sqlite_sequence WHERE name IN ('jobs', 'job_events');
CREATE TEMP TABLE kept_events AS SELECT id, job_id, from_state, to_state, at, reason, request_id FROM job_events;

DROP TABLE job_events;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;

CREATE TABLE job_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    from_state  TEXT,
    to_state    TEXT    NOT NULL,
    at          INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    reason      TEXT    NOT NULL DEFAULT '',
    request_id  TEXT
);
INSERT INTO job_events (id, job_id, from_state, to_state, at, reason, request_id)
    SELECT id, job_id, from_state, to_state, at, reason, request_id FROM kept_events ORDER BY id;
DROP TABLE kept_events;

DELETE FROM sqlite_sequence WHERE name IN ('jobs', 'job_events');
INSERT INTO sqlite_sequence (name, seq)
    SELECT k.name, max(k.seq, coalesce((SELECT max(id) FROM jobs WHERE k.name = 'jobs'), 0),
                           coalesce((SELECT max(id) FROM job_events WHERE k.name = 'job_events'), 0))
    FROM kept_sequence k;
DROP TABLE kept_sequence;

-- 4. Indexes and triggers of migration 0001, as they were.
CREATE UNIQUE INDEX jobs_one_active_per_instance
    ON jobs (region, instance) WHERE state IN ('submitting', 'running');
CREATE UNIQUE INDEX jobs_schedule_fire_unique
    ON jobs (schedule_id, fire_time, region, instance) WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_instance_queue
    ON jobs (region, instance, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_poll_due ON jobs (next_poll_at) WHERE state = 'running';
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE lease_owner IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX jobs_state_id ON jobs (state, id);
CREATE INDEX jobs_instance_id ON jobs (region, instance, id);
CREATE INDEX job_events_job ON job_events (job_id, id);

-- A SQL INSERT creates a fresh queued job: states, leases, attempts and remote state of
-- work in progress are the service's alone (a `submitting` row without a lease would hold
-- its instance forever; a `running` one without a task would wait out the missing-task
-- grace).
CREATE TRIGGER jobs_insert_queued_only BEFORE INSERT ON jobs
WHEN NEW.state IS NOT 'queued' OR NEW.lease_owner IS NOT NULL OR NEW.lease_expires_at IS NOT NULL
     OR NEW.needs_reconcile IS NOT 0 OR NEW.attempts IS NOT 0 OR NEW.polls IS NOT 0
     OR NEW.remote_retries IS NOT 0 OR NEW.remote_task_id IS NOT NULL
     OR NEW.remote_status IS NOT NULL OR NEW.download_url IS NOT NULL
     OR NEW.next_poll_at IS NOT NULL OR NEW.started_at IS NOT NULL OR NEW.finished_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'jobs_insert_queued_only: a new job must be queued, with no lease, attempts, polls or remote task; leave state, lease_*, attempts, polls, remote_*, next_poll_at, started_at and finished_at to the service');
END;

CREATE TRIGGER jobs_sync_instance_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_events (job_id, from_state, to_state, at, reason)
        VALUES (NEW.id, NULL, NEW.state, NEW.created_at, 'enqueued via ' || NEW.source);
    INSERT INTO instances (region, instance) VALUES (NEW.region, NEW.instance)
        ON CONFLICT (region, instance) DO NOTHING;
    UPDATE instances SET
        (head_job_id, head_priority, head_run_at) = (
            SELECT id, priority, run_at FROM jobs
            WHERE region = NEW.region AND instance = NEW.instance AND state = 'queued'
            ORDER BY priority DESC, run_at, id LIMIT 1),
        active_job_id = (
            SELECT id FROM jobs
            WHERE region = NEW.region AND instance = NEW.instance
              AND state IN ('submitting', 'running'))
    WHERE region = NEW.region AND instance = NEW.instance;
END;

CREATE TRIGGER jobs_sync_instance_update
AFTER UPDATE OF state, priority, run_at, region, instance ON jobs
BEGIN
    INSERT INTO instances (region, instance) VALUES (NEW.region, NEW.instance)
        ON CONFLICT (region, instance) DO NOTHING;
    UPDATE instances SET
        (head_job_id, head_priority, head_run_at) = (
            SELECT id, priority, run_at FROM jobs
            WHERE region = instances.region AND instance = instances.instance
              AND state = 'queued'
            ORDER BY priority DESC, run_at, id LIMIT 1),
        active_job_id = (
            SELECT id FROM jobs
            WHERE region = instances.region AND instance = instances.instance
              AND state IN ('submitting', 'running'))
    WHERE (region = NEW.region AND instance = NEW.instance)
       OR (region = OLD.region AND instance = OLD.instance);
END;

CREATE TRIGGER jobs_sync_instance_delete AFTER DELETE ON jobs
BEGIN
    UPDATE instances SET
        (head_job_id, head_priority, head_run_at) = (
            SELECT id, priority, run_at FROM jobs
            WHERE region = OLD.region AND instance = OLD.instance AND state = 'queued'
            ORDER BY priority DESC, run_at, id LIMIT 1),
        active_job_id = (
            SELECT id FROM jobs
            WHERE region = OLD.region AND instance = OLD.instance
              AND state IN ('submitting', 'running'))
    WHERE region = OLD.region AND instance = OLD.instance;
END;

-- The instances' bookkeeping after the quarantine above (a quarantined job may have been
-- some instance's head or active job).
UPDATE instances SET
    (head_job_id, head_priority, head_run_at) = (
        SELECT id, priority, run_at FROM jobs
        WHERE region = instances.region AND instance = instances.instance AND state = 'queued'
        ORDER BY priority DESC, run_at, id LIMIT 1),
    active_job_id = (
        SELECT id FROM jobs
        WHERE region = instances.region AND instance = instances.instance
          AND state IN ('submitting', 'running'));

-- instances.tags is read as a JSON array of strings.
CREATE TRIGGER instances_tags_json_insert BEFORE INSERT ON instances
WHEN NOT (json_valid(NEW.tags) AND json_type(NEW.tags) = 'array')
BEGIN
    SELECT RAISE(ABORT, 'instances_tags_json_array: tags must be a JSON array of strings');
END;
CREATE TRIGGER instances_tags_json_update BEFORE UPDATE OF tags ON instances
WHEN NOT (json_valid(NEW.tags) AND json_type(NEW.tags) = 'array')
BEGIN
    SELECT RAISE(ABORT, 'instances_tags_json_array: tags must be a JSON array of strings');
END;
