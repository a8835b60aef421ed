-- append-only: needs recon.allow_purge = 'on' in the transaction
WITH d AS (
    DELETE FROM approval_events
    WHERE incident_id = ANY($1::text[])
       OR prompt_id IN (SELECT prompt_id FROM approval_prompts WHERE incident_id = ANY($1::text[]))
    RETURNING 1
) SELECT count(*) FROM d
