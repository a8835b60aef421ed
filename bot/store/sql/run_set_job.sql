UPDATE diagnosis_runs SET job_id = $2 WHERE run_id = $1
