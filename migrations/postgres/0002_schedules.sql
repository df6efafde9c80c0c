-- Schedules (issue 5): cron schedules that turn into jobs, exactly once per fire time.

CREATE TABLE schedules (
    id               BIGSERIAL PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    -- The operator's declaration (ScheduleSpec); see docs/schedules.md.
    spec             JSONB NOT NULL,
    enabled          BOOLEAN NOT NULL DEFAULT TRUE,
    origin           TEXT NOT NULL CHECK (origin IN ('api', 'cli', 'config')),
    -- Cursor: every fire time at or before it has been handled. NULL = none yet
    -- (fires start after created_at).
    last_fire_time   TIMESTAMPTZ,
    -- Next fire after the cursor; NULL when the expression never fires again.
    next_fire_time   TIMESTAMPTZ,
    -- Bumped by every spec change; fences the cursor advance.
    version          BIGINT NOT NULL DEFAULT 1,
    -- A scheduler working on this schedule (claim → enqueue → advance).
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE INDEX schedules_due ON schedules (next_fire_time) WHERE enabled;

-- What each fire did, per instance ('' = the whole schedule, e.g. a misfire summary).
CREATE TABLE schedule_runs (
    id           BIGSERIAL PRIMARY KEY,
    schedule_id  BIGINT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    fire_time    TIMESTAMPTZ NOT NULL,
    region       TEXT NOT NULL DEFAULT '',
    instance     TEXT NOT NULL DEFAULT '',
    outcome      TEXT NOT NULL CHECK (outcome IN ('enqueued', 'skipped')),
    reason       TEXT CHECK (reason IN ('overlap', 'no_backup', 'backup_lookup_failed', 'misfire',
                                        'misfire_bound', 'no_targets', 'invalid_request')),
    detail       TEXT,
    job_id       BIGINT,
    recorded_at  TIMESTAMPTZ NOT NULL,
    CHECK ((outcome = 'skipped') = (reason IS NOT NULL)),
    UNIQUE (schedule_id, fire_time, region, instance)
);

CREATE INDEX schedule_runs_recent ON schedule_runs (schedule_id, id DESC);
