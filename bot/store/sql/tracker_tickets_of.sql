-- The incident's follow-up tickets, by layer.
SELECT incident_id, owning_layer, tracker, target, key, url, state, last_state, last_comment_digest,
       pending_comment_digest, attempts, attempted_at, created_at, updated_at, now() AS db_now
FROM tracker_tickets
WHERE incident_id = $1
ORDER BY owning_layer
