-- One pgbench transaction-script: claim 10 heads (as the store's claim does), then
-- submitting -> running -> succeeded for them, each with its event row. Used by
-- pg_cpu_per_job.sh to weigh the database side of the hot path (docs/store.md).
BEGIN;
WITH heads AS (SELECT head_job_id FROM instances WHERE head_job_id IS NOT NULL AND active_job_id IS NULL AND NOT blocked AND head_run_at <= now() ORDER BY head_priority DESC, head_run_at, head_job_id LIMIT 10 FOR NO KEY UPDATE SKIP LOCKED),
 claimed AS (UPDATE jobs SET state = 'submitting', lease_owner = 'b', lease_expires_at = now() + interval '1 min', started_at = coalesce(started_at, now()), updated_at = now() WHERE id IN (SELECT head_job_id FROM heads) AND state = 'queued' RETURNING id),
 ev AS (INSERT INTO job_events (job_id, from_state, to_state, at, reason) SELECT id, 'queued', 'submitting', now(), 'claimed' FROM claimed)
SELECT count(*) FROM claimed;
COMMIT;
WITH r AS (UPDATE jobs SET state = 'running', remote_task_id = 'dt-' || id, lease_owner = NULL, lease_expires_at = NULL, updated_at = now() WHERE state = 'submitting' RETURNING id),
 ev AS (INSERT INTO job_events (job_id, from_state, to_state, at, reason) SELECT id, 'submitting', 'running', now(), 'created' FROM r)
SELECT count(*) FROM r;
WITH r AS (UPDATE jobs SET state = 'succeeded', finished_at = now(), updated_at = now() WHERE state = 'running' RETURNING id),
 ev AS (INSERT INTO job_events (job_id, from_state, to_state, at, reason) SELECT id, 'running', 'succeeded', now(), 'done' FROM r)
SELECT count(*) FROM r;
