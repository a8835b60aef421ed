-- Alert storms last joined before $1 that no alert group names any more and whose job
-- (alert_storm:S) is neither queued nor running, at most $2, oldest first; the number
-- deleted. The intake only joins a storm joined within the storm window, so no group
-- can come to name one of these.
WITH doomed AS (
    SELECT s.storm_id FROM alert_storms s
    WHERE s.last_joined < $1
      AND NOT EXISTS (SELECT 1 FROM alert_groups g WHERE g.storm_id = s.storm_id)
      AND NOT EXISTS (SELECT 1 FROM jobs j
                      WHERE j.status IN ('queued', 'running') AND j.dedup_key = 'alert_storm:' || s.storm_id)
    ORDER BY s.last_joined LIMIT $2
    FOR UPDATE OF s SKIP LOCKED
), gone AS (
    DELETE FROM alert_storms WHERE storm_id IN (SELECT storm_id FROM doomed) RETURNING 1
)
SELECT count(*) FROM gone
