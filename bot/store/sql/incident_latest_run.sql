SELECT run_id, result FROM diagnosis_runs WHERE incident_id = $1 AND status = 'done' ORDER BY run_id DESC LIMIT 1
