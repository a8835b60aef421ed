-- append-only: needs recon.allow_purge = 'on' in the transaction
WITH d AS (DELETE FROM evidence WHERE incident_id = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM d
