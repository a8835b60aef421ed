-- Give a running job back (graceful shutdown): another worker takes it at once.
UPDATE jobs
SET status = 'queued', lease_owner = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0),
    updated_at = now()
WHERE job_id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING job_id
