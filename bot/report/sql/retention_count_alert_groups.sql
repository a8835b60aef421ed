-- What retention_batch_alert_groups would delete (the same rule), and what the alert
-- notification batches would: handled ones received before $1, and every notification
-- of a group that goes.
WITH doomed AS (
    SELECT g.group_id FROM alert_groups g
    WHERE g.status = 'resolved' AND g.resolved_at < $1 AND g.last_seen < $1
      AND NOT EXISTS (SELECT 1 FROM jobs j
                      WHERE j.status IN ('queued', 'running')
                        AND (j.dedup_key = 'alert:' || g.group_id OR j.dedup_key = 'alert_storm:' || g.storm_id))
      AND NOT EXISTS (
          SELECT 1 FROM incidents i WHERE i.incident_id = g.incident_id
            AND (i.status <> 'closed'
                 OR EXISTS (SELECT 1 FROM freezes f WHERE f.incident_id = i.incident_id AND f.status = 'active')
                 OR EXISTS (SELECT 1 FROM approval_prompts p
                            WHERE p.incident_id = i.incident_id AND p.status = 'open')))
      AND NOT EXISTS (SELECT 1 FROM incidents i
                      WHERE i.status = 'open' AND i.subject_kind = 'alert_group'
                        AND i.subject_key = g.source || ':' || g.group_key || '#' || g.generation)
)
SELECT (SELECT count(*) FROM doomed) AS groups,
       (SELECT count(*) FROM alert_notifications n
        WHERE (n.received_at < $1 AND n.handled_at IS NOT NULL)
           OR n.group_id IN (SELECT group_id FROM doomed)) AS notifications
