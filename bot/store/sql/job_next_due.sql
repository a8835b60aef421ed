-- Seconds until the next queued job of these kinds becomes due (NULL: none waiting).
SELECT extract(epoch FROM min(run_after) - now())::float8
FROM jobs WHERE status = 'queued' AND run_after > now() AND kind = ANY($1::text[])
