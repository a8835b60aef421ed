-- Only a running run can finish, once.
UPDATE diagnosis_runs
SET status = $2,
    result = $3,
    complete = $4,
    scope = $5,
    freeze_recommended = $6,
    error = $7,
    finished_at = clock_timestamp(),
    duration_ms = extract(epoch FROM (clock_timestamp() - started_at)) * 1000
WHERE run_id = $1
  AND status = 'running'
RETURNING run_id, incident_id, subject, window_start, window_end, status, complete, scope,
       freeze_recommended, result, error, started_at, finished_at, duration_ms
