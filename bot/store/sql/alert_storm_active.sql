SELECT storm_id FROM alert_storms
WHERE channel = $1 AND last_joined > now() - make_interval(secs => $2)
ORDER BY storm_id DESC LIMIT 1
FOR UPDATE
