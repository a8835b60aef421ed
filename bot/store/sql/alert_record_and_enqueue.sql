-- The notification as received, and its group's (or storm's) job, in one statement.
WITH n AS (
    INSERT INTO alert_notifications (group_id, generation, action, status, alerts, payload)
    VALUES ($1, $2, $3, $4, $5, $6)
    RETURNING notification_id
), j AS (
    INSERT INTO jobs (kind, dedup_key, payload, max_attempts, run_after)
    VALUES ($7, $8, $9, 10, now() + make_interval(secs => $10))
    ON CONFLICT (dedup_key) WHERE status IN ('queued', 'running') DO NOTHING
    RETURNING job_id
)
SELECT (SELECT notification_id FROM n) AS notification_id, (SELECT job_id FROM j) AS job_id
