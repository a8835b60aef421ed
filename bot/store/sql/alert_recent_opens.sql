-- How many groups opened in this channel within the storm window (this one included).
SELECT count(*)::int FROM alert_groups
WHERE channel = $1 AND fired_at > now() - make_interval(secs => $2) AND status = 'firing'
