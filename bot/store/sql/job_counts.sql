-- Jobs by status from the deltas in job_counts (migration 012), never a count over jobs;
-- rows: how many deltas were summed (the reader compacts them past a threshold).
SELECT status, sum(n)::bigint AS n, count(*)::bigint AS rows FROM job_counts GROUP BY status
