INSERT INTO diagnosis_runs (incident_id, subject, window_start, window_end, job_id)
VALUES ($1, $2, $3, $4, $5)
RETURNING run_id
