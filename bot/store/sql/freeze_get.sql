SELECT f.freeze_id, f.incident_id, f.status, f.scope, f.reason, f.approved_by, f.prompt_id, f.frozen_at, f.lifted_at, f.lifted_by, f.lift_prompt_id FROM freezes f WHERE f.freeze_id = $1
