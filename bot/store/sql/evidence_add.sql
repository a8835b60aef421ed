INSERT INTO evidence (incident_id, run_id, step, phase, source, kind, via, request, params,
                      window_start, window_end, asked_at, duration_ms, row_count, rows,
                      rows_digest, truncated, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, coalesce($12, clock_timestamp()),
        $13, $14, $15, $16, $17, $18)
RETURNING evidence_id
