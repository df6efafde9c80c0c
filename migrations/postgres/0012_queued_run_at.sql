-- The oldest queued job by run time, for the collector's backlog-age gauge (issue 11): with
-- a million queued jobs `min(run_at) … WHERE state = 'queued'` read every one of them each
-- round. Only enqueues add entries (a claimed job's new version is not queued).
CREATE INDEX jobs_queued_run_at ON jobs (run_at) WHERE state = 'queued';
