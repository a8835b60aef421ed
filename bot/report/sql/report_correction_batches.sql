-- The incident's sealed correction batches (bot.store.corrections.seal), oldest first.
SELECT batch_id, prompt_id, run_id, digest, approved_by, votes, row_count, sealed_at
FROM correction_batches
WHERE incident_id = $1
ORDER BY batch_id
