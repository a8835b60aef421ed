-- A new open incident, unless one is already open for the same subject (then no row).
INSERT INTO incidents (incident_id, subject_kind, correlation_id, app_instance_id, org_id,
                       project_id, title, origin, subject_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (subject_kind, subject_key) WHERE status = 'open'
DO NOTHING
RETURNING incident_id, subject_kind, correlation_id, app_instance_id, org_id, project_id, title,
       status, origin, slack_channel, slack_thread_ts, created_at, updated_at
