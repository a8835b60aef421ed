-- A running job gives up its dedup key, so one more job for the same key may queue
-- behind it (work that arrives while it runs is not lost).
UPDATE jobs SET dedup_key = dedup_key || ':running:' || job_id::text WHERE job_id = $1 AND status = 'running'
