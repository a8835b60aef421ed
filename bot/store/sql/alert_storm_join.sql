-- Put the group (and any other group of the channel that opened in the window but has
-- no thread yet) into the storm.
WITH s AS (UPDATE alert_storms SET last_joined = now() WHERE storm_id = $1 RETURNING storm_id)
UPDATE alert_groups SET storm_id = $1
WHERE channel = $2 AND storm_id IS NULL AND anchor_ts IS NULL AND status = 'firing'
  AND fired_at > now() - make_interval(secs => $3)
RETURNING group_id
