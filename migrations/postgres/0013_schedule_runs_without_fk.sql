-- A schedule's fire history without a foreign key (issue 11), for the reason migration 0011
-- gave for job_events: the per-row check locks each schedule FOR KEY SHARE as its run is
-- recorded, a second write of every schedule row a fire touches (500 runs: 7-14 ms with
-- the key, 4 ms without). Runs are recorded only by the scheduler, for schedules it holds
-- leased; what the key still did, removing a deleted schedule's history, this trigger
-- does once per statement.
ALTER TABLE schedule_runs DROP CONSTRAINT schedule_runs_schedule_id_fkey;

CREATE FUNCTION dbs_archiver_schedules_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM schedule_runs WHERE schedule_id IN (SELECT id FROM old_schedules);
    RETURN NULL;
END;
$$;

CREATE TRIGGER schedules_deleted AFTER DELETE ON schedules
    REFERENCING OLD TABLE AS old_schedules
    FOR EACH STATEMENT EXECUTE FUNCTION dbs_archiver_schedules_deleted();
