-- What retention_batch_alert_storms would delete now (the same rule). A real run deletes
-- the groups first, so it can also remove a storm whose last groups it removed.
SELECT count(*) FROM alert_storms s
WHERE s.last_joined < $1
  AND NOT EXISTS (SELECT 1 FROM alert_groups g WHERE g.storm_id = s.storm_id)
  AND NOT EXISTS (SELECT 1 FROM jobs j
                  WHERE j.status IN ('queued', 'running') AND j.dedup_key = 'alert_storm:' || s.storm_id)
