-- Append an audit record; a repeated dedup_key (the same Slack event again) adds nothing.
INSERT INTO approval_events (prompt_id, incident_id, type, user_id, vote, via, channel, message_ts, details, dedup_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (dedup_key) DO NOTHING
RETURNING event_id
