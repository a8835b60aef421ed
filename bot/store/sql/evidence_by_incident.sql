-- All evidence of an incident, or of one of its runs when $2 is not null.
SELECT evidence_id, incident_id, run_id, step, phase, source, kind, via, request, params,
       window_start, window_end, asked_at, duration_ms, row_count, rows, rows_digest, truncated,
       error, recorded_at
FROM evidence
WHERE incident_id = $1
  AND ($2::bigint IS NULL OR run_id = $2::bigint)
ORDER BY evidence_id
