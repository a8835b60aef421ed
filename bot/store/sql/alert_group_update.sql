-- A later notification of the group. $3 = true: it fires again after the reopen window,
-- which starts a new generation (a new thread and incident).
UPDATE alert_groups
SET status = $2,
    generation = generation + CASE WHEN $3 THEN 1 ELSE 0 END,
    anchor_ts = CASE WHEN $3 THEN NULL ELSE anchor_ts END,
    thread_ts = CASE WHEN $3 THEN NULL ELSE thread_ts END,
    incident_id = CASE WHEN $3 THEN NULL ELSE incident_id END,
    storm_id = CASE WHEN $3 THEN NULL ELSE storm_id END,
    verdict = CASE WHEN $3 THEN NULL ELSE verdict END,
    fired_at = CASE WHEN $3 OR (status = 'resolved' AND $2 = 'firing') THEN now() ELSE fired_at END,
    resolved_at = CASE WHEN $2 = 'resolved' AND status = 'firing' THEN now()
                       WHEN $2 = 'firing' THEN NULL ELSE resolved_at END,
    severity = $4, labels = $5, annotations = $6, alerts_firing = $7,
    notifications = notifications + 1, last_seen = now()
WHERE group_id = $1
RETURNING group_id, source, group_key, status, alertname, severity, labels, annotations, subject, channel, route, generation, storm_id, anchor_ts, thread_ts, incident_id, verdict, notifications, alerts_firing, first_seen, last_seen, fired_at, resolved_at, now() AS db_now
