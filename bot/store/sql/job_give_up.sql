-- Running jobs of these kinds whose owner died (as in job_claim) after their last
-- allowed attempt: failed for good, with the reason. A job that kills the process
-- running it (out of memory, say) would otherwise crash every worker in turn.
-- $1: kinds, $2: the owner-lock class, $3: the reason (the attempts are prefixed).
WITH alive AS MATERIALIZED (
    SELECT objid::bigint AS lock_key FROM pg_locks
    WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = $2::bigint::oid AND objsubid = 2 AND granted
)
UPDATE jobs
SET status = 'failed', lease_owner = NULL, lease_until = NULL, lease_lock = NULL,
    last_error = left('given up after ' || attempts || ' attempts: ' || $3
                      || coalesce(' (the last recorded error: ' || last_error || ')', ''), 4000),
    finished_at = now(), updated_at = now()
WHERE job_id IN (
    SELECT job_id FROM jobs
    WHERE status = 'running' AND attempts >= max_attempts
      AND (lease_until < now()
           OR (lease_lock IS NOT NULL AND lease_lock NOT IN (SELECT lock_key FROM alive)))
      AND kind = ANY($1::text[])
    ORDER BY job_id
    FOR UPDATE SKIP LOCKED
    LIMIT 20
)
RETURNING job_id, kind, dedup_key, payload, status, attempts, max_attempts, lease_owner, lease_until,
          last_error, incident_id, created_at
