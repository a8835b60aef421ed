-- Note that a post is about to be made (state 'posting'); an existing row is returned as is.
INSERT INTO slack_posts (job_id, post_key, channel, thread_ts)
VALUES ($1, $2, $3, $4)
ON CONFLICT (job_id, post_key) DO UPDATE SET job_id = slack_posts.job_id
RETURNING job_id, post_key, channel, thread_ts, ts, state
