-- About to ask the tracker to create the ticket: recorded (and committed) first, so a
-- crash before the ticket is stored leaves a trace. A stored ticket is left alone.
INSERT INTO tracker_tickets AS t (incident_id, owning_layer, tracker, target)
VALUES ($1, $2, $3, $4)
ON CONFLICT (incident_id, owning_layer) DO UPDATE
    SET attempts = t.attempts + 1, attempted_at = now(), updated_at = now(),
        tracker = excluded.tracker, target = excluded.target
    WHERE t.state = 'creating'
RETURNING attempts
