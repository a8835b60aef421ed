-- The group joins the channel's storm.
WITH s AS (UPDATE alert_storms SET last_joined = now() WHERE storm_id = $1 RETURNING storm_id)
UPDATE alert_groups SET storm_id = $1 WHERE group_id = $2
RETURNING group_id
