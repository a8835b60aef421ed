-- An open prompt that a newer proposal replaces; no row when it was decided meanwhile.
UPDATE approval_prompts SET status = 'superseded', decided_at = now()
WHERE prompt_id = $1 AND status = 'open'
RETURNING prompt_id, incident_id, kind, channel, thread_ts, message_ts, scope, reason, quorum, status, freeze_id, created_at, expires_at, decided_at, decided_by
