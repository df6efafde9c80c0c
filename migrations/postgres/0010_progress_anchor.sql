-- Predictive polling (docs/worker.md, "How polls are planned"): the tracker keeps the first
-- progress it saw while the remote task was running, and when, so it can measure the
-- task's rate over a long baseline and poll around the predicted end. Both NULL until the
-- task is seen running with a Progress; the service writes them with the remote_* columns.
ALTER TABLE jobs
    ADD COLUMN progress_anchor_at TIMESTAMPTZ
        CONSTRAINT jobs_progress_anchor_at_time CHECK (progress_anchor_at >= '1970-01-01 00:00:00+00' AND progress_anchor_at < '10000-01-01 00:00:00+00'),
    ADD COLUMN progress_anchor_ppm INTEGER
        CONSTRAINT jobs_progress_anchor_ppm_range CHECK (progress_anchor_ppm BETWEEN 0 AND 1000000);
