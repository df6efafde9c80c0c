-- Indexes for the operator console's job list (docs/console.md): every sort and the
-- selective filters walk an index in keyset order, so a page costs the same at 1M jobs.

-- Sort by instance, and the instance-prefix search (a range on instance).
CREATE INDEX jobs_console_instance ON jobs (instance, id);
-- Sort by finish time (only finished jobs have one).
CREATE INDEX jobs_console_finished ON jobs (finished_at, id) WHERE finished_at IS NOT NULL;
-- Search by remote task id.
CREATE INDEX jobs_console_task ON jobs (remote_task_id) WHERE remote_task_id IS NOT NULL;
-- Filter by error code, newest first.
CREATE INDEX jobs_console_error ON jobs (last_error_code, id) WHERE last_error_code IS NOT NULL;
-- A schedule's jobs, newest first.
CREATE INDEX jobs_console_schedule ON jobs (schedule_id, id) WHERE schedule_id IS NOT NULL;
