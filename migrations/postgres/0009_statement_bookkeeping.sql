-- Set-based bookkeeping on the hot path (issue 11; docs/store.md, "Instance bookkeeping").
--
-- Until now every UPDATE or DELETE of a job's state, priority, run_at, region or instance
-- ran the PL/pgSQL row trigger of migration 0001 once per row: a lock of the instance row
-- and two index probes, per job, on every claim, submit and completion. And the request
-- rules of migration 0005 were CHECK constraints, evaluated (regular expressions included)
-- on every row of every UPDATE, although the service never changes a job's request: a
-- profile of `bench store` showed ExecConstraints at 17 % of PostgreSQL's CPU, 8 % of it
-- re-reading some forty CHECK expressions for every statement.
--
-- Now:
-- * one statement-level trigger per INSERT, UPDATE and DELETE reads the changed rows from
--   its transition tables and recomputes each touched instance once, with the same
--   set-based function (instance rows locked in (region, instance) order first, so the
--   lookups that follow see every earlier writer of those instances);
-- * the request rules are checked by the same triggers, once per statement, only on rows
--   that can still be sent to the cloud and whose request is new: inserted, changed, or
--   brought back from a finished state. The error is the one the CHECK gave (SQLSTATE
--   23514 naming the same constraint), so callers and docs/sql-interface.md are unchanged.
-- The cheap readability CHECKs of 0005 (times, ranges, state invariants) stay as they are.

