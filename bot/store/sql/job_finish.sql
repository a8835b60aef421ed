UPDATE jobs
SET status = 'done', result = $3, lease_owner = NULL, lease_until = NULL, finished_at = now(),
    updated_at = now()
WHERE job_id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING job_id
