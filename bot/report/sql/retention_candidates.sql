-- Incidents whose last activity (updated_at, or their latest timeline event when later)
-- is before $1, locked for the purge (a concurrent freeze insert waits, then is refused
-- by the foreign key once the incident is gone; one that committed first is seen by
-- retention_held). Oldest first.
SELECT i.incident_id, i.status, i.created_at, i.updated_at,
       greatest(i.updated_at,
                (SELECT max(te.recorded_at) FROM timeline_events te WHERE te.incident_id = i.incident_id))
           AS last_activity
FROM incidents i
WHERE greatest(i.updated_at,
               (SELECT max(te.recorded_at) FROM timeline_events te WHERE te.incident_id = i.incident_id)) < $1
ORDER BY last_activity, i.incident_id
FOR UPDATE OF i
