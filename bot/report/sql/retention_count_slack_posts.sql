-- What retention_batch_slack_posts would delete, all batches together (the same rule).
SELECT count(*) FROM slack_posts p
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
