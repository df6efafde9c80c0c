-- The queue (docs/store.md): jobs, their history, and per-instance bookkeeping.
-- Times are INTEGER UNIX milliseconds (UTC). The CHECK constraints encode the
-- CreateDownload rules; their names say which rule an INSERT broke.

CREATE TABLE jobs (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    -- CreateDownload parameters (dbs-api.md §3.1)
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
    -- bookkeeping
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

    CONSTRAINT jobs_region_required CHECK (length(trim(coalesce(region, ''))) > 0),
    CONSTRAINT jobs_instance_required CHECK (length(trim(coalesce(instance, ''))) > 0),
    CONSTRAINT jobs_bak_set_type_valid CHECK (bak_set_type IS NOT NULL AND bak_set_type IN ('full', 'pitr')),
    CONSTRAINT jobs_full_requires_bak_set_id
        CHECK (bak_set_type <> 'full' OR length(trim(coalesce(bak_set_id, ''))) > 0),
    CONSTRAINT jobs_pitr_requires_point_in_time
        CHECK (bak_set_type <> 'pitr' OR coalesce(download_point_in_time, 0) > 0),
    CONSTRAINT jobs_bak_set_size_not_negative CHECK (bak_set_size IS NULL OR bak_set_size >= 0),
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
    CONSTRAINT jobs_max_attempts_positive CHECK (max_attempts >= 1),
    CONSTRAINT jobs_attempts_not_negative CHECK (attempts >= 0),
    CONSTRAINT jobs_is_physical_boolean CHECK (is_physical IS NULL OR is_physical IN (0, 1)),
    CONSTRAINT jobs_needs_reconcile_boolean CHECK (needs_reconcile IN (0, 1)),
    CONSTRAINT jobs_fire_time_with_schedule CHECK (fire_time IS NULL OR schedule_id IS NOT NULL),
    CONSTRAINT jobs_idempotency_key_unique UNIQUE (idempotency_key)
);

-- Invariant 1: at most one active job per instance.
CREATE UNIQUE INDEX jobs_one_active_per_instance
    ON jobs (region, instance) WHERE state IN ('submitting', 'running');
-- A schedule fires once per instance per fire time.
CREATE UNIQUE INDEX jobs_schedule_fire_unique
    ON jobs (schedule_id, fire_time, region, instance) WHERE schedule_id IS NOT NULL;
-- The per-instance queue, in claim order: finds an instance's head job.
CREATE INDEX jobs_instance_queue
    ON jobs (region, instance, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_poll_due ON jobs (next_poll_at) WHERE state = 'running';
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE lease_owner IS NOT NULL;
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX jobs_state_id ON jobs (state, id);
CREATE INDEX jobs_instance_id ON jobs (region, instance, id);

CREATE TABLE job_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    from_state  TEXT,
    to_state    TEXT    NOT NULL,
    at          INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    reason      TEXT    NOT NULL DEFAULT '',
    request_id  TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, id);

-- Per-instance bookkeeping. head_* and active_job_id are kept by the triggers below in
-- the same transaction as every jobs change, so the claim walks instances, not jobs.
CREATE TABLE instances (
    region            TEXT    NOT NULL,
    instance          TEXT    NOT NULL,
    blocked           INTEGER NOT NULL DEFAULT 0,
    blocked_until     INTEGER,
    blocked_reason    TEXT,
    blocking_task_id  TEXT,
    blocked_at        INTEGER,
    last_success_at   INTEGER,
    tags              TEXT    NOT NULL DEFAULT '[]',
    active_job_id     INTEGER,
    head_job_id       INTEGER,
    head_priority     INTEGER,
    head_run_at       INTEGER,
    PRIMARY KEY (region, instance),
    CONSTRAINT instances_blocked_boolean CHECK (blocked IN (0, 1))
);
-- The claim's index: only instances that are free, unblocked and have queued work.
CREATE INDEX instances_claimable
    ON instances (head_priority DESC, head_run_at, head_job_id)
    WHERE head_job_id IS NOT NULL AND active_job_id IS NULL AND blocked = 0;

-- Every job's history starts with its enqueue, whoever inserted it (SQL clients too).
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
