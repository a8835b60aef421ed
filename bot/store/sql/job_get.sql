SELECT job_id, kind, dedup_key, payload, status, attempts, max_attempts, lease_owner, lease_until,
       last_error, incident_id, created_at
FROM jobs WHERE job_id = $1
