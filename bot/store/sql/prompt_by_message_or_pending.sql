-- The prompt whose message this is; else an open prompt of the channel still being posted
-- (no message_ts yet). One statement, so a prompt's ts stored meanwhile is seen by one of
-- the two conditions. The exact match first.
SELECT prompt_id, incident_id, kind, channel, thread_ts, message_ts, scope, reason, quorum, status, freeze_id, created_at, expires_at, decided_at, decided_by
FROM approval_prompts
WHERE channel = $1 AND (message_ts = $2 OR (message_ts IS NULL AND status = 'open'))
ORDER BY (message_ts IS NOT NULL) DESC, prompt_id DESC
LIMIT 1
