-- The incident's timeline in the order things happened.
SELECT event_id, incident_id, run_id, started_at, recorded_at, source, type, description, details, actor,
       correlation_id, trace_id
FROM timeline_events
WHERE incident_id = $1
ORDER BY started_at, event_id
