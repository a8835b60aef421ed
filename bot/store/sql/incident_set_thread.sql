UPDATE incidents SET slack_channel = $2, slack_thread_ts = $3, updated_at = now()
WHERE incident_id = $1 AND (slack_channel IS NULL OR (slack_channel = $2 AND slack_thread_ts = $3))
RETURNING incident_id
