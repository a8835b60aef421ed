-- The incident's diagnosis runs, oldest first (result: the diagnosis document).
SELECT run_id, status, complete, scope, freeze_recommended, result, error, window_start, window_end,
       started_at, finished_at, duration_ms
FROM diagnosis_runs
WHERE incident_id = $1
ORDER BY run_id
