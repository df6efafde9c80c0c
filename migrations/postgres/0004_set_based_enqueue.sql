-- Enqueue bookkeeping per INSERT statement, set-based, instead of per row. A bulk
-- `INSERT … SELECT` of 100k jobs ran two PL/pgSQL row triggers 100k times (the enqueue
-- event, and the instance head/active recomputation with its lock and two lookups).
-- Now one statement-level trigger reads the inserted rows from a transition table:
-- one INSERT of all events, one upsert of the instances touched, their rows locked in
-- (region, instance) order (also removes a deadlock between two bulk inserts that touch
-- the same instances in different orders), and one UPDATE recomputing each touched
-- instance once. Updates and deletes keep the row trigger of migration 0001.

DROP TRIGGER jobs_sync_instance ON jobs;
CREATE TRIGGER jobs_sync_instance
    AFTER DELETE OR UPDATE OF state, priority, run_at, region, instance ON jobs
    FOR EACH ROW EXECUTE FUNCTION dbs_archiver_jobs_sync();

DROP TRIGGER jobs_enqueued ON jobs;
DROP FUNCTION dbs_archiver_jobs_enqueued_event();

CREATE FUNCTION dbs_archiver_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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

CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION dbs_archiver_jobs_inserted();
