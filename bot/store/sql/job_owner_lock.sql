-- A worker's owner lock (session-level, on its presence connection): true when taken.
SELECT pg_try_advisory_lock($1, $2)
