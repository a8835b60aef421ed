SELECT batch_id, incident_id, prompt_id, run_id, digest, approved_by, votes, row_count, sealed_at
FROM correction_batches WHERE prompt_id = $1
