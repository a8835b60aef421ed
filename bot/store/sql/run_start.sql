INSERT INTO diagnosis_runs (incident_id, subject, window_start, window_end)
VALUES ($1, $2, $3, $4)
RETURNING run_id
