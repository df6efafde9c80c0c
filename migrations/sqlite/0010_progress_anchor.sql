-- Predictive polling (docs/worker.md, "How polls are planned"): the tracker keeps the first
-- progress it saw while the remote task was running, and when, so it can measure the
-- task's rate over a long baseline and poll around the predicted end. Both NULL until the
-- task is seen running with a Progress; the service writes them with the remote_* columns.
ALTER TABLE jobs ADD COLUMN progress_anchor_at INTEGER
    CONSTRAINT jobs_progress_anchor_at_time CHECK (progress_anchor_at IS NULL OR (typeof(progress_anchor_at) = 'integer' AND progress_anchor_at BETWEEN 0 AND 253402300799999));
ALTER TABLE jobs ADD COLUMN progress_anchor_ppm INTEGER
    CONSTRAINT jobs_progress_anchor_ppm_range CHECK (progress_anchor_ppm IS NULL OR (typeof(progress_anchor_ppm) = 'integer' AND progress_anchor_ppm BETWEEN 0 AND 1000000));
