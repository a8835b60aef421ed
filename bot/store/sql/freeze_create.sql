INSERT INTO freezes (incident_id, scope, reason, approved_by, prompt_id)
VALUES ($1, $2, $3, $4, $5)
RETURNING freeze_id
