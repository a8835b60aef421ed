-- Alert groups resolved (and last heard of) before $1, at most $2, oldest first, with
-- the notifications they still have; how many of each were deleted. A group is kept
-- while a job for it (alert:G) or for its storm (alert_storm:S) is queued or running,
-- while its incident still needs it (not closed, or with an active freeze or an open
-- approval prompt), and while an open incident is keyed by it. A firing group is never
-- deleted. A locked group (the intake is updating it) waits for the next run; the rule
-- is checked again on the locked row, so a group that fired again meanwhile stays.
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
    ORDER BY g.resolved_at LIMIT $2
    FOR UPDATE OF g SKIP LOCKED
), notes AS (
    DELETE FROM alert_notifications WHERE group_id IN (SELECT group_id FROM doomed) RETURNING 1
), gone AS (
    DELETE FROM alert_groups WHERE group_id IN (SELECT group_id FROM doomed) RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS groups, (SELECT count(*) FROM notes) AS notifications
