INSERT INTO timeline_events (incident_id, run_id, started_at, source, type, description,
                             details, actor, correlation_id, trace_id)
VALUES ($1, $2, coalesce($3, clock_timestamp()), $4, $5, $6, $7, $8, $9, $10)
RETURNING event_id
