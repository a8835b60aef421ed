SELECT group_id, source, group_key, status, alertname, severity, labels, annotations, subject, channel, route, generation, storm_id, anchor_ts, thread_ts, incident_id, verdict, notifications, alerts_firing, first_seen, last_seen, fired_at, resolved_at, now() AS db_now
FROM alert_groups WHERE source = $1 AND group_key = $2
FOR UPDATE
