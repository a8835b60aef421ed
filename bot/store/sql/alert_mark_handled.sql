UPDATE alert_notifications SET handled_at = now() WHERE notification_id = $1
