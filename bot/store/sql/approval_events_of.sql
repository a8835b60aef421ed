SELECT event_id, prompt_id, incident_id, type, user_id, vote, via, channel, message_ts, details, dedup_key, created_at
FROM approval_events WHERE prompt_id = $1 ORDER BY event_id
