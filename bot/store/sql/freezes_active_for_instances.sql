SELECT DISTINCT f.freeze_id, f.incident_id, f.status, f.scope, f.reason, f.approved_by, f.prompt_id, f.frozen_at, f.lifted_at, f.lifted_by, f.lift_prompt_id FROM freezes f JOIN freeze_scopes s USING (freeze_id)
WHERE f.status = 'active' AND (f.incident_id = $1 OR s.app_instance_id = ANY($2::text[]))
ORDER BY f.freeze_id
