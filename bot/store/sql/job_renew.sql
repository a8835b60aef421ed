-- Extend the lease; no row when the job is no longer this worker's.
UPDATE jobs SET lease_until = now() + make_interval(secs => $3), updated_at = now()
WHERE job_id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING lease_until
