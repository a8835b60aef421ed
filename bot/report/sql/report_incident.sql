-- The incident a report is about.
SELECT incident_id, subject_kind, correlation_id, app_instance_id, org_id, project_id,
       title, status, origin, slack_channel, slack_thread_ts, created_at, updated_at
FROM incidents
WHERE incident_id = $1
