UPDATE alert_notifications SET handled_at = now() WHERE notification_id = ANY($1::bigint[]) AND handled_at IS NULL
