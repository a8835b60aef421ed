-- append-only: needs recon.allow_purge = 'on' in the transaction
WITH d AS (DELETE FROM timeline_events WHERE incident_id = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM d
