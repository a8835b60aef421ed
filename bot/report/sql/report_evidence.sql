-- The incident's evidence records (rows as kept: at most the row cap), in recording order.
SELECT evidence_id, incident_id, run_id, step, phase, source, kind, via, request, params, window_start, window_end,
       asked_at, duration_ms, row_count, rows, rows_digest, truncated, error, recorded_at
FROM evidence
WHERE incident_id = $1
ORDER BY evidence_id
