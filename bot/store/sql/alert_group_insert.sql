-- A new alert group (its first notification). For a Slack alert post, the post itself is
-- the anchor and the thread ($10).
INSERT INTO alert_groups (source, group_key, status, alertname, severity, labels, annotations, subject,
                          channel, route, anchor_ts, thread_ts, notifications, alerts_firing,
                          resolved_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $10, $10, 1, $12,
        CASE WHEN $3 = 'resolved' THEN now() END)
ON CONFLICT (source, group_key) DO NOTHING
RETURNING group_id, source, group_key, status, alertname, severity, labels, annotations, subject, channel, route, generation, storm_id, anchor_ts, thread_ts, incident_id, verdict, notifications, alerts_firing, first_seen, last_seen, fired_at, resolved_at, now() AS db_now
