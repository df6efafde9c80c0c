-- Archives of URL downloads (docs/archives.md): a finished URL task's file fetched into a
-- sink the operator owns. One row per job; its own state, lease, attempts and progress so
-- the jobs state machine stays as it is. Times are INTEGER UNIX milliseconds on both
-- backends, so the store's SQL is written once.

-- The sink a request asked for (NULL = `archive.default_sink`, if any); only URL targets
-- are fetched into a sink.
ALTER TABLE jobs ADD COLUMN sink TEXT
    CONSTRAINT jobs_sink_url_only
    CHECK (sink IS NULL OR (target_type = 'URL' AND length(trim(sink)) > 0));

CREATE TABLE archives (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id            INTEGER NOT NULL UNIQUE REFERENCES jobs (id) ON DELETE CASCADE,
    sink              TEXT    NOT NULL,
    region            TEXT    NOT NULL,
    instance          TEXT    NOT NULL,
    task_id           TEXT    NOT NULL,
    url               TEXT    NOT NULL,
    url_expires_at    INTEGER,
    expected_size     INTEGER,
    state             TEXT    NOT NULL DEFAULT 'pending',
    run_at            INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL DEFAULT 5,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    bytes_done        INTEGER NOT NULL DEFAULT 0,
    object_name       TEXT    NOT NULL,
    location          TEXT,
    size              INTEGER,
    sha256            TEXT,
    last_error_code   TEXT,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    stored_at         INTEGER,
    deleted_at        INTEGER,
    updated_at        INTEGER NOT NULL,
    CONSTRAINT archives_state_valid
        CHECK (state IN ('pending', 'fetching', 'stored', 'failed', 'deleted')),
    CONSTRAINT archives_attempts_not_negative CHECK (attempts >= 0),
    CONSTRAINT archives_bytes_done_not_negative CHECK (bytes_done >= 0),
    CONSTRAINT archives_stored_has_checksum
        CHECK (state <> 'stored' OR (location IS NOT NULL AND sha256 IS NOT NULL AND size IS NOT NULL)),
    CONSTRAINT archives_lease_only_while_fetching
        CHECK ((state = 'fetching') = (lease_owner IS NOT NULL))
);
CREATE INDEX archives_due ON archives (run_at, id) WHERE state = 'pending';
CREATE INDEX archives_lease_expiry ON archives (lease_expires_at) WHERE state = 'fetching';
CREATE INDEX archives_retention ON archives (sink, region, instance, stored_at) WHERE state = 'stored';

CREATE TABLE archive_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    archive_id  INTEGER NOT NULL REFERENCES archives (id) ON DELETE CASCADE,
    from_state  TEXT,
    to_state    TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    reason      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX archive_events_archive ON archive_events (archive_id, id);

-- The fetcher's scan for succeeded URL jobs with a live link and no archive yet: bounded by
-- the links still valid (a day at most), not by the job history.
CREATE INDEX jobs_url_archivable ON jobs (download_url_expires_at)
    WHERE state = 'succeeded' AND target_type = 'URL';
