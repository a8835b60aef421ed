WITH d AS (
    DELETE FROM approval_votes
    WHERE prompt_id IN (SELECT prompt_id FROM approval_prompts WHERE incident_id = ANY($1::text[]))
    RETURNING 1
) SELECT count(*) FROM d
