-- Alert notifications received before $1 and already shown (handled), at most $2,
-- oldest first; the number deleted. Only unhandled notifications are ever read again
-- (a job shows them); a handled one is the record of a payload received, and that record
-- is kept as long as the alert retention. Unhandled ones go with their group.
WITH doomed AS (
    SELECT notification_id FROM alert_notifications
    WHERE received_at < $1 AND handled_at IS NOT NULL
    ORDER BY received_at LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM alert_notifications WHERE notification_id IN (SELECT notification_id FROM doomed) RETURNING 1
)
SELECT count(*) FROM gone
