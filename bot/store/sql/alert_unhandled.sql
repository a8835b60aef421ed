-- The group's notifications still to be shown, oldest first (at most $2).
SELECT notification_id, group_id, generation, action, status, alerts, received_at
FROM alert_notifications WHERE group_id = $1 AND handled_at IS NULL
ORDER BY notification_id LIMIT $2
