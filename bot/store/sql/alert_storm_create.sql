INSERT INTO alert_storms (channel) VALUES ($1) RETURNING storm_id
