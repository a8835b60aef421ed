-- Note that a post is about to be made (state 'posting'); an existing row is returned as is.
INSERT INTO slack_posts (namespace, post_key, channel, thread_ts, job_id)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (namespace, post_key) DO UPDATE SET namespace = slack_posts.namespace
RETURNING namespace, post_key, channel, thread_ts, ts, state
