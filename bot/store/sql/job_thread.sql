-- Where a job's messages went: its incident's thread, else the thread of the job's
-- latest post (a top-level post is a thread of its own). No row: it posted nothing.
SELECT channel, thread_ts FROM (
    SELECT i.slack_channel AS channel, i.slack_thread_ts AS thread_ts, 0 AS rank, now() AS at
    FROM jobs j JOIN incidents i ON i.incident_id = j.incident_id
    WHERE j.job_id = $1 AND i.slack_channel IS NOT NULL AND i.slack_thread_ts IS NOT NULL
    UNION ALL
    SELECT channel, coalesce(thread_ts, ts), 1, created_at
    FROM slack_posts WHERE job_id = $1 AND coalesce(thread_ts, ts) IS NOT NULL
) t
ORDER BY rank, at DESC
LIMIT 1
