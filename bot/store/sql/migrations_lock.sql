-- Serialise migrators: held until the end of the current transaction.
SELECT pg_advisory_xact_lock($1::bigint)
