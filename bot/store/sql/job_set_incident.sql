UPDATE jobs SET incident_id = $2, updated_at = now() WHERE job_id = $1
