-- Hardening (docs/sql-interface.md, "What the database refuses"): the database refuses
-- every row the service could not read, and a SQL INSERT may only create a fresh queued
-- job. The bounds are those of src/model/bounds.rs; the integration test `store::bounds`
-- inserts each boundary and one past it on both backends.
--
-- Two kinds of rule:
-- * readability, on every row: finite times in 1970..9999 (`'-infinity'` made the
--   service panic on decode), counters and priorities in range, sizes not negative, and
--   the state invariants (a `submitting` job holds a lease, a `running` job has a task id);
-- * the request rules of DownloadRequest::validate, on every job that can still be sent
--   to the cloud (not succeeded, failed or cancelled): history is not rewritten.
--
-- Rows stored before this migration that break a rule are quarantined first: marked
-- `failed` with the error code Store.Quarantined, their unreadable values replaced (times
-- by now, numbers clamped) and the original values kept in the error message and an
-- event. Then every constraint is added and validated.

CREATE TEMP TABLE quarantine ON COMMIT DROP AS
SELECT id, state AS from_state,
       format('quarantined by migration 0005 (a value the service cannot read or send): '
              'state=%L, run_at=%L, created_at=%L, updated_at=%L, priority=%s, '
              'max_attempts=%s, attempts=%s, lease_owner=%L, remote_task_id=%L, '
              'download_point_in_time=%s, bak_set_size=%s',
              state, run_at, created_at, updated_at, priority, max_attempts, attempts,
              lease_owner, remote_task_id, download_point_in_time, bak_set_size) AS detail
