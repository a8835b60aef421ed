-- The incident's follow-up tickets (bot.tracker), one per owning layer.
SELECT owning_layer, tracker, target, key, url, state, created_at, updated_at
FROM tracker_tickets
WHERE incident_id = $1
ORDER BY owning_layer
