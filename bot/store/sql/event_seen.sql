-- True when this call recorded the event first (handle it); false for a repeat.
INSERT INTO slack_events (event_id, retry_num) VALUES ($1, $2)
ON CONFLICT (event_id) DO NOTHING
RETURNING true
