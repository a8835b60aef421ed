-- Is another unhandled notification of the group queued behind this one?
SELECT EXISTS (SELECT 1 FROM alert_notifications
               WHERE group_id = $1 AND handled_at IS NULL AND notification_id > $2)
