-- The ticket exists in the tracker (created now, or found by its marker): stored, with
-- the follow-up's state it describes. Returns nothing if another process stored one.
INSERT INTO tracker_tickets AS t (incident_id, owning_layer, tracker, target, key, url, state, last_state,
                                  last_comment_digest, created_at)
VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, now())
ON CONFLICT (incident_id, owning_layer) DO UPDATE
    SET tracker = excluded.tracker, target = excluded.target, key = excluded.key, url = excluded.url,
        state = 'open', last_state = excluded.last_state, last_comment_digest = excluded.last_comment_digest,
        created_at = now(), updated_at = now()
    WHERE t.state = 'creating'
RETURNING key
