-- The incident's freezes (active and lifted) with what each covers.
SELECT f.freeze_id, f.status, f.scope, f.reason, f.approved_by, f.prompt_id, f.frozen_at, f.lifted_at,
       f.lifted_by, f.lift_prompt_id,
       coalesce((SELECT jsonb_agg(jsonb_build_object('org_id', s.org_id, 'project_id', s.project_id,
                                                     'app_instance_id', s.app_instance_id)
                                  ORDER BY s.org_id, s.project_id NULLS FIRST, s.app_instance_id NULLS FIRST)
                 FROM freeze_scopes s WHERE s.freeze_id = f.freeze_id), '[]'::jsonb) AS scopes
FROM freezes f
WHERE f.incident_id = $1
ORDER BY f.freeze_id
