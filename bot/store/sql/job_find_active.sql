SELECT job_id, kind, dedup_key, payload, status, attempts, max_attempts, lease_owner, lease_until,
       last_error, incident_id, created_at
FROM jobs
WHERE dedup_key = $1 AND status IN ('queued', 'running')
