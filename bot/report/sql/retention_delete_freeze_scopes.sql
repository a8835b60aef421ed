WITH d AS (
    DELETE FROM freeze_scopes s USING freezes f
    WHERE s.freeze_id = f.freeze_id AND f.incident_id = ANY($1::text[])
    RETURNING 1
) SELECT count(*) FROM d
