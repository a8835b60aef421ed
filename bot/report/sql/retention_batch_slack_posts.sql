-- Slack posts made before $1 that nothing needs any more, at most $2, oldest first; the
-- number deleted. A post is kept while:
--   - an incident's thread holds it (the incident's channel and thread: the post is the
--     thread's parent, or a reply in it), or the job that made it belongs to an incident;
--   - the job that made it is queued or running, or so is the job of its namespace
--     (alert:G:n -> the job alert:G, storm:S -> the job alert_storm:S);
--   - its alert group is still on that generation (alert:G:n), or its storm exists (storm:S).
WITH doomed AS (
    SELECT p.namespace, p.post_key FROM slack_posts p
    WHERE p.created_at < $1
      AND NOT EXISTS (SELECT 1 FROM incidents i
                      WHERE i.slack_channel = p.channel AND i.slack_thread_ts = coalesce(p.thread_ts, p.ts))
      AND NOT EXISTS (SELECT 1 FROM jobs j
                      WHERE j.job_id = p.job_id AND (j.status IN ('queued', 'running') OR j.incident_id IS NOT NULL))
      AND NOT EXISTS (SELECT 1 FROM jobs j
                      WHERE j.status IN ('queued', 'running')
                        AND j.dedup_key = CASE
                            WHEN p.namespace ~ '^alert:[0-9]{1,18}:' THEN 'alert:' || split_part(p.namespace, ':', 2)
                            WHEN p.namespace ~ '^storm:[0-9]{1,18}$' THEN 'alert_storm:' || split_part(p.namespace, ':', 2)
                            END)
      AND NOT EXISTS (SELECT 1 FROM alert_groups g
                      WHERE p.namespace ~ '^alert:[0-9]{1,18}:[0-9]{1,9}$'
                        AND g.group_id = CASE WHEN p.namespace ~ '^alert:[0-9]{1,18}:[0-9]{1,9}$'
                                              THEN split_part(p.namespace, ':', 2)::bigint END
                        AND g.generation = CASE WHEN p.namespace ~ '^alert:[0-9]{1,18}:[0-9]{1,9}$'
                                                THEN split_part(p.namespace, ':', 3)::integer END)
      AND NOT EXISTS (SELECT 1 FROM alert_storms s
                      WHERE s.storm_id = CASE WHEN p.namespace ~ '^storm:[0-9]{1,18}$'
                                              THEN split_part(p.namespace, ':', 2)::bigint END)
    ORDER BY p.created_at LIMIT $2
    FOR UPDATE OF p SKIP LOCKED
), gone AS (
    DELETE FROM slack_posts p USING doomed d
    WHERE p.namespace = d.namespace AND p.post_key = d.post_key RETURNING 1
)
SELECT count(*) FROM gone
