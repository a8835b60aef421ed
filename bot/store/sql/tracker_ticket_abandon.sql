-- The tracker refused the create outright (nothing was made): forget the attempt.
DELETE FROM tracker_tickets
WHERE incident_id = $1 AND owning_layer = $2 AND state = 'creating'
