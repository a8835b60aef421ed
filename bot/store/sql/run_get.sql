SELECT run_id, incident_id, subject, window_start, window_end, status, complete, scope,
       freeze_recommended, result, error, started_at, finished_at, duration_ms
FROM diagnosis_runs
WHERE run_id = $1
