UPDATE alert_storms SET summary_ts = $2 WHERE storm_id = $1 AND summary_ts IS NULL
