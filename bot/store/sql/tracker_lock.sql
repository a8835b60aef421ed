-- The session advisory lock of one (incident, layer): held around "look up, else create".
SELECT true FROM pg_advisory_lock($1::integer, hashtext($2::text))
