WITH d AS (DELETE FROM diagnosis_runs WHERE incident_id = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM d
