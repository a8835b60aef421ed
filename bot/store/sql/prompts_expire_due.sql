-- Open prompts past their expiry become expired (each by exactly one caller).
UPDATE approval_prompts SET status = 'expired', decided_at = now()
WHERE status = 'open' AND expires_at <= now()
RETURNING prompt_id, incident_id, kind, channel, thread_ts, message_ts, scope, reason, quorum, status, freeze_id, created_at, expires_at, decided_at, decided_by
