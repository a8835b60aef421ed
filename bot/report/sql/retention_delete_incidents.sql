-- jobs and alert groups that named these incidents keep their rows (incident_id set null)
WITH d AS (DELETE FROM incidents WHERE incident_id = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM d
