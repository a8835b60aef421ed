INSERT INTO alert_notifications (group_id, generation, action, status, alerts, payload)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING notification_id
