UPDATE alert_groups SET anchor_ts = $2, thread_ts = $3, incident_id = coalesce($4, incident_id)
WHERE group_id = $1
