-- Runs of a job whose earlier attempt died mid-way: failed, with the reason.
UPDATE diagnosis_runs SET status = 'failed', error = $2, finished_at = now(),
       duration_ms = extract(epoch FROM now() - started_at) * 1000
WHERE job_id = $1 AND status = 'running'
RETURNING run_id
