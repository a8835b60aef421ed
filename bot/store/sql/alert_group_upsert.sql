-- A notification of a group, in one statement: a new group ('open'), or what it means
-- for the existing one, decided from the row as it was:
--   firing after resolved, within the reopen window ($13 s): 'refire' (same thread);
--   firing after resolved, later: 'open' of a new generation (new thread and incident);
--   resolved after firing: 'resolve'; anything else: 'repeat'.
INSERT INTO alert_groups AS g (source, group_key, status, alertname, severity, labels, annotations, subject,
                               channel, route, anchor_ts, thread_ts, notifications, alerts_firing, resolved_at,
                               last_action)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $10, $10, 1, $12,
        CASE WHEN $3 = 'resolved' THEN now() END, 'open')
ON CONFLICT (source, group_key) DO UPDATE SET
    generation = g.generation + CASE WHEN (excluded.status = 'firing' AND g.status = 'resolved'
        AND (g.resolved_at IS NULL OR now() - g.resolved_at > make_interval(secs => $13))) THEN 1 ELSE 0 END,
    anchor_ts = CASE WHEN (excluded.status = 'firing' AND g.status = 'resolved'
        AND (g.resolved_at IS NULL OR now() - g.resolved_at > make_interval(secs => $13))) THEN NULL
        ELSE g.anchor_ts END,
    thread_ts = CASE WHEN (excluded.status = 'firing' AND g.status = 'resolved'
        AND (g.resolved_at IS NULL OR now() - g.resolved_at > make_interval(secs => $13))) THEN NULL
        ELSE g.thread_ts END,
    incident_id = CASE WHEN (excluded.status = 'firing' AND g.status = 'resolved'
        AND (g.resolved_at IS NULL OR now() - g.resolved_at > make_interval(secs => $13))) THEN NULL
        ELSE g.incident_id END,
    storm_id = CASE WHEN (excluded.status = 'firing' AND g.status = 'resolved'
        AND (g.resolved_at IS NULL OR now() - g.resolved_at > make_interval(secs => $13))) THEN NULL
        ELSE g.storm_id END,
    verdict = CASE WHEN (excluded.status = 'firing' AND g.status = 'resolved'
        AND (g.resolved_at IS NULL OR now() - g.resolved_at > make_interval(secs => $13))) THEN NULL
        ELSE g.verdict END,
    fired_at = CASE WHEN g.status = 'resolved' AND excluded.status = 'firing' THEN now() ELSE g.fired_at END,
    resolved_at = CASE WHEN excluded.status = 'resolved' AND g.status = 'firing' THEN now()
                       WHEN excluded.status = 'firing' THEN NULL ELSE g.resolved_at END,
    last_action = CASE
        WHEN excluded.status = 'firing' AND g.status = 'resolved'
             AND (g.resolved_at IS NULL OR now() - g.resolved_at > make_interval(secs => $13)) THEN 'open'
        WHEN excluded.status = 'firing' AND g.status = 'resolved' THEN 'refire'
        WHEN excluded.status = 'resolved' AND g.status = 'firing' THEN 'resolve'
        ELSE 'repeat' END,
    status = excluded.status, severity = excluded.severity, labels = excluded.labels,
    annotations = excluded.annotations, alerts_firing = excluded.alerts_firing,
    notifications = g.notifications + 1, last_seen = now()
RETURNING group_id, source, group_key, status, alertname, severity, labels, annotations, subject, channel, route, generation, storm_id, anchor_ts, thread_ts, incident_id, verdict, notifications, alerts_firing, first_seen, last_seen, fired_at, resolved_at, now() AS db_now, last_action
