-- One NOTIFY per INSERT statement instead of one per row. Listeners only need to know that
-- new work exists (they then claim), so a bulk `INSERT … SELECT` of 100k jobs no longer
-- queues 100k notifications. The per-row trigger keeps writing each job's first event.

CREATE FUNCTION dbs_archiver_jobs_enqueued_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_events (job_id, from_state, to_state, at, reason)
        VALUES (NEW.id, NULL, NEW.state, NEW.created_at, 'enqueued via ' || NEW.source);
    RETURN NEW;
END;
$$;

DROP TRIGGER jobs_enqueued ON jobs;
DROP FUNCTION dbs_archiver_jobs_notify();

CREATE TRIGGER jobs_enqueued AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION dbs_archiver_jobs_enqueued_event();

CREATE FUNCTION dbs_archiver_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dbs_archiver_jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_enqueued_notify AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION dbs_archiver_jobs_notify();
