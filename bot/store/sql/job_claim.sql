-- Claim the oldest job that is queued, or running with an expired lease (its worker
-- died), and that is due. SKIP LOCKED: concurrent workers never claim the same job.
UPDATE jobs
SET status = 'running', lease_owner = $1, lease_until = now() + make_interval(secs => $2),
    attempts = attempts + 1, updated_at = now()
WHERE job_id = (
    SELECT job_id FROM jobs
    WHERE (status = 'queued' OR (status = 'running' AND lease_until < now()))
      AND run_after <= now()
      AND kind = ANY($3::text[])
    ORDER BY run_after, job_id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING job_id, kind, dedup_key, payload, status, attempts, max_attempts, lease_owner, lease_until,
          last_error, incident_id, created_at
