SELECT EXISTS (SELECT 1 FROM slack_events WHERE event_id = $1)
