-- A failed attempt: retried after a backoff, or failed for good after max_attempts.
UPDATE jobs
SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
    run_after = now() + make_interval(secs => $4),
    last_error = $3, lease_owner = NULL, lease_until = NULL, updated_at = now(),
    finished_at = CASE WHEN attempts >= max_attempts THEN now() END
WHERE job_id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING status
