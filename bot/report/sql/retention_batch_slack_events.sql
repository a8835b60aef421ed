-- Slack event ids received before $1 (Slack retries within minutes), at most $2 of them,
-- oldest first; the number deleted.
WITH doomed AS (
    SELECT event_id FROM slack_events WHERE received_at < $1
    ORDER BY received_at LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM slack_events WHERE event_id IN (SELECT event_id FROM doomed) RETURNING 1
)
SELECT count(*) FROM gone
