-- Claim the oldest due job that is queued, or running with a dead owner: its lease
-- expired, or its owner's advisory lock (class $5, key lease_lock) is no longer held,
-- i.e. the owner's connection ended. A running job that has used all its attempts is
-- never taken again (job_give_up marks it failed). SKIP LOCKED: concurrent workers
-- never claim the same job. $4: this worker's own lock key (NULL: none); $6: the jobs
-- this worker is still running (never claimed twice by one worker).
WITH alive AS MATERIALIZED (
    SELECT objid::bigint AS lock_key FROM pg_locks
    WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = $5::bigint::oid AND objsubid = 2 AND granted
)
UPDATE jobs
SET status = 'running', lease_owner = $1, lease_until = now() + make_interval(secs => $2),
    lease_lock = $4, attempts = attempts + 1, updated_at = now()
WHERE job_id = (
    SELECT job_id FROM jobs
    WHERE (status = 'queued'
           OR (status = 'running'
               AND (lease_until < now()
                    OR (lease_lock IS NOT NULL AND lease_lock NOT IN (SELECT lock_key FROM alive)))))
      AND attempts < max_attempts
      AND job_id <> ALL($6::bigint[])
      AND run_after <= now()
      AND kind = ANY($3::text[])
    ORDER BY run_after, job_id
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING job_id, kind, dedup_key, payload, status, attempts, max_attempts, lease_owner, lease_until,
          last_error, incident_id, created_at