FROM jobs
WHERE NOT (
        run_at >= '1970-01-01 00:00:00+00' AND run_at < '10000-01-01 00:00:00+00'
    AND created_at >= '1970-01-01 00:00:00+00' AND created_at < '10000-01-01 00:00:00+00'
    AND updated_at >= '1970-01-01 00:00:00+00' AND updated_at < '10000-01-01 00:00:00+00'
    AND coalesce(lease_expires_at >= '1970-01-01 00:00:00+00' AND lease_expires_at < '10000-01-01 00:00:00+00', true)
    AND coalesce(download_url_expires_at >= '1970-01-01 00:00:00+00' AND download_url_expires_at < '10000-01-01 00:00:00+00', true)
    AND coalesce(next_poll_at >= '1970-01-01 00:00:00+00' AND next_poll_at < '10000-01-01 00:00:00+00', true)
    AND coalesce(fire_time >= '1970-01-01 00:00:00+00' AND fire_time < '10000-01-01 00:00:00+00', true)
    AND coalesce(started_at >= '1970-01-01 00:00:00+00' AND started_at < '10000-01-01 00:00:00+00', true)
    AND coalesce(finished_at >= '1970-01-01 00:00:00+00' AND finished_at < '10000-01-01 00:00:00+00', true)
    AND priority BETWEEN -1000 AND 1000
    AND max_attempts BETWEEN 1 AND 100
    AND attempts >= 0 AND polls >= 0 AND remote_retries >= 0
    AND coalesce(bak_set_size, 0) >= 0 AND coalesce(export_data_size, 0) >= 0 AND coalesce(import_data_size, 0) >= 0
    AND (state <> 'submitting' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
    AND (state <> 'running' OR remote_task_id IS NOT NULL)
    AND (state IN ('succeeded', 'failed', 'cancelled') OR (
            coalesce(download_point_in_time BETWEEN 1000000000000 AND 253402300799999, true)
        AND region ~ '^[A-Za-z0-9._-]{1,128}$' AND instance ~ '^[A-Za-z0-9._-]{1,128}$'
        AND coalesce(bak_set_id ~ '^[A-Za-z0-9._-]{1,128}$', true)
        AND coalesce(target_oss_region ~ '^[A-Za-z0-9._-]{1,128}$', true)
        AND coalesce(cluster_name ~ '^[A-Za-z0-9._-]{1,128}$', true)
        AND coalesce(target_bucket ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$', true)
        AND coalesce(length(target_path) <= 1024 AND target_path !~ '(^|/)\.\.(/|$)'
                     AND target_path !~ '[\x01-\x1f\x7f-\x9f]', true)
        AND coalesce(admin_database ~ '^[^/\\. "$\x01-\x1f\x7f-\x9f]{1,64}$', true)
        AND coalesce(is_cluster IN ('true', 'false'), true)
        AND coalesce(primary_key_type_only IN ('true', 'false'), true)
        AND coalesce(use_zstd IN ('true', 'false'), true)
        AND coalesce(idempotency_key ~ '^[!-~]{1,255}$', true)))
);

INSERT INTO job_events (job_id, from_state, to_state, at, reason)
SELECT id, from_state, 'failed', now(), detail FROM quarantine ORDER BY id;

UPDATE jobs j SET
    state = 'failed',
    lease_owner = NULL,
    lease_expires_at = NULL,
    needs_reconcile = false,
    run_at = CASE WHEN run_at >= '1970-01-01 00:00:00+00' AND run_at < '10000-01-01 00:00:00+00' THEN run_at ELSE now() END,
    created_at = CASE WHEN created_at >= '1970-01-01 00:00:00+00' AND created_at < '10000-01-01 00:00:00+00' THEN created_at ELSE now() END,
    updated_at = now(),
    finished_at = now(),
    download_url_expires_at = CASE WHEN download_url_expires_at >= '1970-01-01 00:00:00+00' AND download_url_expires_at < '10000-01-01 00:00:00+00' THEN download_url_expires_at END,
    next_poll_at = CASE WHEN next_poll_at >= '1970-01-01 00:00:00+00' AND next_poll_at < '10000-01-01 00:00:00+00' THEN next_poll_at END,
    fire_time = CASE WHEN fire_time >= '1970-01-01 00:00:00+00' AND fire_time < '10000-01-01 00:00:00+00' THEN fire_time END,
    started_at = CASE WHEN started_at >= '1970-01-01 00:00:00+00' AND started_at < '10000-01-01 00:00:00+00' THEN started_at END,
    priority = greatest(-1000, least(1000, priority)),
    max_attempts = greatest(1, least(100, max_attempts)),
    attempts = greatest(0, attempts),
    polls = greatest(0, polls),
    remote_retries = greatest(0, remote_retries),
    bak_set_size = CASE WHEN bak_set_size >= 0 THEN bak_set_size END,
    export_data_size = CASE WHEN export_data_size >= 0 THEN export_data_size END,
    import_data_size = CASE WHEN import_data_size >= 0 THEN import_data_size END,
    last_error_code = 'Store.Quarantined',
    last_error_message = q.detail,
    last_error_request_id = NULL
FROM quarantine q
WHERE j.id = q.id;

-- The CreateDownload rules of 0001 that these replace or widen.
ALTER TABLE jobs
    DROP CONSTRAINT jobs_max_attempts_positive,
    DROP CONSTRAINT jobs_attempts_not_negative,
    DROP CONSTRAINT jobs_bak_set_size_not_negative;

ALTER TABLE jobs
    -- Readability: finite times in 1970-01-01 .. 9999-12-31 (bounds::TIME_MS).
    ADD CONSTRAINT jobs_run_at_time CHECK (run_at >= '1970-01-01 00:00:00+00' AND run_at < '10000-01-01 00:00:00+00'),
    ADD CONSTRAINT jobs_created_at_time CHECK (created_at >= '1970-01-01 00:00:00+00' AND created_at < '10000-01-01 00:00:00+00'),
    ADD CONSTRAINT jobs_updated_at_time CHECK (updated_at >= '1970-01-01 00:00:00+00' AND updated_at < '10000-01-01 00:00:00+00'),
    ADD CONSTRAINT jobs_lease_expires_at_time CHECK (lease_expires_at >= '1970-01-01 00:00:00+00' AND lease_expires_at < '10000-01-01 00:00:00+00'),
    ADD CONSTRAINT jobs_download_url_expires_at_time CHECK (download_url_expires_at >= '1970-01-01 00:00:00+00' AND download_url_expires_at < '10000-01-01 00:00:00+00'),
    ADD CONSTRAINT jobs_next_poll_at_time CHECK (next_poll_at >= '1970-01-01 00:00:00+00' AND next_poll_at < '10000-01-01 00:00:00+00'),
    ADD CONSTRAINT jobs_fire_time_time CHECK (fire_time >= '1970-01-01 00:00:00+00' AND fire_time < '10000-01-01 00:00:00+00'),
    ADD CONSTRAINT jobs_started_at_time CHECK (started_at >= '1970-01-01 00:00:00+00' AND started_at < '10000-01-01 00:00:00+00'),
    ADD CONSTRAINT jobs_finished_at_time CHECK (finished_at >= '1970-01-01 00:00:00+00' AND finished_at < '10000-01-01 00:00:00+00'),
    -- Readability: numbers in the ranges the model and the API use (bounds::PRIORITY, …).
    ADD CONSTRAINT jobs_priority_range CHECK (priority BETWEEN -1000 AND 1000),
    ADD CONSTRAINT jobs_max_attempts_range CHECK (max_attempts BETWEEN 1 AND 100),
    ADD CONSTRAINT jobs_attempts_counter CHECK (attempts >= 0),
    ADD CONSTRAINT jobs_polls_counter CHECK (polls >= 0),
    ADD CONSTRAINT jobs_remote_retries_counter CHECK (remote_retries >= 0),
    ADD CONSTRAINT jobs_bak_set_size_bytes CHECK (bak_set_size >= 0),
    ADD CONSTRAINT jobs_export_data_size_bytes CHECK (export_data_size >= 0),
    ADD CONSTRAINT jobs_import_data_size_bytes CHECK (import_data_size >= 0),
    -- Readability: the state invariants the worker relies on.
    ADD CONSTRAINT jobs_submitting_has_lease
        CHECK (state <> 'submitting' OR (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    ADD CONSTRAINT jobs_running_has_task CHECK (state <> 'running' OR remote_task_id IS NOT NULL),
    -- The request rules (DownloadRequest::validate) for every job that can still be sent.
    ADD CONSTRAINT jobs_point_in_time_ms CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR download_point_in_time BETWEEN 1000000000000 AND 253402300799999),
    ADD CONSTRAINT jobs_region_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR region ~ '^[A-Za-z0-9._-]{1,128}$'),
    ADD CONSTRAINT jobs_instance_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR instance ~ '^[A-Za-z0-9._-]{1,128}$'),
    ADD CONSTRAINT jobs_bak_set_id_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR bak_set_id ~ '^[A-Za-z0-9._-]{1,128}$'),
    ADD CONSTRAINT jobs_target_oss_region_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR target_oss_region ~ '^[A-Za-z0-9._-]{1,128}$'),
    ADD CONSTRAINT jobs_cluster_name_valid_id CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR cluster_name ~ '^[A-Za-z0-9._-]{1,128}$'),
    ADD CONSTRAINT jobs_target_bucket_name CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR target_bucket ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
    ADD CONSTRAINT jobs_target_path_safe CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR (length(target_path) <= 1024 AND target_path !~ '(^|/)\.\.(/|$)'
            AND target_path !~ '[\x01-\x1f\x7f-\x9f]')),
    ADD CONSTRAINT jobs_admin_database_name CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR admin_database ~ '^[^/\\. "$\x01-\x1f\x7f-\x9f]{1,64}$'),
    ADD CONSTRAINT jobs_is_cluster_flag CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR is_cluster IN ('true', 'false')),
    ADD CONSTRAINT jobs_primary_key_type_only_flag CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR primary_key_type_only IN ('true', 'false')),
    ADD CONSTRAINT jobs_use_zstd_flag CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR use_zstd IN ('true', 'false')),
    ADD CONSTRAINT jobs_idempotency_key_valid CHECK (state IN ('succeeded', 'failed', 'cancelled')
        OR idempotency_key ~ '^[!-~]{1,255}$');

