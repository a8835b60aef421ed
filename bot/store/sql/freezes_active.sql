-- Active freezes covering an org (and project): a freeze of the whole org, of that
-- project, or of an app instance in it. NULL filters match everything.
SELECT DISTINCT f.freeze_id, f.incident_id, f.status, f.scope, f.reason, f.approved_by, f.prompt_id, f.frozen_at, f.lifted_at, f.lifted_by, f.lift_prompt_id
FROM freezes f JOIN freeze_scopes s USING (freeze_id)
WHERE f.status = 'active'
  AND ($1::text IS NULL OR s.org_id = $1)
  AND ($2::text IS NULL OR s.project_id IS NULL OR s.project_id = $2)
ORDER BY f.freeze_id
