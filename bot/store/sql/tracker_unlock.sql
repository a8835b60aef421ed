-- Releases tracker_lock.
SELECT pg_advisory_unlock($1::integer, hashtext($2::text))
