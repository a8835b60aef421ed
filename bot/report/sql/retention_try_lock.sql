-- One retention run at a time (all replicas, the CronJob): a session lock, not waited for.
SELECT pg_try_advisory_lock($1::bigint)