-- The name of the first request rule (DownloadRequest::validate) that a job breaks, NULL
-- when it breaks none. Finished jobs are exempt, as they were under the CHECKs.
CREATE FUNCTION dbs_archiver_broken_request_rule(j jobs) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN j.state IN ('succeeded', 'failed', 'cancelled') THEN NULL
        WHEN NOT coalesce(j.download_point_in_time BETWEEN 1000000000000 AND 253402300799999, true)
            THEN 'jobs_point_in_time_ms'
        WHEN NOT coalesce(j.region ~ '^[A-Za-z0-9._-]{1,128}$', true) THEN 'jobs_region_valid_id'
        WHEN NOT coalesce(j.instance ~ '^[A-Za-z0-9._-]{1,128}$', true) THEN 'jobs_instance_valid_id'
        WHEN NOT coalesce(j.bak_set_id ~ '^[A-Za-z0-9._-]{1,128}$', true) THEN 'jobs_bak_set_id_valid_id'
        WHEN NOT coalesce(j.target_oss_region ~ '^[A-Za-z0-9._-]{1,128}$', true)
            THEN 'jobs_target_oss_region_valid_id'
        WHEN NOT coalesce(j.cluster_name ~ '^[A-Za-z0-9._-]{1,128}$', true) THEN 'jobs_cluster_name_valid_id'
        WHEN NOT coalesce(j.target_bucket ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$', true)
            THEN 'jobs_target_bucket_name'
        WHEN NOT coalesce(length(j.target_path) <= 1024 AND j.target_path !~ '(^|/)\.\.(/|$)'
                          AND j.target_path !~ '[\x01-\x1f\x7f-\x9f]', true)
            THEN 'jobs_target_path_safe'
        WHEN NOT coalesce(j.admin_database ~ '^[^/\\. "$\x01-\x1f\x7f-\x9f]{1,64}$', true)
            THEN 'jobs_admin_database_name'
        WHEN NOT coalesce(j.is_cluster IN ('true', 'false'), true) THEN 'jobs_is_cluster_flag'
        WHEN NOT coalesce(j.primary_key_type_only IN ('true', 'false'), true)
            THEN 'jobs_primary_key_type_only_flag'
        WHEN NOT coalesce(j.use_zstd IN ('true', 'false'), true) THEN 'jobs_use_zstd_flag'
        WHEN NOT coalesce(j.idempotency_key ~ '^[!-~]{1,255}$', true) THEN 'jobs_idempotency_key_valid'
    END
$$;

-- Refuse the statement when one of `candidates` breaks a request rule, as the CHECK did.
CREATE FUNCTION dbs_archiver_refuse_broken_request(candidates jobs[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    bad_id BIGINT;
    rule TEXT;
BEGIN
    SELECT c.id, dbs_archiver_broken_request_rule(c) INTO bad_id, rule
        FROM unnest(candidates) c
        WHERE dbs_archiver_broken_request_rule(c) IS NOT NULL
        ORDER BY c.id LIMIT 1;
    IF rule IS NOT NULL THEN
        RAISE EXCEPTION 'new row for relation "jobs" violates check constraint "%"', rule
            USING ERRCODE = 'check_violation', CONSTRAINT = rule, TABLE = 'jobs',
                  DETAIL = format('Job %s breaks the request rule %s (docs/sql-interface.md).', bad_id, rule);
    END IF;
END;
$$;

-- Recompute the claim bookkeeping (head_* and active_job_id) of these instances, each
-- once, set-based. The instance rows are locked FIRST, in (region, instance) order, in a
-- statement of their own: the UPDATE that follows takes a fresh snapshot (READ COMMITTED)
-- after the locks, so it sees every transaction that held them before us; one still
-- uncommitted runs this itself after us.
CREATE FUNCTION dbs_archiver_sync_instances(regions text[], names text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(cardinality(regions), 0) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO instances (region, instance)
        SELECT DISTINCT r, n FROM unnest(regions, names) AS t(r, n)
        ON CONFLICT (region, instance) DO NOTHING;
    PERFORM 1 FROM instances i
        WHERE (i.region, i.instance) IN (SELECT r, n FROM unnest(regions, names) AS t(r, n))
        ORDER BY i.region, i.instance
        FOR NO KEY UPDATE;
    UPDATE instances i
        SET head_job_id = h.id, head_priority = h.priority, head_run_at = h.run_at,
            active_job_id = a.id
        FROM (SELECT DISTINCT r AS region, n AS instance FROM unnest(regions, names) AS t(r, n)) t
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
END;
$$;

-- INSERT: the insert-only-queued rule of 0005, the request rules, the enqueue events and
-- the bookkeeping, once per statement.
CREATE OR REPLACE FUNCTION dbs_archiver_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    regions text[];
    names text[];
    candidates jobs[];
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
    SELECT array_agg(n) INTO candidates FROM new_jobs n
        WHERE dbs_archiver_broken_request_rule(n) IS NOT NULL;
    IF candidates IS NOT NULL THEN
        PERFORM dbs_archiver_refuse_broken_request(candidates);
    END IF;
    -- Every job's history starts with its enqueue, whoever inserted it.
    INSERT INTO job_events (job_id, from_state, to_state, at, reason)
        SELECT id, NULL, state, created_at, 'enqueued via ' || source
        FROM new_jobs ORDER BY id;
    SELECT array_agg(region), array_agg(instance) INTO regions, names
        FROM (SELECT DISTINCT region, instance FROM new_jobs) t;
    PERFORM dbs_archiver_sync_instances(regions, names);
    RETURN NULL;
END;
$$;

-- UPDATE: rows whose request changed, or that left a finished state, must keep the
-- request rules; instances whose claim order or active job changed are recomputed.
CREATE FUNCTION dbs_archiver_jobs_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    regions text[];
    names text[];
    candidates jobs[];
BEGIN
    SELECT array_agg(n) INTO candidates
        FROM new_jobs n JOIN old_jobs o ON o.id = n.id
        WHERE n.state NOT IN ('succeeded', 'failed', 'cancelled')
          AND (o.state IN ('succeeded', 'failed', 'cancelled')
               OR (n.download_point_in_time, n.region, n.instance, n.bak_set_id,
                   n.target_oss_region, n.cluster_name, n.target_bucket, n.target_path,
                   n.admin_database, n.is_cluster, n.primary_key_type_only, n.use_zstd,
                   n.idempotency_key)
                  IS DISTINCT FROM
                  (o.download_point_in_time, o.region, o.instance, o.bak_set_id,
                   o.target_oss_region, o.cluster_name, o.target_bucket, o.target_path,
                   o.admin_database, o.is_cluster, o.primary_key_type_only, o.use_zstd,
                   o.idempotency_key))
          AND dbs_archiver_broken_request_rule(n) IS NOT NULL;
    IF candidates IS NOT NULL THEN
        PERFORM dbs_archiver_refuse_broken_request(candidates);
    END IF;
    SELECT array_agg(region), array_agg(instance) INTO regions, names FROM (
        SELECT n.region, n.instance FROM new_jobs n JOIN old_jobs o ON o.id = n.id
            WHERE (n.state, n.priority, n.run_at, n.region, n.instance)
                  IS DISTINCT FROM (o.state, o.priority, o.run_at, o.region, o.instance)
        UNION
        SELECT o.region, o.instance FROM new_jobs n JOIN old_jobs o ON o.id = n.id
            WHERE (n.region, n.instance) IS DISTINCT FROM (o.region, o.instance)) t;
    PERFORM dbs_archiver_sync_instances(regions, names);
    RETURN NULL;
END;
$$;

-- DELETE: the deleted jobs' instances.
CREATE FUNCTION dbs_archiver_jobs_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    regions text[];
    names text[];
BEGIN
    SELECT array_agg(region), array_agg(instance) INTO regions, names
        FROM (SELECT DISTINCT region, instance FROM old_jobs) t;
    PERFORM dbs_archiver_sync_instances(regions, names);
    RETURN NULL;
END;
$$;

DROP TRIGGER jobs_sync_instance ON jobs;
DROP FUNCTION dbs_archiver_jobs_sync();
DROP FUNCTION dbs_archiver_sync_instance(text, text);

CREATE TRIGGER jobs_updated AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION dbs_archiver_jobs_updated();
CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION dbs_archiver_jobs_deleted();

-- The request rules, now checked by the triggers above.
ALTER TABLE jobs
    DROP CONSTRAINT jobs_point_in_time_ms,
    DROP CONSTRAINT jobs_region_valid_id,
    DROP CONSTRAINT jobs_instance_valid_id,
    DROP CONSTRAINT jobs_bak_set_id_valid_id,
    DROP CONSTRAINT jobs_target_oss_region_valid_id,
    DROP CONSTRAINT jobs_cluster_name_valid_id,
    DROP CONSTRAINT jobs_target_bucket_name,
    DROP CONSTRAINT jobs_target_path_safe,
    DROP CONSTRAINT jobs_admin_database_name,
    DROP CONSTRAINT jobs_is_cluster_flag,
    DROP CONSTRAINT jobs_primary_key_type_only_flag,
    DROP CONSTRAINT jobs_use_zstd_flag,
    DROP CONSTRAINT jobs_idempotency_key_valid;
