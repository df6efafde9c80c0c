-- The instance bookkeeping without work it does not need (issue 11). Every statement that
-- changes jobs runs dbs_archiver_sync_instances for the instances it touched. Migration
-- 0011 made it create missing instances with an INSERT ... ON CONFLICT DO NOTHING that
-- computed the head and active job of every instance, known or not, before the conflict
-- dropped the known ones: on an UPDATE (claim, outcome, poll result) every instance is
-- known, so that was a second set of lookups per instance for nothing. It now runs only
-- when an instance is missing (one indexed probe per instance decides).
CREATE OR REPLACE FUNCTION dbs_archiver_sync_instances(regions text[], names text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    fresh_regions text[];
    fresh_names text[];
BEGIN
    IF coalesce(cardinality(regions), 0) = 0 THEN
        RETURN;
    END IF;
    -- New instances (the first job of one) are created with their bookkeeping computed.
    IF EXISTS (SELECT 1 FROM unnest(regions, names) AS t(r, n)
               WHERE NOT EXISTS (SELECT 1 FROM instances i
                                 WHERE i.region = t.r AND i.instance = t.n)) THEN
        WITH wanted AS (
            SELECT DISTINCT r AS region, n AS instance FROM unnest(regions, names) AS t(r, n)
        ), created AS (
            INSERT INTO instances (region, instance, head_job_id, head_priority, head_run_at,
                                   active_job_id)
            SELECT w.region, w.instance, h.id, h.priority, h.run_at, a.id
            FROM wanted w
            LEFT JOIN LATERAL (
                SELECT j.id, j.priority, j.run_at FROM jobs j
                WHERE j.region = w.region AND j.instance = w.instance AND j.state = 'queued'
                ORDER BY j.priority DESC, j.run_at, j.id LIMIT 1) h ON true
            LEFT JOIN LATERAL (
                SELECT j.id FROM jobs j
                WHERE j.region = w.region AND j.instance = w.instance
                  AND j.state IN ('submitting', 'running')
                LIMIT 1) a ON true
            ORDER BY w.region, w.instance
            ON CONFLICT (region, instance) DO NOTHING
            RETURNING region, instance
        )
        SELECT array_agg(region), array_agg(instance) INTO fresh_regions, fresh_names FROM created;
        IF fresh_regions IS NOT NULL THEN
            SELECT array_agg(r), array_agg(n) INTO regions, names FROM (
                SELECT r, n FROM unnest(regions, names) AS t(r, n)
                EXCEPT
                SELECT r, n FROM unnest(fresh_regions, fresh_names) AS f(r, n)) rest;
            IF regions IS NULL THEN
                RETURN;
            END IF;
        END IF;
    END IF;
    -- Lock first (in one order, so two statements cannot deadlock), then compute: the
    -- UPDATE's fresh snapshot sees what a statement that held the lock before us committed.
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