-- instances.tags is read as a JSON array of strings.
ALTER TABLE instances ADD CONSTRAINT instances_tags_json_array
    CHECK (json_typeof(tags::json) = 'array');

-- A SQL INSERT creates a fresh queued job: states, leases, attempts and remote state of
-- work in progress are the service's alone (a `submitting` row without a lease would hold
-- its instance forever; a `running` one without a task would wait out the missing-task
-- grace). Checked once per statement over the transition table, before the bookkeeping.
CREATE OR REPLACE FUNCTION dbs_archiver_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_jobs
               WHERE state <> 'queued' OR lease_owner IS NOT NULL OR lease_expires_at IS NOT NULL
                  OR needs_reconcile OR attempts <> 0 OR polls <> 0 OR remote_retries <> 0
                  OR remote_task_id IS NOT NULL OR remote_status IS NOT NULL
                  OR download_url IS NOT NULL OR next_poll_at IS NOT NULL
                  OR started_at IS NOT NULL OR finished_at IS NOT NULL) THEN
        RAISE EXCEPTION 'new row for relation "jobs" violates check constraint "jobs_insert_queued_only"'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'jobs_insert_queued_only',
                  DETAIL = 'A new job must be queued, with no lease, attempts, polls or remote task; leave state, lease_*, attempts, polls, remote_*, next_poll_at, started_at and finished_at to the service.';
    END IF;
    -- Every job's history starts with its enqueue, whoever inserted it.
    INSERT INTO job_events (job_id, from_state, to_state, at, reason)
        SELECT id, NULL, state, created_at, 'enqueued via ' || source
        FROM new_jobs ORDER BY id;
    INSERT INTO instances (region, instance)
        SELECT DISTINCT region, instance FROM new_jobs
        ON CONFLICT (region, instance) DO NOTHING;
    -- Lock first (as dbs_archiver_sync_instance does), so the lookups below, each with
    -- a fresh snapshot, see every transaction that held these locks before us.
    PERFORM 1 FROM instances i
        WHERE (i.region, i.instance) IN (SELECT region, instance FROM new_jobs)
        ORDER BY i.region, i.instance
        FOR NO KEY UPDATE;
    UPDATE instances i
        SET head_job_id = h.id, head_priority = h.priority, head_run_at = h.run_at,
            active_job_id = a.id
        FROM (SELECT DISTINCT region, instance FROM new_jobs) t
        LEFT JOIN LATERAL (
            SELECT j.id, j.priority, j.run_at FROM jobs j
            WHERE j.region = t.region AND j.instance = t.instance AND j.state = 'queued'
            ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1) h ON true
        LEFT JOIN LATERAL (
            SELECT j.id FROM jobs j
            WHERE j.region = t.region AND j.instance = t.instance
              AND j.state IN ('submitting', 'running')
            LIMIT 1) a ON true
        WHERE i.region = t.region AND i.instance = t.instance
          AND (i.head_job_id IS DISTINCT FROM h.id
               OR i.head_priority IS DISTINCT FROM h.priority
               OR i.head_run_at IS DISTINCT FROM h.run_at
               OR i.active_job_id IS DISTINCT FROM a.id);
    RETURN NULL;
END;
$$;
