UPDATE approval_prompts SET status = $2, decided_at = now(), decided_by = $3, freeze_id = coalesce($4, freeze_id)
WHERE prompt_id = $1 AND status = 'open'
RETURNING prompt_id, incident_id, kind, channel, thread_ts, message_ts, scope, reason, quorum, status, freeze_id, created_at, expires_at, decided_at, decided_by
