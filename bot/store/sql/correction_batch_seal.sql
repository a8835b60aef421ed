-- Seal an approved corrections prompt's batch (in the transaction that decides it).
INSERT INTO correction_batches (incident_id, prompt_id, run_id, digest, approved_by, votes, row_count)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING batch_id
