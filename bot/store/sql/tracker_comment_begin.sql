-- About to comment (digest of what the comment says): recorded first.
UPDATE tracker_tickets
SET pending_comment_digest = $3, updated_at = now()
WHERE incident_id = $1 AND owning_layer = $2 AND key IS NOT NULL
