SELECT storm_id, channel, started_at, last_joined, summary_ts FROM alert_storms WHERE storm_id = $1
