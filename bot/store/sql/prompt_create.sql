-- A new open prompt, unless one of this kind is already open for the incident (no row).
INSERT INTO approval_prompts (incident_id, kind, channel, thread_ts, scope, reason, quorum, expires_at, freeze_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8), $9)
ON CONFLICT (incident_id, kind) WHERE status = 'open' DO NOTHING
RETURNING prompt_id, incident_id, kind, channel, thread_ts, message_ts, scope, reason, quorum, status, freeze_id, created_at, expires_at, decided_at, decided_by
