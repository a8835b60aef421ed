-- The comment is on the ticket: the state it described becomes the one later runs are
-- compared with; $5 (nullable) is the ticket's new state ('recovered').
UPDATE tracker_tickets
SET last_comment_digest = $3, last_state = coalesce($4, last_state), pending_comment_digest = NULL,
    state = coalesce($5, state), updated_at = now()
WHERE incident_id = $1 AND owning_layer = $2 AND key IS NOT NULL
