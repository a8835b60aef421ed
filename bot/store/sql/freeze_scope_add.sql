INSERT INTO freeze_scopes (freeze_id, org_id, project_id, app_instance_id)
SELECT $1, s.org_id, s.project_id, s.app_instance_id
FROM unnest($2::text[], $3::text[], $4::text[]) AS s(org_id, project_id, app_instance_id)
