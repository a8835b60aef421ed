UPDATE freezes f SET status = 'lifted', lifted_at = now(), lifted_by = $2, lift_prompt_id = $3
WHERE freeze_id = $1 AND status = 'active'
RETURNING f.freeze_id, f.incident_id, f.status, f.scope, f.reason, f.approved_by, f.prompt_id, f.frozen_at, f.lifted_at, f.lifted_by, f.lift_prompt_id
