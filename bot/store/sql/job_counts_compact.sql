-- Fold the job_counts deltas into one row per status. Safe concurrently: a second
-- compaction waits on the rows the first deleted, skips them, and folds only its own.
WITH d AS (DELETE FROM job_counts RETURNING status, n)
INSERT INTO job_counts (status, n)
SELECT status, sum(n) FROM d GROUP BY status HAVING sum(n) <> 0
