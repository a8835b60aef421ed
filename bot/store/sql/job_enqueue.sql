-- A new queued job, unless one with the same dedup_key is active (then no row).
-- $5: seconds to wait before it may run (a storm gathers before it is triaged).
INSERT INTO jobs (kind, dedup_key, payload, max_attempts, run_after)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => coalesce($5, 0)))
ON CONFLICT (dedup_key) WHERE status IN ('queued', 'running') DO NOTHING
RETURNING job_id, kind, dedup_key, payload, status, attempts, max_attempts, lease_owner, lease_until,
          last_error, incident_id, created_at
