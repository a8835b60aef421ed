SELECT status, count(*)::bigint AS n FROM jobs GROUP BY status
